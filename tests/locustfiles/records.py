"""Writes every request's record as one JSON line to $LLM_RECORDS (for comparisons with the server)."""

import json
import os

from locust import task

from llm_locust import LLMUser


class RecordingUser(LLMUser):
    @task
    def record(self) -> None:
        rec = self.chat()
        row = {
            "outcome": rec.outcome,
            "detail": rec.detail,
            "ttft_ms": rec.ttft_ms,
            "tpot_ms": rec.tpot_ms,
            "e2e_ms": rec.e2e_ms,
            "text_events": rec.text_events,
            "output_tokens": rec.output_tokens,
            "output_tokens_source": rec.output_tokens_source,
            "server_timings": rec.server_timings,
        }
        with open(os.environ["LLM_RECORDS"], "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
