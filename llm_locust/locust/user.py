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
from locust.exception import RescheduleTask, StopUser

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


#: how long a Locust user of an open-loop test waits per task (it sends nothing; a stop waits for it)
HOLD_S = 0.2


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
        #: open loop: (due instant, level, warm-up) of the arrival this sender runs, until its first send
        self._arrival: tuple[float, str, bool] | None = None
        self._open_loop_sender = False
        self._arrival_tags: tuple[str | None, bool | None] = (None, None)  # for its later turns

        config = self._llm.config
        if config is not None and config.load.open_loop:
            # In an open-loop test the arrivals send (each as one task of a sender of this class, see
            # llm_locust.locust.openloop); Locust's users only hold the test open.
            self.tasks = [LLMUser._hold]

    def _hold(self) -> None:
        # short, so that Locust's graceful stop (which waits for the task) takes at most this long
        gevent.sleep(HOLD_S)

    def run_arrival(self, due_perf_s: float, level: str, warmup: bool) -> None:
        """Open loop: run one task of this user for an arrival due at ``due_perf_s`` (perf_counter);
        its first request records that instant, its level and whether it is within --warmup."""
        self._open_loop_sender = True
        self._arrival = (due_perf_s, level, warmup)
        self._arrival_tags = (level, warmup)
        try:
            tasks = type(self).tasks
            task = tasks[0] if len(tasks) == 1 else random.choice(tasks)
            if isinstance(task, type):
                raise StopUser()  # a TaskSet: refused at the start of an open-loop test
            task(self)  # type: ignore[operator]
        finally:
            self._arrival = None
            self._arrival_tags = (None, None)

    def chat_completion(self) -> None:
        """The default task: the next conversation of the test's dataset (one request per turn), or
        one request with :meth:`messages` where a subclass overrides it."""
        if type(self).messages is not LLMUser.messages:
            self.chat()
            return
        state = self._llm
        if self._configured() is None or state.samples is None:
            raise StopUser()  # the test's options or dataset were rejected (said in one line)
        self.converse(state.samples.next())

    def _configured(self) -> RunConfig | None:
        """The test's config, once its start is done here (a user can start first: a late worker
        whose spawn raced Locust's init); None where its options were refused. In an open loop,
        Locust's users never send: they hold the test open."""
        state = self._llm
        if state.config is None and not state.test_started.is_set():
            state.test_started.wait(timeout=300)
        config = state.config
        if config is not None and config.load.open_loop and not self._open_loop_sender:
            gevent.sleep(HOLD_S)
            raise RescheduleTask()  # a task of Locust's own user in an open loop: it sends nothing
        return config

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
        config = self._configured()
        if config is None:
            # The test's options were rejected (reported in one line) and the run is ending.
            raise StopUser()
        msgs = self.messages() if messages is None else messages
        max_tokens = body.pop("max_tokens", config.max_tokens)
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
        arrival, self._arrival = self._arrival, None
        if arrival is None and not self._take_budget():
            raise StopUser()  # --max-requests: this process sent its share
        state.in_flight += 1
        state.peaks.note_in_flight(state.in_flight)
        text = ""
        level: str | None = None
        warmup: bool | None = None
        try:
            rec, text = exchange.run()
            rec = dataclasses.replace(
                rec,
                turn=turn,
                expected_input_tokens=expected_input,
                requested_output_tokens=max_tokens,
                request_id=exchange.request_id,
                response_id=exchange.response_id,
            )
            if arrival is not None:
                rec = dataclasses.replace(rec, scheduled_at_s=arrival[0])
                level, warmup = arrival[1], arrival[2]
            elif self._open_loop_sender:
                level, warmup = self._arrival_tags  # a later turn of an open-loop conversation
            if rec.ok:
                try:
                    rec = self._with_token_counts(rec, text, msgs)
                except GreenletExit:
                    # the stream had completed; only the count was cut
                    state.record(rec, level, warmup, self.context())
                    raise
        finally:
            state.in_flight -= 1
        state.record(rec, level, warmup, self.context())
        if not self._open_loop_sender:
            self._back_off(rec, config)
        return rec, text

    def _take_budget(self) -> bool:
        """Closed loop with --max-requests: take one request of this process's share."""
        state = self._llm
        if state.request_budget is None:
            return True
        if state.request_budget <= 0:
            return False
        state.request_budget -= 1
        if state.request_budget == 0:
            from llm_locust.locust.budget import spent

            gevent.spawn(spent, state)  # ends the test once the last requests are answered
        return True

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
