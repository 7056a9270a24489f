"""Synthetic prompts of an exact number of input tokens for a given tokenizer.

A prompt is plain English words joined by single spaces. The words come from
``llm_locust/data/words.txt``, kept for a tokenizer only when each is one token on its own and
one more token after another word, and when it decodes back to itself (so a WordLevel
tokenizer's ``[UNK]`` never stands in for a word). Every prompt is then encoded once and
words are added or removed until the count is exact, so a pair of words that merges into one
token cannot make a prompt miss its length. This beats decoding random token ids and re-encoding
them (vLLM's random dataset), which drifts because arbitrary ids do not survive a round trip.

Layout of a prompt of ``n`` tokens::

    [shared prefix: N tokens, the same in every prompt of a seed] [unique tag] [random words]

The unique tag is ``unique_tokens`` words spelling the prompt's index in base ``len(vocab)``,
lowest digit first, through a seed-dependent permutation of the vocabulary: two prompts differ
within the tag, and consecutive indices already differ at its first token, so no two prompts share
a cacheable prefix beyond the shared one. With ``shared_prefix_tokens=0`` the tag comes first.

Exactness is of the text as one user message, without special tokens. A server applies its chat
template (role markers, BOS), so the server's ``prompt_tokens`` is higher by a constant per
message for a given model and template; and it counts with its own tokenizer, so pass the model's
tokenizer.json for exact counts on that server.

The same seed gives the same prompts, so a second run against a server that kept its prefix
cache may be served from that cache: change the seed between such runs.
"""

from __future__ import annotations

import contextlib
import random
import weakref
from collections.abc import Iterable
from functools import cache

from llm_locust.errors import ConfigError
from llm_locust.workload.seed import package_text
from llm_locust.workload.tokenizer import Tokenizer

MIN_VOCAB_WORDS = 16
"""Fewer usable words than this means the tokenizer is not one for English text."""

_MAX_FIXES = 32
_vocab_cache: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()


@cache
def _candidate_words() -> tuple[str, ...]:
    return tuple(w for w in package_text("words.txt").split() if w)


def vocabulary(tokenizer: Tokenizer) -> tuple[str, ...]:
    """The words of ``words.txt`` that are single, stable tokens for ``tokenizer`` (cached per
    tokenizer object). Raises :class:`ConfigError` when fewer than ``MIN_VOCAB_WORDS`` are."""
    try:
        return _vocab_cache[tokenizer]
    except (KeyError, TypeError):
        pass
    base = tokenizer.count("the")
    words = tuple(
        w
        for w in _candidate_words()
        if len(ids := tokenizer.encode(w)) == 1
        and tokenizer.count(f"the {w}") == base + 1
        and tokenizer.decode(ids).strip() == w
    )
    if len(words) < MIN_VOCAB_WORDS:
        raise ConfigError(
            f"--tokenizer {tokenizer.name!r}: only {len(words)} of {len(_candidate_words())} common "
            f"English words are single tokens (synthetic prompts need {MIN_VOCAB_WORDS})"
        )
    with contextlib.suppress(TypeError):  # an object that cannot be weakly referenced is not cached
        _vocab_cache[tokenizer] = words
    return words


class SyntheticPrompts:
    """Prompts of exact token counts for one tokenizer, seed and shared prefix length.

    Building one costs the vocabulary check (cached per tokenizer) and the shared prefix; each
    :meth:`prompt` then costs one encode of the prompt, rarely two. Deterministic in ``seed``,
    ``index`` and ``n_tokens``, and independent of the order in which prompts are asked for.
    """

    def __init__(self, tokenizer: Tokenizer, seed: int = 0, shared_prefix_tokens: int = 0) -> None:
        if shared_prefix_tokens < 0:
            raise ConfigError(f"--shared-prefix-tokens {shared_prefix_tokens}: must be 0 or more")
        self._tok = tokenizer
        self._seed = seed
        self._vocab = vocabulary(tokenizer)
        rng = random.Random(f"llm-locust synthetic vocabulary {seed}")
        digits = list(self._vocab)
        rng.shuffle(digits)
        self._digits = tuple(digits)
        self.unique_tokens = _digits_for(len(self._digits), 2**32)
        """How many tokens of the tag tell prompts apart (the tag spells indices below 2**32)."""
        shared_rng = random.Random(f"llm-locust synthetic shared prefix {seed}")
        self._shared_words = self._fit([], shared_prefix_tokens, shared_rng) if shared_prefix_tokens else []
        self.shared_prefix = " ".join(self._shared_words)
        """The text every prompt starts with ("" when ``shared_prefix_tokens`` is 0)."""
        self.shared_prefix_tokens = shared_prefix_tokens

    def tag(self, index: int) -> list[str]:
        """The words that make prompt ``index`` unique: its digits in base len(vocab), lowest first."""
        if not 0 <= index < 2**32:
            raise ValueError(f"synthetic prompt index {index} is outside 0..2**32-1")
        base = len(self._digits)
        words = []
        for _ in range(self.unique_tokens):
            index, digit = divmod(index, base)
            words.append(self._digits[digit])
        return words

    def prompt(self, n_tokens: int, index: int, *, shared_prefix: bool = True) -> str:
        """A prompt of exactly ``n_tokens`` tokens, unique to ``index``.

        ``shared_prefix=False`` leaves the shared prefix out (later turns of a conversation, which
        follow the history rather than start the request). Prompts shorter than the shared prefix
        plus the tag keep as much of them as fits, in that order, and are then not unique.
        """
        if n_tokens < 1:
            raise ValueError(f"a synthetic prompt needs at least 1 token, not {n_tokens}")
        head = (self._shared_words if shared_prefix else []) + self.tag(index)
        rng = random.Random(f"llm-locust synthetic prompt {self._seed} {index}")
        return " ".join(self._fit(head, n_tokens, rng))

    def _fit(self, head: list[str], n_tokens: int, rng: random.Random) -> list[str]:
        """``head`` then random words, grown or cut until the text is exactly ``n_tokens`` tokens."""
        vocab = self._vocab
        words = head[:n_tokens]
        words += rng.choices(vocab, k=n_tokens - len(words))
        previous = -1
        for _ in range(_MAX_FIXES):
            got = self._tok.count(" ".join(words))
            if got == n_tokens:
                return words
            if got == previous and len(words) > len(head):
                # no progress: the last word merges with its neighbour, so draw another
                words[-1] = rng.choice(vocab)
                previous = -1
                continue
            previous = got
            if got < n_tokens:
                words += rng.choices(vocab, k=n_tokens - got)
            else:
                words = words[: max(1, len(words) - (got - n_tokens))]
        raise ConfigError(
            f"--tokenizer {self._tok.name!r}: could not build a prompt of exactly {n_tokens} tokens "
            f"from single-token words after {_MAX_FIXES} tries"
        )


def _digits_for(base: int, count: int) -> int:
    digits, span = 1, base
    while span < count:
        digits, span = digits + 1, span * base
    return digits


def synthetic_prompt(
    tokenizer: Tokenizer, n_tokens: int, index: int, seed: int = 0, shared_prefix_tokens: int = 0
) -> str:
    """One prompt of exactly ``n_tokens`` tokens; for many, build one :class:`SyntheticPrompts`."""
    return SyntheticPrompts(tokenizer, seed, shared_prefix_tokens).prompt(n_tokens, index)


def synthetic_prompts(
    tokenizer: Tokenizer, lengths_tokens: Iterable[int], seed: int = 0, shared_prefix_tokens: int = 0
) -> list[str]:
    """Prompt ``i`` has exactly ``lengths_tokens[i]`` tokens and index ``i``."""
    builder = SyntheticPrompts(tokenizer, seed, shared_prefix_tokens)
    return [builder.prompt(n, i) for i, n in enumerate(lengths_tokens)]
