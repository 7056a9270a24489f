"""One user sends one request per mock fault, one clean request, then ends the test."""

import gevent
from locust import task

from llm_locust import LLMUser
from llm_locust.mock.server import FAULTS


class FaultUser(LLMUser):
    @task
    def every_fault_once(self) -> None:
        for fault in FAULTS:
            self.chat(mock_fault=fault)
        self.chat()
        gevent.spawn(self.environment.runner.quit)
        gevent.sleep(3600)  # the quit stops this user; no request is in flight
