"""The mock's prefix cache: which prompt tokens an earlier request already sent, in whole blocks, as
vLLM's automatic prefix caching reports them (``cached_tokens``).

A prompt of ``n`` tokens has ``n // block`` whole blocks; block ``i`` is known by a hash of the
model, the tokens of blocks ``0..i`` (each block's hash chains the one before it, so equal hashes
mean equal prefixes). A request's cached tokens are ``block`` times the number of its leading blocks
already remembered; then all its blocks are remembered. Memory is bounded: the least recently used
hashes go first, a prompt's later blocks before its earlier ones (as vLLM evicts), so what is left
of a prompt is always a prefix. Only prompt tokens are remembered, not the answers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

#: block hashes remembered, over every model (about 100 bytes each)
CAPACITY_BLOCKS = 100_000


class PrefixCache:
    """Block hashes of the prompts seen, an LRU of at most ``capacity_blocks``; ``block_tokens`` >= 1."""

    def __init__(self, block_tokens: int, capacity_blocks: int = CAPACITY_BLOCKS) -> None:
        if block_tokens < 1:
            raise ValueError(f"--prefix-cache-block must be >= 1 for a cache, not {block_tokens}")
        self.block_tokens = block_tokens
        self.capacity_blocks = capacity_blocks
        self._lru: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def block_hashes(self, model: str, tokens: Sequence[int]) -> list[int]:
        """The chained hashes of the whole blocks of ``tokens`` (a prompt for ``model``)."""
        b = self.block_tokens
        h = hash(("prefix", model))
        hashes = []
        for start in range(0, len(tokens) - b + 1, b):
            h = hash((h, *tokens[start : start + b]))
            hashes.append(h)
        return hashes

    def hit(self, hashes: Sequence[int]) -> int:
        """The cached tokens of a prompt whose :meth:`block_hashes` are ``hashes``; then they are all
        remembered, the first block as the most recently used."""
        lru = self._lru
        found = 0
        for h in hashes:
            if h not in lru:
                break
            found += 1
        for h in reversed(hashes):
            lru[h] = None
            lru.move_to_end(h)
        while len(lru) > self.capacity_blocks:
            lru.popitem(last=False)
        return found * self.block_tokens

    def clear(self) -> None:
        self._lru.clear()
