r"""Speed of the mixture oracle's score and Laplacian, per backend, against a plain-numpy baseline.

    pytest benchmarks/bench_oracle.py --benchmark-only --benchmark-min-rounds=3 \
        --benchmark-json=out.json && python benchmarks/ratios.py out.json

Workload (issue 2 item 5, issue 5 workload e): N = 1e5 points of p_t (VP, t = 0.5) for
d in {2, 16, 64} and K in {8, 64}, full random covariances (eigenvalues in [0.01, 1], random
rotations), through ``score`` and ``score_and_laplacian``. Implementations:

``baseline``  plain numpy "the obvious way" (:mod:`_baselines`): inv/slogdet per call, (N, K, d)
              arrays, logsumexp;
``numpy``     the float64 reference kernel (eigendecomposition trick, chunked);
``numba``     the fused numba kernel;
``numba32``   the same on float32 points (float32 kernels, float32 results);
``torch64``, ``torch32``  the torch backend on CPU tensors (chunked here to 2**22 elements per
              (n, K, d) temporary: the torch kernel itself does not chunk).

Each group (``benchmark.group``) is one (op, d, K), so pytest-benchmark shows the backends side
by side. In the groups where a slow implementation would take minutes, it runs on fewer points
(``points_for``; all of them with ``--oracle-full-n``); every row records ``n_points`` and
``ratios.py`` compares times per point (the kernels are linear in N). ``-k quick`` keeps the
d = 2 and d = 16 groups with K = 8 and the machine-limit rows. Each row also records the
largest error of that implementation against the numpy reference on the first 2000 points.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import pytest
import torch
from _baselines import obvious_score_laplacian
from _limits import exp_arguments, numba_exp_all_threads

from scorebench.analytic._mixture_numpy import mixture_terms
from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE

N = 100_000
T = 0.5
GROUPS = [(2, 8), (2, 64), (16, 8), (16, 64), (64, 8), (64, 64)]
QUICK = {(2, 8), (16, 8)}
IMPLS = ["baseline", "numpy", "numba", "numba32", "torch64", "torch32"]
OPS = ["score", "score_and_laplacian"]
_TORCH_CHUNK_ELEMS = 1 << 22
_ACCURACY_POINTS = 2000


def points_for(impl, d, K, full):
    """Points for one implementation: N for numba (and with --oracle-full-n), else capped so a
    call of the slower kernels stays near a second (work ~ n K d^2)."""
    if impl in ("numba", "numba32") or full:
        return N
    return min(N, max(2000, int(4e8 // (K * (d * d + 16)))))


@functools.lru_cache(maxsize=None)
def problem(d, K):
    """A fixed random mixture with full covariances, its oracles and N points of p_T."""
    rng = np.random.default_rng(1000 * d + K)
    covs = []
    for _ in range(K):
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        q *= np.sign(np.diag(r))
        covs.append((q * np.exp(rng.uniform(np.log(1e-2), 0.0, d))) @ q.T)
    mix = GaussianMixture(rng.random(K) + 0.1, 2.0 * rng.standard_normal((K, d)), np.array(covs))
    sde = VPSDE()
    oracles = {b: MixtureOracle(mix, sde, backend=b) for b in ("numpy", "numba")}
    x = oracles["numpy"].sample(N, T, rng)
    return mix, sde, oracles, x


def _torch_call(oracle, x, op, dtype):
    xt = torch.as_tensor(x, dtype=dtype)
    step = max(1, _TORCH_CHUNK_ELEMS // (oracle.K * oracle.d))
    parts = [getattr(oracle, op)(xt[i:i + step], T) for i in range(0, xt.shape[0], step)]
    if op == "score":
        return parts
    return [p[0] for p in parts], [p[1] for p in parts]


def runner(impl, op, d, K, n):
    """A zero-argument callable running ``op`` with ``impl`` on the first ``n`` points."""
    mix, sde, oracles, x = problem(d, K)
    xs = np.ascontiguousarray(x[:n])
    if impl == "baseline":
        a, s2 = sde.mean_coeff(T), sde.marginal_var(T)
        return lambda: obvious_score_laplacian(xs, mix.weights, mix.means, mix.covs, a, s2,
                                               op == "score_and_laplacian")
    if impl in ("numpy", "numba"):
        return functools.partial(getattr(oracles[impl], op), xs, T)
    if impl == "numba32":
        return functools.partial(getattr(oracles["numba"], op), xs.astype(np.float32), T)
    dtype = torch.float64 if impl == "torch64" else torch.float32
    return functools.partial(_torch_call, oracles["numpy"], xs, op, dtype)


def _as_numpy(parts):
    if isinstance(parts, list):
        return np.concatenate([p.double().numpy() for p in parts])
    return np.asarray(parts, dtype=np.float64)


def accuracy(impl, op, d, K):
    """Largest error against the numpy reference on the first 2000 points, relative to the
    reference's root-mean-square value: (score error, Laplacian error or None)."""
    mix, sde, _, x = problem(d, K)
    m = _ACCURACY_POINTS
    out = runner(impl, op, d, K, m)()
    score, lap = out if impl == "baseline" else ((out, None) if op == "score" else out)
    ref = mixture_terms(x[:m], mix.means, mix.eigvecs, mix.eigvals, mix.log_weights,
                        sde.mean_coeff(T), sde.marginal_var(T), ("score", "laplacian"))

    def rel(got, want):
        return float(np.max(np.abs(_as_numpy(got) - want)) / np.sqrt(np.mean(want ** 2)))

    return rel(score, ref["score"]), (None if lap is None else rel(lap, ref["laplacian"]))


def _kernel_flops(d, K, n):
    """Flops of one (d, d) product per pair (C_k^{-1} x at a common time, as
    ``scorebench.bench.workloads.pair_flops``): the matrix-multiply part of the bound (the rest
    of the work is O(d) per pair)."""
    return 2.0 * d * d * K * n


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "dk",
    [pytest.param(g, id=f"d{g[0]}-K{g[1]}" + ("-quick" if g in QUICK else "")) for g in GROUPS],
)
def test_oracle_kernel(benchmark, request, dk, impl, op):
    d, K = dk
    n = points_for(impl, d, K, request.config.getoption("--oracle-full-n"))
    fn = runner(impl, op, d, K, n)
    err_s, err_l = accuracy(impl, op, d, K)  # also warms up (numba compilation, torch)
    benchmark.group = f"{op} d={d} K={K}"
    benchmark.extra_info.update(
        impl=impl, op=op, d=d, K=K, n_points=n, exps=n * K, flops=_kernel_flops(d, K, n),
        max_rel_err_score=err_s, max_rel_err_laplacian=err_l, threads=numba.get_num_threads(),
    )
    benchmark(fn)


# ----------------------------------------------------------------------------- machine limits
_EXP_N = 1 << 16  # cache-resident: the exponentials of a kernel never leave L1/L2 either
_MM_N = 1024


@pytest.mark.parametrize("impl", ["numpy-1-thread", "numba-all-threads"])
def test_limit_exp_quick(benchmark, impl):
    x = exp_arguments(_EXP_N * (1 if impl.startswith("numpy") else 2 * numba.get_num_threads()))
    out = np.empty_like(x)
    if impl.startswith("numpy"):
        fn = functools.partial(np.exp, x, out=out)
    else:
        fn = functools.partial(numba_exp_all_threads, x, out)
    fn()
    assert np.allclose(out, np.exp(x), rtol=1e-15, atol=0.0)
    benchmark.group = "machine limits"
    benchmark.extra_info.update(impl=f"exp {impl}", exps=x.size,
                                threads=1 if impl.startswith("numpy") else numba.get_num_threads())
    benchmark(fn)


def test_limit_matmul_quick(benchmark):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((_MM_N, _MM_N)), rng.standard_normal((_MM_N, _MM_N))
    out = np.empty_like(a)
    benchmark.group = "machine limits"
    benchmark.extra_info.update(impl="matmul numpy (BLAS, all threads)", flops=2.0 * _MM_N ** 3)
    benchmark(np.matmul, a, b, out=out)
