"""The floor under any gevent client here: N streams read with geventhttpclient ``readline`` only
(no Locust, no SSE or JSON parsing, no metrics). Prints token events per CPU-second.

    python bench/gevent_floor.py URL USERS SECONDS      (against ``llm-locust mock``)
"""

from __future__ import annotations

import os
import sys
import time

import gevent
import locust  # noqa: F401  (the same monkey-patching as a Locust run)
import orjson
from geventhttpclient import HTTPClient


def main() -> int:
    url, users, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "stream": True})
    count = [0]
    stop = time.monotonic() + seconds + 4

    def user() -> None:
        client = HTTPClient.from_url(url, concurrency=1, network_timeout=None)
        while time.monotonic() < stop:
            response = client.post("/v1/chat/completions", body=body)
            while line := response.readline(b"\n"):
                if line.startswith(b"data"):
                    time.perf_counter()
                    count[0] += 1

    for _ in range(users):
        gevent.spawn(user)
    gevent.sleep(3)
    t0, c0, w0 = os.times(), count[0], time.monotonic()
    gevent.sleep(seconds)
    t1, c1, w1 = os.times(), count[0], time.monotonic()
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    print(f"{(c1 - c0) / (w1 - w0):.0f} {cpu / (w1 - w0):.3f} {(c1 - c0) / cpu:.0f}")
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
