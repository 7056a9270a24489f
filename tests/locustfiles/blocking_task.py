"""A locustfile whose task holds the event loop 15 ms before each request (CPU, not a sleep): a
client that cannot keep an open loop's schedule, for the schedule-lag test."""

import time

from locust import task

from llm_locust import LLMUser


class BlockingUser(LLMUser):
    @task
    def busy_then_chat(self) -> None:
        end = time.perf_counter() + 0.015
        while time.perf_counter() < end:
            pass
        self.chat()
