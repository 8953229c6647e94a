"""The oracle's generated small-d kernel against its generic numba kernel, side by side.

    NUMBA_NUM_THREADS=1 pytest benchmarks/bench_oracle_generated.py --benchmark-only \
        -p no:cacheprovider -s

Score and Laplacian of N = 20,000 points of p_t (VP, t = 0.1) for d in {1, 2, 3, 4} and
K in {8, 64}, d = 2 with K = 1, and d in {5, 6, 8} with K = 8, full random covariances
(``scorebench.bench.workloads.random_mixture``, condition numbers <= 15), through
:func:`~scorebench.analytic._mixture_numba.mixture_terms_numba` at a common time:
``generated`` (:mod:`scorebench.analytic._unrolled_mixture_numba` in its inverse form, what the
oracle runs for these covariances), ``eigenbasis`` (the generated kernel's other form, d <= 4,
what it runs for ill-conditioned ones) and ``generic`` (the same call with the generated kernel
switched off). ``extra_info`` holds ns per (point, component) pair; the last test prints the
ratios, measured in this run, and checks that the implementations give the same numbers (to
1e-12 of the terms' scale; ``tests/analytic/test_unrolled_mixture.py`` derives that threshold).
"""

from __future__ import annotations

import numpy as np
import pytest

from _side_by_side import summarize

from scorebench.analytic import _mixture_numba
from scorebench.analytic import _unrolled_mixture_numba as generated
from scorebench.analytic._mixture_numba import mixture_terms_numba
from scorebench.analytic.sde import VPSDE
from scorebench.bench.workloads import random_mixture

N, T = 20_000, 0.1
# K = 1: the generated kernel's one-component chunk (it used to pad K = 1 to 4 components)
CASES = [(d, K) for d in (1, 2, 3, 4) for K in (8, 64)] + [(2, 1), (5, 8), (6, 8), (8, 8)]
WANT = ("score", "laplacian")
RESULTS: dict = {}


def _problem(d, K):
    mix = random_mixture(d, K, 100 * d + K)
    sde = VPSDE()
    a, s2 = float(sde.mean_coeff(T)), float(sde.marginal_var(T))
    rng = np.random.default_rng(d + K)
    k = rng.integers(0, K, N)
    L = np.linalg.cholesky(a * a * mix.covs + s2 * np.eye(d))
    x = a * mix.means[k] + np.einsum("nij,nj->ni", L[k], rng.standard_normal((N, d)))
    return (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2)


# (the eigenbasis form serves d <= 4 only)
RUNS = [(d, K, impl) for d, K in CASES for impl in ("generic", "eigenbasis", "generated")
        if impl != "eigenbasis" or d <= generated.MAX_D]


@pytest.mark.parametrize("d, K, impl", RUNS, ids=[f"d{d}-K{K}-{impl}" for d, K, impl in RUNS])
def test_oracle_kernel(benchmark, monkeypatch, d, K, impl):
    if impl == "generic":
        monkeypatch.setattr(generated, "applies", lambda d, K, inverse=False: False)
    elif impl == "eigenbasis":
        monkeypatch.setattr(_mixture_numba, "_INVERSE_MAX_COND", 0.0)
    args = _problem(d, K)
    run = lambda: mixture_terms_numba(*args, WANT)  # noqa: E731
    out = run()  # compile
    benchmark.group = f"oracle score + Laplacian d={d} K={K}"
    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
    ns = benchmark.stats.stats.median / (N * K) * 1e9
    benchmark.extra_info.update(impl=impl, ns_per_pair=ns)
    RESULTS.setdefault(benchmark.group, {})[impl] = (ns, out)
    assert np.all(np.isfinite(out["score"])) and np.all(np.isfinite(out["laplacian"]))


def _same_numbers(out_g, out_u):
    for key in WANT:  # to 1e-12 of their scale
        scale = np.max(np.abs(out_g[key]))
        assert np.max(np.abs(out_g[key] - out_u[key])) <= 1e-12 * scale


def test_oracle_kernel_summary(benchmark):
    """ns per pair and the generated kernel's speed-up for every group of this run."""
    summarize(benchmark, RESULTS, "pair", _same_numbers,
              (("generic", "generated"), ("eigenbasis", "generated")))
