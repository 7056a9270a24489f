"""Which conversation a process sends next: its own share of the dataset, cheaply.

Every process of a test (``worker_count`` of them) walks one common order of the dataset, process
``i`` taking positions ``i, i + W, i + 2W, ...`` of it and wrapping around at its end. Taken
together the processes go through the order like one counter would, so no conversation is sent
twice before every conversation has been sent once (while they run at similar rates).

``sequential``: the order of the dataset. ``random``: one permutation from ``seed``, the same in
every process (the processes' strides of it are then disjoint) and the same every pass.
"""

from __future__ import annotations

import random

from llm_locust.workload.dataset import Conversation, Dataset

ORDERS = ("sequential", "random")


class SampleStream:
    """This process's conversations, one :meth:`next` at a time (an index increment, no other work)."""

    def __init__(
        self,
        dataset: Dataset,
        order: str = "sequential",
        seed: int = 0,
        worker_index: int = 0,
        worker_count: int = 1,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order {order!r}: choose one of {ORDERS}")
        if worker_count < 1 or not 0 <= worker_index < worker_count:
            raise ValueError(f"worker {worker_index} of {worker_count}: need 0 <= index < count")
        if not dataset.conversations:
            raise ValueError("a SampleStream needs at least one conversation")
        items = list(dataset.conversations)
        if order == "random":
            random.Random(f"llm-locust sample order {seed}").shuffle(items)
        self._items = tuple(items)
        self._size = len(items)
        self._position = worker_index
        self._stride = worker_count
        self.order = order

    def next(self) -> Conversation:
        """The next conversation of this process's stride, wrapping around at the end."""
        item = self._items[self._position % self._size]
        self._position += self._stride
        return item

    __next__ = next

    def __iter__(self) -> SampleStream:
        return self
