"""A locustfile naming its host (from $LLM_TEST_HOST), run without --host."""

import os

from locust import task

from llm_locust import LLMUser


class HostedUser(LLMUser):
    host = os.environ["LLM_TEST_HOST"]

    @task
    def one(self) -> None:
        self.chat()
