"""Where data stages compute: in this process, on a local process pool, or on a Dask cluster.

A stage hands over a picklable top-level function and a list of batches and gets
the results back in order, whoever computed them, so the output is the same
byte for byte wherever it ran. Each batch reports the process id that ran it,
which the stage writes to its log.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable

from .config import ExecutorConfig

# Below this many items a process pool costs more in start-up (each worker imports
# numpy, torch, a model) than it saves: small jobs run in this process.
POOL_MIN_ITEMS = 5000
BATCH = 2000  # items per batch at most
MIN_BATCH = 32  # and at least, or shipping a batch costs more than computing it


@dataclass
class Executor:
    cfg: ExecutorConfig
    log: list[str] = field(default_factory=list)  # one line per job: which processes did the work
    _pool: Any = None
    _client: Any = None

    def map(self, fn: Callable[[list], Any], items: list, what: str) -> list:
        """fn(batch) over batches of `items`, results in batch order: as many batches as it takes to
        give every worker some, up to BATCH items each."""
        if not items:
            return []
        if self.cfg.kind == "dask":
            client = self._dask()
            batches = _split(items, len(client.nthreads()))
            results = client.gather(client.map(_run, [fn] * len(batches), batches, pure=False))
        elif len(items) >= POOL_MIN_ITEMS and self._workers() > 1:
            batches = _split(items, self._workers())
            results = list(self._local().map(_run, [fn] * len(batches), batches))
        else:
            batches = _split(items, 1)
            results = [_run(fn, b) for b in batches]
        pids = sorted({pid for pid, _ in results})
        self.log.append(f"{what}: {len(items)} items in {len(batches)} batches on processes {pids}")
        return [r for _, r in results]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _workers(self) -> int:
        return self.cfg.workers or os.cpu_count() or 1

    def _local(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: a forked copy of a process that already runs torch's thread pool can hang.
            self._pool = ProcessPoolExecutor(self._workers(), mp_context=get_context("spawn"),
                                             initializer=_one_thread_each)
        return self._pool

    def _dask(self):
        if self._client is None:
            from distributed import Client

            if not self.cfg.address:
                raise ValueError("executor: kind dask needs an address (the scheduler, e.g. tcp://host:8786)")
            self._client = Client(self.cfg.address)
        return self._client


def _split(items: list, workers: int) -> list[list]:
    # Two batches per worker at least, so none waits while another finishes a big one.
    size = max(MIN_BATCH, min(BATCH, -(-len(items) // (2 * workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _run(fn: Callable[[list], Any], batch: list) -> tuple[int, Any]:
    return os.getpid(), fn(batch)


def _one_thread_each() -> None:
    # Workers share the cores: one math thread each instead of every worker taking all of them.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
