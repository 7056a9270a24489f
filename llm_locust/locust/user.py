"""``LLMUser``: a Locust user that streams completions of the run's API flavor and measures them
exactly. The User only schedules: its :class:`~llm_locust.locust.client.LLMClient` owns the
connection, and each request is one :class:`~llm_locust.locust.exchange.Exchange`."""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from llm_locust.workload.dataset import Conversation


class LLMUser(User):
    """Streams requests of the run's API flavor (``--api``; OpenAI chat by default) in a closed loop
    (no think time by default).

    Subclass it in a locustfile. Override :meth:`messages` to vary prompts, or write tasks that
    call :meth:`chat` with your own messages (flavors that take a prompt get the messages' text);
    every call is recorded exactly once.
    """

    abstract = True
    wait_time = constant(0)
    #: the --dataset this class sends when the option is left at its default ("prompt"), e.g. "seed"
    dataset: str | None = None

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
        self._random: random.Random | None = None  # draws of --output-tokens where a turn has none

    def chat_completion(self) -> None:
        """The default task: the next conversation of the test's dataset (one request per turn), or
        one request with :meth:`messages` where a subclass overrides it."""
        if type(self).messages is not LLMUser.messages:
            self.chat()
            return
        state = self._llm
        if state.config is None or state.samples is None:
            raise StopUser()  # the test's options or dataset were rejected (said in one line)
        self.converse(state.samples.next())

    def converse(self, conversation: Conversation) -> list[RequestRecord]:
        """Send a conversation's turns in order, each with the history so far: the user messages and
        the server's actual answers. Stops at the first turn that does not succeed."""
        config = self._llm.require_config()
        workload = config.workload
        history: list[dict[str, str]] = []
        system = [{"role": "system", "content": conversation.system}] if conversation.system else []
        records = []
        for index, turn in enumerate(conversation.turns, start=1):
            if index > 1 and workload.turn_delay_s > 0:
                gevent.sleep(workload.turn_delay_s)
            history.append({"role": "user", "content": turn.user})
            wanted = workload.output_tokens
            max_tokens = turn.output_tokens if turn.output_tokens is not None else config.max_tokens
            if wanted is not None and turn.output_tokens is None:
                max_tokens = wanted.draw(self._rng())
            # what the sample was built for: exact where it is the whole input (no system, no history)
            expected = turn.input_tokens if index == 1 and not system else None
            rec, text = self._send([*system, *history], max_tokens, {}, turn=index, expected_input=expected)
            records.append(rec)
            if not rec.ok:
                break
            history.append({"role": "assistant", "content": text})
        return records

    def _rng(self) -> random.Random:
        if self._random is None:
            self._random = random.Random(f"{self._llm.require_config().workload.dataset.seed} {id(self)}")
        return self._random

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
        msgs = self.messages() if messages is None else messages
        max_tokens = body.pop("max_tokens", state.config.max_tokens)
        return self._send(msgs, max_tokens, body)[0]

    def _send(
        self,
        msgs: list[dict[str, str]],
        max_tokens: int | None,
        body: dict[str, Any],
        *,
        turn: int = 1,
        expected_input: int | None = None,
    ) -> tuple[RequestRecord, str]:
        state = self._llm
        config = state.require_config()
        extra = {**config.extra_body, **body}
        if config.workload.min_tokens and state.require_flavor().name.startswith("openai"):
            extra.setdefault("min_tokens", config.workload.min_tokens)  # vLLM's and SGLang's extension
        sample = Sample(messages=msgs, max_tokens=max_tokens, extra_body=extra)
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
        text = ""
        try:
            rec, text = exchange.run()
            rec = dataclasses.replace(
                rec, turn=turn, expected_input_tokens=expected_input, requested_output_tokens=max_tokens
            )
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
        return rec, text

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
