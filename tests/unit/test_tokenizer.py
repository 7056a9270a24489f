"""Token counting works with no network and never on the event loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

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


def official_cl100k_base(cache: Path) -> object:
    """cl100k_base as tiktoken itself builds it (tiktoken_ext.openai_public), its download answered
    from a cache directory that holds the shipped file under tiktoken's cache key for the URL."""
    import hashlib
    import shutil

    import tiktoken
    from tiktoken_ext import openai_public

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache.mkdir()
    key = hashlib.sha1(url.encode()).hexdigest()
    shutil.copy(ROOT / "llm_locust" / "data" / "cl100k_base.tiktoken", cache / key)
    return tiktoken.Encoding(**openai_public.cl100k_base())


def test_shipped_cl100k_base_is_tiktokens_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same ranks, split pattern and special tokens as tiktoken's cl100k_base, so the same ids."""
    from llm_locust.workload import cl100k

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    official: Any = official_cl100k_base(tmp_path / "cache")
    ours = cl100k.encoding()
    assert ours.name == official.name == "cl100k_base"
    assert ours._pat_str == official._pat_str
    assert ours._special_tokens == official._special_tokens
    assert ours._mergeable_ranks == official._mergeable_ranks
    for text in [
        "Hello world, how are you?",
        "  indented\n\ttabs\r\nand ünïcödé — 東京 🚀 1234567 don't WE'LL",
        "<|endoftext|> between <|fim_prefix|>x<|fim_middle|>y<|fim_suffix|>z<|endofprompt|>",
    ]:
        assert ours.encode(text, allowed_special="all") == official.encode(text, allowed_special="all")
        assert ours.encode_ordinary(text) == official.encode_ordinary(text)
    assert ours.encode("<|endoftext|>", allowed_special="all") == [100257]


def test_shipped_cl100k_base_hash_is_the_one_tiktoken_expects() -> None:
    import inspect

    from tiktoken_ext import openai_public

    from llm_locust.workload import cl100k

    assert f'expected_hash="{cl100k.SHA256}"' in inspect.getsource(openai_public.cl100k_base)


def test_damaged_cl100k_base_file_is_a_one_line_error() -> None:
    from llm_locust.workload import cl100k

    data = (ROOT / "llm_locust" / "data" / "cl100k_base.tiktoken").read_bytes()
    with pytest.raises(ConfigError, match=r"^--tokenizer cl100k_base: .* has sha256 [0-9a-f]{64}, not ") as e:
        cl100k.read_ranks(data[:-10] + b"AAAA 99\n")
    assert "\n" not in str(e.value) and "reinstall llm-locust" in str(e.value)


def test_tokenizer_json_without_tokenizers_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tokenizers is the hf extra: without it, --tokenizer path.json says what to install, at the
    start-up check and at load (the module is hidden as if not installed)."""
    from llm_locust.workload import tokenizer

    path = tmp_path / "tokenizer.json"
    path.write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    expected = f"^--tokenizer '{path}' needs the 'tokenizers' package: pip install 'llm-locust\\[hf\\]'$"
    with pytest.raises(ConfigError, match=expected):
        tokenizer.check_spec(str(path))
    with pytest.raises(ConfigError, match=expected):
        tokenizer.load_tokenizer(str(path))
    assert load_tokenizer("cl100k_base").count("still counts") == 2
