"""``LLMUser``: a Locust user that streams completions of the run's API flavor and measures them
exactly. The User only schedules: its :class:`~llm_locust.locust.client.LLMClient` owns the
connection, and each request is one :class:`~llm_locust.locust.exchange.Exchange`."""

from __future__ import annotations

import dataclasses
from typing import Any

import gevent
from gevent import GreenletExit
from locust import User, constant
from locust.exception import StopUser

from llm_locust.flavors.base import Sample
from llm_locust.locust.client import LLMClient
from llm_locust.locust.exchange import Exchange
from llm_locust.locust.options import FAIL_BACKOFF_GROWTH, RunConfig
from llm_locust.locust.plugin import install
from llm_locust.locust.state import LLMState, state_of
from llm_locust.metrics.records import CANCELLED, RequestRecord
from llm_locust.workload.tokenizer import count_off_loop


class LLMUser(User):
    """Streams requests of the run's API flavor (``--api``; OpenAI chat by default) in a closed loop
    (no think time by default).

    Subclass it in a locustfile. Override :meth:`messages` to vary prompts, or write tasks that
    call :meth:`chat` with your own messages (flavors that take a prompt get the messages' text);
    every call is recorded exactly once.
    """

    abstract = True
    wait_time = constant(0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install()  # defining a subclass registers the options and listeners (idempotent)
        if not cls.tasks:
            # The default task only applies to subclasses without tasks of their own (Locust would
            # otherwise inherit it and mix it, at random, with the subclass's tasks).
            cls.tasks = [LLMUser.chat_completion]

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._llm: LLMState = state_of(environment)
        self._client: LLMClient | None = None
        self._failed_in_row = 0  # failed requests since the last success (for --fail-backoff)

    def chat_completion(self) -> None:
        """The default task: one request with the configured messages."""
        self.chat()

    def messages(self) -> list[dict[str, str]]:
        """The messages of the next request (default: --system-prompt and --prompt)."""
        return self._llm.require_config().messages

    def on_stop(self) -> None:
        if self._client is not None:
            self._client.drop()

    # -- one request -----------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]] | None = None, **body: Any) -> RequestRecord:
        """Send one streaming request, record it, and return its record.

        ``max_tokens=N`` sets the output length in the flavor's own field; other ``body`` items
        override the request body the flavor builds from the options (e.g. ``top_k=1``).
        """
        state = self._llm
        if state.config is None:
            # The test's options were rejected (reported in one line) and the run is ending.
            raise StopUser()
        config = state.config
        msgs = self.messages() if messages is None else messages
        max_tokens = body.pop("max_tokens", config.max_tokens)
        sample = Sample(messages=msgs, max_tokens=max_tokens, extra_body={**config.extra_body, **body})
        flavor = state.require_flavor()
        exchange = Exchange(
            self._connection(config),
            flavor,
            flavor.request(sample, state.request_options),
            path=state.path,
            timeout_s=config.request_timeout_s,
            health=state.health,
            record_cancelled=state.record,
        )
        state.in_flight += 1
        try:
            rec, text = exchange.run()
            if rec.ok:
                try:
                    rec = self._with_token_counts(rec, text, msgs)
                except GreenletExit:
                    state.record(rec)  # the stream had completed; only the client-side count was cut
                    raise
        finally:
            state.in_flight -= 1
        state.record(rec)
        self._back_off(rec, config)
        return rec

    def _connection(self, config: RunConfig) -> LLMClient:
        if self._client is None or self._client.host != config.host:
            self._client = LLMClient(config.host, config.request_timeout_s, config.insecure)
        return self._client

    def _back_off(self, rec: RequestRecord, config: RunConfig) -> None:
        """After a failure, wait --fail-backoff (doubled per failure in a row, capped), so that a
        dead or refusing endpoint is not sent requests as fast as it can fail them."""
        if rec.ok:
            self._failed_in_row = 0
            return
        if rec.outcome == CANCELLED or config.fail_backoff_s <= 0:
            return
        self._failed_in_row += 1
        growth = min(2 ** min(self._failed_in_row - 1, 16), FAIL_BACKOFF_GROWTH)
        gevent.sleep(config.fail_backoff_s * growth)

    def _with_token_counts(self, rec: RequestRecord, text: str, msgs: list[dict[str, str]]) -> RequestRecord:
        state = self._llm
        need_tokenizer = rec.output_tokens_source != "usage" or rec.input_tokens_source != "usage"
        if not need_tokenizer and not state.check_usage_now():
            return rec
        tokenizer = state.tokenizer(wait=need_tokenizer)
        if tokenizer is None:
            return rec
        counted = count_off_loop(tokenizer, text) if text else 0
        fields: dict[str, Any] = {"tokenizer_output_tokens": counted}
        if rec.output_tokens_source != "usage":
            fields.update(output_tokens=counted, output_tokens_source="tokenizer")
        if rec.input_tokens_source != "usage":
            prompt_tokens = state.prompt_tokens(tokenizer, "".join(m.get("content", "") for m in msgs))
            fields.update(input_tokens=prompt_tokens, input_tokens_source="tokenizer")
        return dataclasses.replace(rec, **fields)
