"""cl100k_base from the file shipped in ``llm_locust/data/``: no download, no cache directory.

The file is OpenAI's ``cl100k_base.tiktoken`` (one ``base64(token) rank`` per line, tiktoken's
``load_tiktoken_bpe`` format). It is checked against the sha256 that tiktoken itself expects for it
(``tiktoken_ext/openai_public.py``), and the encoding is built with cl100k_base's split pattern and
special tokens as tiktoken builds it; the tests hold the result equal to tiktoken's own.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources
from typing import Any

from llm_locust.errors import ConfigError

NAME = "cl100k_base"
FILE = "cl100k_base.tiktoken"
#: tiktoken_ext.openai_public.cl100k_base's expected_hash
SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: tiktoken_ext.openai_public.cl100k_base's pat_str and special tokens
PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def read_ranks(data: bytes, where: str = FILE) -> dict[bytes, int]:
    """The mergeable ranks of a ``.tiktoken`` file's bytes, after checking them against :data:`SHA256`."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ConfigError(
            f"--tokenizer cl100k_base: {where} has sha256 {digest}, not tiktoken's {SHA256} "
            "(a damaged install: reinstall llm-locust)"
        )
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def encoding() -> Any:
    """A ``tiktoken.Encoding`` for cl100k_base, from the shipped file. Blocking (reads 1.7 MB)."""
    import tiktoken

    ref = resources.files("llm_locust").joinpath("data", FILE)
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--tokenizer cl100k_base: cannot read {ref}: {exc.strerror}") from None
    return tiktoken.Encoding(
        name=NAME, pat_str=PAT_STR, mergeable_ranks=read_ranks(data, str(ref)), special_tokens=SPECIAL_TOKENS
    )
