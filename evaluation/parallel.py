"""Where the work units of ``evaluate.py`` run: each setting of the evaluation (mechanism x billing x horizon, with
every profile and seed of it) and each learner seed of its training grid is one job, and a :class:`Backend` maps a
picklable function over the jobs, returning the results in the jobs' order.

- :class:`ProcessBackend` (the default): a local pool of fresh interpreters (:func:`process_pool`; one for the whole
  of ``evaluate.py`` within :func:`shared_pool`), or this process when one worker suffices.
- :class:`RayBackend`: one Ray task per job, on a local Ray started here or on the cluster at ``address`` (core Ray,
  the optional ``ray`` extra).

A job's result depends only on the job (its seeds), and every job runs with one torch thread on either backend, so
both give the same results whatever the scheduling.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from envs.config import ConfigError

if TYPE_CHECKING:
    from evaluation.config import EvalConfig

J = TypeVar("J")
R = TypeVar("R")

RAY_MISSING = "--backend ray needs Ray, an optional extra: pip install -e '.[ray]'"
PARENT_POLL_SECONDS = 1.0  # how often a pool worker checks that its parent is still there


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of fresh interpreters, one torch thread each: forking a process whose torch has started its thread
    pool can deadlock the children, and two cores are best used by two single-threaded workers. The workers exit
    when this process dies, even by SIGKILL (:func:`_init_worker`)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


@dataclass
class _SharedPool:
    workers: int
    pool: ProcessPoolExecutor | None = None  # started by the first map that needs it


_SHARED: list[_SharedPool] = []  # the innermost shared_pool block's, if any


@contextlib.contextmanager
def shared_pool(workers: int) -> Iterator[None]:
    """Within this block every :class:`ProcessBackend` of ``workers`` workers maps its jobs on one pool, started when
    first needed: a main job's training, evaluation and decision phases start their workers (and import torch there)
    once, not three times. Jobs must leave no state a later job depends on; ours do not (every draw is seeded per
    job)."""
    shared = _SharedPool(workers)
    _SHARED.append(shared)
    try:
        yield
    finally:
        _SHARED.pop()
        if shared.pool is not None:
            shared.pool.shutdown(cancel_futures=True)  # after an error, the jobs not yet started do not run


def _init_worker(parent: int) -> None:
    """Runs in each pool worker before its first job: one torch thread, and a daemon thread that ends the worker
    once ``parent`` (the pid of the process that made the pool) is gone."""
    single_thread()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """Runs in a pool worker's watchdog thread: ``os._exit(1)`` once the worker has been re-parented, i.e. its
    parent died. A parent killed by SIGKILL cannot shut its pool down, and its workers (in a job or waiting for one)
    would otherwise run on."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def single_thread() -> None:
    """One thread for torch and for numpy's BLAS in this process. Every job runs so: the small matrix products of a
    policy or a bandit mechanism are fastest on one thread (a BLAS pool of two threads per worker on two busy cores
    runs them 2-6x slower), and a fixed thread count keeps the arithmetic, and so the results, the same anywhere."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")


class Backend(ABC):
    """Runs jobs: maps a picklable function over picklable jobs, the results in the jobs' order."""

    @abstractmethod
    def map(self, fn: Callable[[J], R], jobs: Sequence[J], desc: str, progress: bool = True) -> list[R]:
        """``[fn(job) for job in jobs]``, with a progress bar named ``desc`` (none when ``progress`` is False)."""

    def map_longest_first(
        self, fn: Callable[[J], R], jobs: Sequence[J], cost: Callable[[J], float], desc: str, progress: bool = True
    ) -> list[R]:
        """:meth:`map` with the jobs started in decreasing ``cost`` (longest processing time first, so no worker
        idles at the end while one long job runs); the results still in the jobs' order."""
        order = sorted(range(len(jobs)), key=lambda k: -cost(jobs[k]))
        results = self.map(fn, [jobs[k] for k in order], desc, progress)
        out: list[Any] = [None] * len(jobs)
        for k, result in zip(order, results):
            out[k] = result
        return out


@dataclass(frozen=True)
class ProcessBackend(Backend):
    """Jobs in a local :func:`process_pool` of ``workers`` processes; in this process when ``inline`` and there is
    one worker or one job (training keeps ``inline`` off: its results must not depend on this process's torch
    threads)."""

    workers: int = 1
    inline: bool = True

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], desc: str, progress: bool = True) -> list[R]:
        from tqdm.auto import tqdm

        if not jobs:
            return []
        if self.inline and (self.workers == 1 or len(jobs) == 1):
            return [fn(job) for job in tqdm(jobs, desc=desc, disable=not progress)]
        if _SHARED and _SHARED[-1].workers == self.workers:
            shared = _SHARED[-1]
            shared.pool = shared.pool or process_pool(self.workers)
            return list(tqdm(shared.pool.map(fn, jobs), total=len(jobs), desc=desc, disable=not progress))
        with process_pool(min(self.workers, len(jobs))) as pool:
            return list(tqdm(pool.map(fn, jobs), total=len(jobs), desc=desc, disable=not progress))


def _import_ray() -> ModuleType:
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _ray_job(fn: Callable[[J], R], job: J, cwd: str) -> R:
    """Runs in a Ray worker: one job, with one torch thread (as in the pool) in the driver's working directory
    ``cwd``, where the jobs' relative paths (``--out``, run dirs) point; a cluster's nodes must share it."""
    if not os.path.isdir(cwd):
        raise ConfigError(
            f"Ray worker on {socket.gethostname()}: the driver's working directory {cwd} does not exist "
            f"here; the nodes of a Ray cluster must share it at the same path (e.g. over NFS)"
        )
    os.chdir(cwd)
    single_thread()
    return fn(job)


@dataclass(frozen=True)
class RayBackend(Backend):
    """One Ray task (one CPU) per job. Connects to the cluster at ``address`` (``auto``: the one ``ray start`` runs
    on this node; or the head's ``<ip>:6379``) or, without one, starts a local Ray of ``workers`` CPUs; a Ray already
    initialized in this process is used as it is. The connection stays up for the process's later maps.
    """

    workers: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        _import_ray()

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], desc: str, progress: bool = True) -> list[R]:
        from tqdm.auto import tqdm

        if not jobs:
            return []
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address is None:
                ray.init(num_cpus=self.workers)
            else:
                try:
                    ray.init(address=self.address)
                except ConnectionError as exc:
                    raise ConfigError(f"--address {self.address}: no Ray cluster there ({exc})") from None
        # No retries: a training job that died half-way would find its own run dir and refuse to start again.
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_job)
        refs = [task.remote(fn, job, os.getcwd()) for job in jobs]
        index = {ref: k for k, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        try:
            with tqdm(total=len(refs), desc=desc, disable=not progress) as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    results[index[done[0]]] = ray.get(done[0])  # a failed job raises here, at once
                    bar.update(1)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return results


def make_backend(cfg: EvalConfig, inline: bool = True) -> Backend:
    """The backend an evaluation's config names (``backend``, ``workers``, ``address``; checked by
    :class:`evaluation.config.EvalConfig`); ``inline`` as in :class:`ProcessBackend`."""
    return RayBackend(cfg.workers, cfg.address) if cfg.backend == "ray" else ProcessBackend(cfg.workers, inline)
