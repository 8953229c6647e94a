"""The fused numba fast paths against their peers and against the machine's bound, in one run.

    pytest benchmarks/bench_fused.py --benchmark-only -p no:cacheprovider -s            # all
    pytest benchmarks/bench_fused.py --benchmark-only -p no:cacheprovider -s -k quick   # quick set

Groups (``benchmark.group``; workloads from :mod:`_workloads`, peers from :mod:`_peers`, bound
from :mod:`_bounds`):

``a: loglik ring8 N=10000``
    PF-ODE log-likelihood, exact divergence, VP, eps = 1e-5, exact prior. Rows: the fused
    per-sample DOPRI5 (``dopri5_loglik_numba``, float64 and float32) at rtol = atol = 5e-5, 2e-5,
    1e-5, 1e-6; scipy RK45 on the flattened batch with the exact numpy score and Laplacian, and
    torchdiffeq dopri5 (when installed), at 1e-5, 5e-6, 2e-6, 1e-6, 1e-7 (a batch-norm peer must
    tighten its tolerance to reach the same worst-point accuracy). ``extra_info``: max and mean |logp - log p_eps|, NFE, the exp bound.
    The summary compares the fastest rows with max error below 1e-3 (work-precision).
``c: EM ring8 N=.. steps=..``
    Reverse-SDE Euler–Maruyama from exact p_T samples: fused numba (float64 and float32,
    in-kernel noise) against the tutorials' torch loop in float32 and float64. Quick: N = 20,000, 200 steps; full:
    N = 100,000, 1000 steps. ``extra_info``: the largest error of the sample mean and second
    moments against p_eps in Monte Carlo standard errors, the exp + normal bound.
``d: PC ring8 ..``
    Predictor–corrector, one corrector step, snr = 0.16: fused numba with batch and per-sample
    norms against the torch loop (batch norms, float32).
``bounds``
    The four primitive rates of :mod:`_bounds` (per element).

The last test prints the table of times, ratios to the best peer and to the bound, and
accuracies, and stores it in its ``extra_info``.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest
import torch
from _bounds import measure_rates
from _peers import (scipy_rk45_loglik, torch_em_loop, torch_pc_loop, torchdiffeq_available,
                    torchdiffeq_loglik)
from _workloads import likelihood_workload, sampling_workload

from scorebench.solvers.fused_likelihood_numba import dopri5_loglik_numba
from scorebench.solvers.fused_sampling_numba import em_sample_numba, pc_sample_numba

K, D = 8, 2
RESULTS: dict = {}  # group -> impl -> row


@pytest.fixture(scope="module")
def rates():
    return measure_rates()


def _run(benchmark, fn, rounds):
    """Benchmark ``fn`` (warm-up excluded); return (its output, median seconds)."""
    out = fn()  # warm-up: numba compilation, torch start-up
    if benchmark.enabled:
        out = benchmark.pedantic(fn, rounds=rounds, iterations=1)
        return out, benchmark.stats.stats.median
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _record(benchmark, group, impl, seconds, bound, **info):
    row = dict(seconds=seconds, bound_s=bound, ratio_to_bound=seconds / bound, **info)
    RESULTS.setdefault(group, {})[impl] = row
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, threads=numba.get_num_threads(), **row)


# ----------------------------------------------------------------------------- (a) likelihood
LIK_GROUP = "a: loglik ring8 N=10000"
# rtol = atol in a 1-2-5 sequence (as `scorebench bench`): each family's time to max error 1e-3
# is then measured at most one half-step tighter than it needs
LIK_ROWS = ([(impl, tol) for impl in ("fused-numba", "fused-numba-float32")
             for tol in (5e-5, 2e-5, 1e-5, 1e-6)]
            + [(impl, tol) for impl in ("scipy-rk45", "torchdiffeq-dopri5")
               for tol in (1e-5, 5e-6, 2e-6, 1e-6, 1e-7)])


@pytest.fixture(scope="module")
def lik():
    return likelihood_workload(10_000)


@pytest.mark.parametrize("impl, tol", LIK_ROWS, ids=[f"{i}-{t:.0e}-quick" for i, t in LIK_ROWS])
def test_loglik(benchmark, rates, lik, impl, tol):
    oracle, x, exact, eps = lik
    torch.set_num_threads(numba.get_num_threads())
    if impl.startswith("fused-numba"):
        # float32: the same points rounded to float32, scored against the float64 exact values
        xi = x.astype(np.float32) if impl.endswith("float32") else x

        def fn():
            r = dopri5_loglik_numba(oracle, xi, eps, tol, tol, prior="exact")
            return r.logp, float(r.nfe.mean())
        rounds = 5
    elif impl == "scipy-rk45":
        def fn():
            return scipy_rk45_loglik(oracle, x, eps, tol, tol)
        rounds = 1
    else:
        if not torchdiffeq_available():
            pytest.skip("torchdiffeq is not installed (pip install scorebench[peers])")

        def fn():
            return torchdiffeq_loglik(oracle, x, eps, tol, tol)
        rounds = 1
    (logp, nfe), sec = _run(benchmark, fn, rounds)
    err = np.abs(logp - exact)
    n_exp = x.shape[0] * K * nfe
    _record(benchmark, LIK_GROUP, f"{impl} rtol={tol:.0e}", sec, rates.bound(n_exp),
            bound_numpy_s=rates.bound_numpy(n_exp), max_err=float(err.max()),
            mean_err=float(err.mean()), nfe=nfe, rtol=tol)


# ----------------------------------------------------------------------------- (c), (d) sampling
SIZES = {"quick": (20_000, 200), "full": (100_000, 1000)}


@pytest.fixture(scope="module")
def samp():
    cache = {}

    def get(size):
        if size not in cache:
            cache[size] = sampling_workload(*SIZES[size])
        return cache[size]

    return get


def _moment_error(oracle, x, eps):
    """Largest |error| of the sample mean and second moments against p_eps, in standard errors."""
    mix = oracle.marginal(eps)
    mean, cov = mix.mean(), mix.covariance()
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    second = x.T @ x / n
    ex2 = cov + np.outer(mean, mean)
    se_second = np.sqrt(np.var(x[:, :, None] * x[:, None, :], axis=0) / n)
    return float(max(np.max(np.abs(x.mean(0) - mean) / se_mean),
                     np.max(np.abs(second - ex2) / se_second)))


EM_ROWS = [(size, impl) for size in SIZES
           for impl in ("fused-numba", "fused-numba-f32", "torch-f32", "torch-f64")]


@pytest.mark.parametrize("size, impl", EM_ROWS, ids=[f"{i}-{s}" for s, i in EM_ROWS])
def test_em(benchmark, rates, samp, size, impl):
    oracle, x_T, grid = samp(size)
    torch.set_num_threads(numba.get_num_threads())
    if impl.startswith("fused-numba"):
        x0 = x_T.astype(np.float32) if impl.endswith("f32") else x_T

        def fn():
            return em_sample_numba(oracle, x0, grid, seed=1)
    else:
        dtype = torch.float32 if impl == "torch-f32" else torch.float64

        def fn():
            return torch_em_loop(oracle, x_T, grid, dtype=dtype, seed=1)
    out, sec = _run(benchmark, fn, 3 if size == "quick" or impl.startswith("fused") else 1)
    n, steps = x_T.shape[0], grid.size - 1
    group = f"c: EM ring8 N={n} steps={steps}"
    _record(benchmark, group, impl, sec, rates.bound(n * K * steps, n * D * steps),
            bound_numpy_s=rates.bound_numpy(n * K * steps, n * D * steps),
            moment_err_in_se=_moment_error(oracle, out, grid[-1]))


PC_ROWS = [(size, impl) for size in SIZES
           for impl in ("fused-numba-batch", "fused-numba-sample", "torch-f32")]


@pytest.mark.parametrize("size, impl", PC_ROWS, ids=[f"{i}-{s}" for s, i in PC_ROWS])
def test_pc(benchmark, rates, samp, size, impl):
    oracle, x_T, grid = samp(size)
    torch.set_num_threads(numba.get_num_threads())
    if impl.startswith("fused"):
        norm = impl.rsplit("-", 1)[1]

        def fn():
            return pc_sample_numba(oracle, x_T, grid, snr=0.16, n_corrector=1, norm=norm, seed=1)
    else:
        def fn():
            return torch_pc_loop(oracle, x_T, grid, snr=0.16, n_corrector=1, seed=1)
    out, sec = _run(benchmark, fn, 3 if size == "quick" or impl.startswith("fused") else 1)
    n, steps = x_T.shape[0], grid.size - 1
    group = f"d: PC ring8 N={n} steps={steps}"
    _record(benchmark, group, impl, sec, rates.bound(2 * n * K * steps, 2 * n * D * steps),
            bound_numpy_s=rates.bound_numpy(2 * n * K * steps, 2 * n * D * steps),
            moment_err_in_se=_moment_error(oracle, out, grid[-1]))


# ----------------------------------------------------------------------------- bounds, summary
def test_bounds_quick(benchmark, rates):
    benchmark.group = "bounds"
    benchmark.extra_info.update(rates.as_dict())
    benchmark.pedantic(lambda: None, rounds=1)


def test_zz_summary_quick(benchmark):
    """Print and store the ratio table of everything measured in this run."""
    lines, table = [], {}
    for group, rows in RESULTS.items():
        fused = {k: v for k, v in rows.items() if k.startswith("fused")}
        peers = {k: v for k, v in rows.items() if not k.startswith("fused")}
        lines.append(f"\n{group}")
        for impl, r in rows.items():
            extra = {k: r[k] for k in ("max_err", "mean_err", "nfe", "moment_err_in_se") if k in r}
            lines.append(f"  {impl:28s} {r['seconds']:9.4f} s   x bound {r['ratio_to_bound']:7.2f}"
                         f"   " + "  ".join(f"{k}={v:.3g}" for k, v in extra.items()))
        if fused and peers:
            best_f = min(fused.items(), key=lambda kv: kv[1]["seconds"])
            best_p = min(peers.items(), key=lambda kv: kv[1]["seconds"])
            ratio = best_p[1]["seconds"] / best_f[1]["seconds"]
            table[group] = {"speedup_vs_best_peer": ratio, "fused": best_f[0], "peer": best_p[0]}
            lines.append(f"  speed-up of {best_f[0]} over the fastest peer ({best_p[0]}): "
                         f"{ratio:.1f}x")
            if "max_err" in best_f[1]:  # equal worst-point accuracy (max error <= 1e-3)
                ok_f = [v for v in fused.values() if v["max_err"] < 1e-3]
                ok_p = [v for v in peers.values() if v["max_err"] < 1e-3]
                if ok_f and ok_p:
                    r = min(v["seconds"] for v in ok_p) / min(v["seconds"] for v in ok_f)
                    table[group]["speedup_at_max_err_1e-3"] = r
                    lines.append(f"  at equal worst-point accuracy (max error < 1e-3): {r:.1f}x")
                else:
                    lines.append("  no peer row reached max error < 1e-3")
    print("\n".join(lines))
    benchmark.group = "summary"
    benchmark.extra_info.update(table)
    benchmark.pedantic(lambda: None, rounds=1)
