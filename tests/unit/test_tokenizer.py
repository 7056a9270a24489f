"""Token counting works with no network and never on the event loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llm_locust.errors import ConfigError
from llm_locust.mock.engine import WORDS
from llm_locust.workload.tokenizer import load_tokenizer


def test_cl100k_base_loads_with_network_and_cache_blocked(tmp_path: Path) -> None:
    """In a fresh process whose every download attempt fails, cl100k_base still loads."""
    script = textwrap.dedent(
        """
        import socket, requests
        from llm_locust.workload.tokenizer import load_tokenizer
        def no_network(*a, **k):
            raise OSError("network disabled by the test")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        requests.Session.request = no_network
        print(load_tokenizer("cl100k_base").count("Hello world, how are you?"))
        """
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"


def test_mock_words_are_one_cl100k_token_each() -> None:
    tok = load_tokenizer("cl100k_base")
    assert all(tok.count(w) == 1 for w in WORDS)
    text = "".join(WORDS[(i * 7) % len(WORDS)] for i in range(500))
    assert tok.count(text) == 500


def test_local_tokenizer_json(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    assert load_tokenizer(str(path)).count("hello world hello other") == 4


def test_bad_tokenizer_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--tokenizer"):
        load_tokenizer(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match=r"not a valid tokenizer\.json"):
        load_tokenizer(str(bad))


def test_counting_runs_off_the_event_loop() -> None:
    """While a long text is counted, other greenlets keep running (the loop is not blocked)."""
    import time

    import gevent

    from llm_locust.workload.tokenizer import count_off_loop

    tok = load_tokenizer("cl100k_base")
    text = "lorem ipsum dolor sit amet " * 40000
    ticks: list[float] = []

    def ticker() -> None:
        for _ in range(1000):
            ticks.append(time.perf_counter())
            gevent.sleep(0.001)

    g = gevent.spawn(ticker)
    gevent.sleep(0.01)
    start = time.perf_counter()
    n = count_off_loop(tok, text)
    elapsed = time.perf_counter() - start
    g.kill()
    assert n > 100000
    during = [t for t in ticks if start <= t <= start + elapsed]
    # the loop ticked throughout the count (a blocked loop would tick at most once)
    assert elapsed > 0.02 and len(during) >= 5, (elapsed, len(during))
