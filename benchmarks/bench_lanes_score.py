"""The generated straight-line score against the generic lanes kernel, side by side.

    pytest benchmarks/bench_lanes_score.py --benchmark-only -p no:cacheprovider -s

One block of 64 lanes (a fused kernel's unit of work), on one thread, for (d, K) in
{(2, 8), (8, 8), (2, 16)}, float64 and float32, score with and without the Laplacian. Each
benchmark round calls the kernel ``REPS`` times from compiled code (so no Python call overhead is
timed). Rows: ``generic`` (:func:`~scorebench.solvers._mixture_lanes_numba.lanes_score_diag_shared`)
and ``generated`` (:mod:`scorebench.solvers._unrolled_score_numba`); ``extra_info`` holds ns per
lane. The last test prints the ratios, measured in this run.
"""

from __future__ import annotations

import numpy as np
import pytest
from _side_by_side import summarize
from numba import njit

from scorebench.solvers import _unrolled_score_numba as unrolled
from scorebench.solvers._mixture_lanes_numba import lanes_score_diag_shared

B, REPS = 64, 2000
CASES = [(d, K, dt, lap) for d, K in ((2, 8), (8, 8), (2, 16)) for dt in ("float64", "float32")
         for lap in (True, False)]
RESULTS: dict = {}
_ptr = unrolled.array_ptr


@njit
def _generic(n, X, A, S2, mT, lamT, logw, lap, L, M, S, P1, P2, SC, LAP):
    for _ in range(n):
        lanes_score_diag_shared(X, A, S2, mT, lamT, logw, lap, L, M, S, P1, P2, SC, LAP)


@njit
def _generated(n, fn, X, A, S2, mT, lamT, logw, SC, LAP):
    for _ in range(n):
        fn(_ptr(X), _ptr(A), _ptr(S2), _ptr(mT), _ptr(lamT), _ptr(logw), _ptr(SC), _ptr(LAP),
           X.shape[1])


def _block(d, K, dt):
    rng = np.random.default_rng(d * 100 + K)
    A = rng.uniform(0.05, 1.0, B)
    S2 = 1.0 - A**2 + 1e-3
    mT = 2.0 * rng.standard_normal((d, K))
    X = A * mT[:, rng.integers(0, K, B)] + np.sqrt(S2) * rng.standard_normal((d, B))
    lamT = np.full((d, K), 0.05)
    logw = np.full(K, -np.log(K))
    return [np.ascontiguousarray(v, dtype=dt) for v in (X, A, S2, mT, lamT, logw)]


@pytest.mark.parametrize("impl", ["generic", "generated"])
@pytest.mark.parametrize("d, K, dt, lap", CASES, ids=[f"d{d}-K{K}-{dt}-{'lap' if lap else 'score'}"
                                                     for d, K, dt, lap in CASES])
def test_lanes_score(benchmark, d, K, dt, lap, impl):
    X, A, S2, mT, lamT, logw = _block(d, K, dt)
    SC, LAP = np.zeros((d, B), dt), np.zeros(B, dt)
    if impl == "generic":
        scratch = (np.empty((K, B), dt), np.empty(B, dt), np.empty(B, dt), np.empty((d, B), dt),
                   np.empty((d, B), dt))
        run = lambda: _generic(REPS, X, A, S2, mT, lamT, logw, lap, *scratch, SC, LAP)  # noqa: E731
    else:
        fn = unrolled.score_function(d, K, dt, lap)
        run = lambda: _generated(REPS, fn, X, A, S2, mT, lamT, logw, SC, LAP)  # noqa: E731
    run()  # compile
    benchmark.group = f"lanes score d={d} K={K} {dt} {'+ Laplacian' if lap else 'only'}"
    t = np.median([_timed(run) for _ in range(5)])
    if benchmark.enabled:
        benchmark.pedantic(run, rounds=10, iterations=1)
        t = benchmark.stats.stats.median
    ns = t / (REPS * B) * 1e9
    benchmark.extra_info.update(impl=impl, ns_per_lane=ns)
    RESULTS.setdefault(benchmark.group, {})[impl] = (ns, SC.copy())
    assert np.all(np.isfinite(SC))


def _timed(fn):
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _same_score(sg, su):
    # both compute the same score: a few ulp apart (tests/solvers/test_unrolled_score.py)
    scale = np.max(np.abs(sg))
    assert np.max(np.abs(sg - su)) <= 64 * np.finfo(sg.dtype).eps * scale


def test_lanes_score_summary(benchmark):
    """ns per lane and the generated kernel's speed-up for every group of this run."""
    summarize(benchmark, RESULTS, "lane", _same_score)
