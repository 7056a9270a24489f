"""Where each process's conversations come from: the dataset of the test's ``--dataset``, loaded
once per process at the test start (in the thread pool), and this process's share of it.

With N workers, the test's owner numbers the workers it starts the test with (0..N-1, by Locust's
worker index) and sends the numbering with the options; each worker takes its own stride of the
dataset (:class:`~llm_locust.workload.sampler.SampleStream`), so in ``sequential`` order no
conversation is sent by two workers before the dataset is used up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from llm_locust.errors import ConfigError
from llm_locust.locust.options import RunConfig
from llm_locust.workload.tokenizer import Tokenizer

if TYPE_CHECKING:
    from llm_locust.workload.dataset import Dataset
    from llm_locust.workload.sampler import SampleStream

#: parsed option the owner of the test writes for its workers: worker id -> slot
SLOTS_OPTION = "llm_worker_slots"


def assign_worker_slots(environment: Any) -> None:
    """On the master, at the test start: number the connected workers 0..N-1 (in Locust's order)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or environment.parsed_options is None:
        return
    nodes = [*runner.clients.ready, *runner.clients.spawning, *runner.clients.running]
    ids = sorted({node.id for node in nodes}, key=runner.get_worker_index)
    setattr(environment.parsed_options, SLOTS_OPTION, {worker_id: slot for slot, worker_id in enumerate(ids)})


def worker_slot(environment: Any) -> tuple[int, int]:
    """(this process's slot, how many processes share the dataset)."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return 0, 1
    slots = getattr(environment.parsed_options, SLOTS_OPTION, None) or {}
    if runner.client_id in slots:
        return int(slots[runner.client_id]), len(slots)
    return 0, 1  # a worker the test did not start with (it joined later): the whole dataset


def load_samples(
    config: RunConfig, tokenizer: Tokenizer | None, slot: int, slots: int
) -> tuple[Dataset, SampleStream]:
    """The test's dataset and this process's stream of it; loading runs in the thread pool (files are
    parsed, prompts built and counted there), so the event loop keeps running. Raises ConfigError."""
    from llm_locust.workload.dataset import load_dataset
    from llm_locust.workload.sampler import SampleStream

    workload = config.workload

    def load() -> Dataset | ConfigError:  # returned, not raised: gevent prints what a pool task raises
        try:
            return load_dataset(workload.dataset, tokenizer)
        except ConfigError as exc:
            return exc

    dataset = gevent.get_hub().threadpool.apply(load)
    if isinstance(dataset, ConfigError):
        raise dataset
    stream = SampleStream(dataset, workload.order, workload.dataset.seed, slot, slots)
    return dataset, stream
