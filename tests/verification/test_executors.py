"""Executors: identical ordered results on every backend, per-task errors, Ctrl-C, bad input.

Tasks are stdlib/numpy callables (partials, bound methods of a seeded Generator), so they pickle by
reference into 'spawn' workers whatever the test module is called.
"""

import functools
import math
import sys
import time

import numpy as np
import pytest

from scorebench.verification.executors import SerialExecutor, make_executor, run_tasks


def seeded_tasks():
    """Deterministic tasks: seeded normal draws, one failing task (math.sqrt(-1)) in the middle."""
    tasks = [functools.partial(np.random.default_rng(seed).standard_normal, 4) for seed in range(5)]
    tasks.insert(2, functools.partial(math.sqrt, -1.0))
    return tasks


def check_results(results):
    assert [r.index for r in results] == list(range(6))
    assert [r.status for r in results] == ["ok", "ok", "error", "ok", "ok", "ok"]
    assert results[2].error == "ValueError: math domain error" and "Traceback" in results[2].traceback
    for r, seed in zip([results[i] for i in (0, 1, 3, 4, 5)], range(5)):
        np.testing.assert_array_equal(r.value, np.random.default_rng(seed).standard_normal(4))
        assert r.wall_s is not None and r.wall_s >= 0


def run_on(executor):
    done = []
    with executor:
        results = run_tasks(executor, seeded_tasks(), on_done=lambda r, k, n: done.append((r.index, k, n)))
    assert sorted(i for i, _, _ in done) == list(range(6))
    assert [k for _, k, _ in done] == list(range(1, 7)) and all(n == 6 for _, _, n in done)
    return results


def test_serial_local_and_dask_give_identical_ordered_results():
    distributed = pytest.importorskip("distributed")  # the 'dask' extra; installed in CI
    serial = run_on(make_executor("serial"))
    check_results(serial)
    local = run_on(make_executor("local", jobs=2))
    check_results(local)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cl:
        dask_results = run_on(make_executor("dask", scheduler=cl))
    check_results(dask_results)
    owned = run_on(make_executor("dask", jobs=1, processes=False))  # creates and closes its own cluster
    check_results(owned)
    for other in (local, dask_results, owned):
        for a, b in zip(serial, other):
            assert a.status == b.status and a.error == b.error
            if a.ok:
                np.testing.assert_array_equal(a.value, b.value)


class Interrupting:
    """A task that raises KeyboardInterrupt, as Ctrl-C would in the middle of a serial run."""

    def __call__(self):
        raise KeyboardInterrupt


def test_interrupt_keeps_finished_results_and_cancels_the_rest():
    tasks = [functools.partial(pow, 2, k) for k in range(3)] + [Interrupting()] + [functools.partial(pow, 2, 9)]
    results = run_tasks(SerialExecutor(), tasks)
    assert [r.status for r in results] == ["ok", "ok", "ok", "cancelled", "cancelled"]
    assert [r.value for r in results[:3]] == [1, 2, 4]


def test_interrupt_from_callback_cancels_pending_pool_tasks():
    tasks = [functools.partial(time.sleep, 0.2) for _ in range(8)]

    def stop(result, n_done, n_total):
        raise KeyboardInterrupt

    ex = make_executor("local", jobs=1)
    try:
        results = run_tasks(ex, tasks, on_done=stop)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
    statuses = [r.status for r in results]
    assert statuses[0] == "ok" and len(results) == 8
    # with one worker the pool's call queue holds two calls, so besides task 0 at most tasks 1-3 can
    # have started (they are reported "cancelled" too, being unfinished); tasks 4-7 were still pending
    assert statuses[4:] == ["cancelled"] * 4 and set(statuses) <= {"ok", "cancelled"}


def test_labels_are_copied_and_non_callables_rejected():
    task = functools.partial(abs, -3)
    task.label = "abs"  # partial objects accept attributes
    (res,) = run_tasks(SerialExecutor(), [task])
    assert res.ok and res.value == 3 and res.label == "abs"
    with pytest.raises(TypeError, match="tasks: item 1"):
        run_tasks(SerialExecutor(), [task, 3])


def test_make_executor_bad_input(monkeypatch):
    with pytest.raises(ValueError, match="kind"):
        make_executor("threads")
    with pytest.raises(ValueError, match="jobs"):
        make_executor("serial", jobs=0)
    with pytest.raises(ValueError, match="scheduler"):
        make_executor("local", scheduler="tcp://127.0.0.1:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"scorebench\[dask\]"):
        make_executor("dask")
