"""Executors for independent measurements: inline, a local process pool, or Dask distributed.

:func:`make_executor` returns a :class:`concurrent.futures.Executor`; :func:`run_tasks` runs a list
of picklable zero-argument callables on it and returns one :class:`TaskResult` per task **in
submission order**, whatever order they finish in, so that a report built from the results does not
depend on the executor or on the number of jobs (each task carries its own seed).

Why ``spawn`` for the local pool: ``fork`` copies a parent that may already run threads (torch's
intra-op pool, OpenMP/TBB under numba, BLAS, Dask's event loop) and a forked child can deadlock on a
lock held by a thread that was not copied. ``forkserver`` avoids that too but exists only on POSIX;
``spawn`` behaves the same on Linux, macOS and Windows, and its cost (each worker imports numpy and
scorebench once) is paid once per worker, small against a measurement. Tasks must therefore be
picklable and importable by module name (not defined in an interactive ``__main__``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

__all__ = ["SerialExecutor", "DaskExecutor", "TaskResult", "make_executor", "run_tasks"]

EXECUTOR_KINDS = ("local", "serial", "dask")


class SerialExecutor(Executor):
    """Runs each task inline in :meth:`submit` and returns an already finished future."""

    def __init__(self):
        self._shut = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._shut:
            raise RuntimeError("cannot schedule new futures after shutdown")
        fut: Future = Future()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # KeyboardInterrupt propagates to the caller
            fut.set_exception(exc)
        else:
            fut.set_result(value)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shut = True


class DaskExecutor(Executor):
    """A ``distributed`` client's executor; shutting it down also closes what it created."""

    def __init__(self, client, owned: tuple = ()):
        self.client = client
        self._inner = client.get_executor(pure=False)
        self._owned = owned

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)
        for obj in self._owned:
            obj.close()


def _check_jobs(jobs) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected a positive integer or None, got {jobs!r}")
    return jobs


def make_executor(kind: str = "local", jobs: int | None = None, scheduler=None, *, processes: bool = True) -> Executor:
    """Build an executor.

    Parameters
    ----------
    kind : {"local", "serial", "dask"}
        ``local``: a :class:`~concurrent.futures.ProcessPoolExecutor` of ``jobs`` workers started
        with ``spawn`` (see the module docstring). ``serial``: inline. ``dask``: a
        ``distributed.Client``'s executor, connected to ``scheduler`` or, when it is None, to a new
        ``LocalCluster`` of ``jobs`` single-threaded workers (``processes`` chooses worker processes
        or threads; its scheduler's HTTP server on a free port: with distributed's default, 8787,
        two clusters started at once collide and the second fails to start).
    jobs : int, optional
        Number of workers; default ``os.cpu_count()``.
    scheduler : str or distributed.Client or cluster, optional
        Dask only: a scheduler address, an existing client (used, not closed) or a cluster object.
    """
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"kind: expected one of {EXECUTOR_KINDS}, got {kind!r}")
    if scheduler is not None and kind != "dask":
        raise ValueError(f"scheduler: only meaningful with kind='dask', got kind={kind!r}")
    n = _check_jobs(jobs)
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "executor 'dask' needs the optional dependency 'dask': pip install 'scorebench[dask]'"
        ) from exc
    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)
        return DaskExecutor(client, owned=(client, cluster))
    if isinstance(scheduler, distributed.Client):
        return DaskExecutor(scheduler)
    if isinstance(scheduler, str) or hasattr(scheduler, "scheduler_address"):
        client = distributed.Client(scheduler)
        return DaskExecutor(client, owned=(client,))
    raise TypeError(
        f"scheduler: expected an address, a distributed.Client or a cluster, got {type(scheduler).__name__}"
    )


@dataclass
class TaskResult:
    """Outcome of one task: ``status`` is "ok" (``value`` set), "error" (``error``: "Type: message",
    ``traceback``) or "cancelled" (not run, or not finished, before an interrupt)."""

    index: int
    status: str
    value: Any = None
    error: str = ""
    traceback: str = ""
    wall_s: float | None = None
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _call_task(task: Callable[[], Any]) -> tuple:
    """Run a task where it is executed and capture its exception there (some are not picklable)."""
    t0 = time.perf_counter()
    try:
        value = task()
    except Exception as exc:
        return False, None, f"{type(exc).__name__}: {exc}", traceback.format_exc(), time.perf_counter() - t0
    return True, value, "", "", time.perf_counter() - t0


def _collect(fut: Future, index: int, label: str) -> TaskResult:
    try:
        ok, value, err, tb, wall = fut.result()
    except KeyboardInterrupt:
        return TaskResult(index, "cancelled", error="interrupted", label=label)
    except Exception as exc:  # the executor failed (a worker died, a result could not be unpickled)
        return TaskResult(index, "error", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(), label=label)
    if ok:
        return TaskResult(index, "ok", value=value, wall_s=wall, label=label)
    return TaskResult(index, "error", error=err, traceback=tb, wall_s=wall, label=label)


def run_tasks(
    executor: Executor,
    tasks: Iterable[Callable[[], Any]],
    on_done: Callable[[TaskResult, int, int], None] | None = None,
) -> list[TaskResult]:
    """Run every task and return their results in submission order.

    A task that raises gives a ``status="error"`` result and the others go on. ``on_done(result,
    n_done, n_total)`` is called in the calling process as each task finishes (in completion order).
    On KeyboardInterrupt (also one raised by ``on_done``) the pending futures are cancelled, the
    results already finished are kept and every other task is returned as ``status="cancelled"``;
    the caller should then ``executor.shutdown(wait=False, cancel_futures=True)``. A task's
    ``label`` attribute, if any, is copied to its result.
    """
    tasks = list(tasks)
    for i, t in enumerate(tasks):
        if not callable(t):
            raise TypeError(f"tasks: item {i} is not callable ({type(t).__name__})")
    n = len(tasks)
    labels = [str(getattr(t, "label", "")) for t in tasks]
    results: list[TaskResult | None] = [None] * n
    futures: dict[Future, int] = {}
    n_done = 0

    def finish(fut: Future, i: int) -> None:
        nonlocal n_done
        results[i] = _collect(fut, i, labels[i])
        n_done += 1
        if on_done is not None:
            on_done(results[i], n_done, n)

    try:
        for i, t in enumerate(tasks):
            fut = executor.submit(_call_task, t)
            futures[fut] = i
            if fut.done():
                finish(fut, i)
        pending = {f for f, i in futures.items() if results[i] is None}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=futures.__getitem__):
                finish(fut, futures[fut])
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        for fut, i in futures.items():
            if results[i] is None and fut.done() and not fut.cancelled():
                results[i] = _collect(fut, i, labels[i])
    return [r if r is not None else TaskResult(i, "cancelled", error="interrupted before it finished",
                                               label=labels[i]) for i, r in enumerate(results)]
