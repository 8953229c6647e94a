"""PF-ODE likelihood benchmarks: the seed-style baseline against scorebench, same run, same data.

    pytest benchmarks/bench_likelihood.py --benchmark-only -p no:cacheprovider
    pytest benchmarks/bench_likelihood.py --benchmark-only -k quick     # the small subset

Groups (``benchmark.group``), so pytest-benchmark prints each side by side:

``loglik ring2d N=10000``
    2-D, 8-component ring mixture (radius 4, variance 0.1), N = 10,000 points of p_eps, VP,
    eps = 1e-5, rtol = atol = 1e-5, exact divergence, default prior N(0, I). Rows:
    ``seed-style`` (scipy ``solve_ivp`` RK45 on the flattened batch, torch score, autograd
    divergence; :func:`scorebench.bench.peers.seed_style_loglik`), ``scipy-numpy`` (the same
    solve with an exact numpy score and Laplacian; :func:`scorebench.bench.peers.scipy_flat_loglik`),
    and scorebench's ``log_likelihood`` with ``backend="numpy"`` (the
    augmented ODE through the per-sample ``rk45`` stepper), ``backend="torch"``, and ``"auto"``
    (the fused numba kernel for the oracle). Every row uses the exact prior
    ``oracle.exact_log_prob_T``, so the only error left is the solver's; each row records in
    ``extra_info`` the max and mean |logp - log p_eps| (``oracle.log_prob(x, eps)``) and the NFE.
``divergence d=<d>``
    Cost of one divergence evaluation (velocity + divergence) for a K = 8 mixture at N = 256
    points, t = 0.5, d in (2, 8, 32, 128, 256): exact via the oracle's Laplacian, exact via d
    batched VJPs through a plain torch score (no Laplacian), Hutchinson (one probe) through
    autograd, and Hutchinson through the factored mixture Hessian.

Torch's intra-op threads: on a machine shared with other work, two OpenMP threads can be 10x
slower than one (contention). The count torch starts with (``OMP_NUM_THREADS``) is captured at
import and set again before every torch call, because numba's parallel kernels reset OpenMP's
thread count (observed: 1 -> 2 after the first fused call). It is recorded in ``extra_info``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle
from scorebench.bench.peers import scipy_flat_loglik, seed_style_loglik
from scorebench.solvers.divergence import get_divergence
from scorebench.solvers.likelihood import log_likelihood

EPS, TOL, N = 1e-5, 1e-5, 10_000
TORCH_THREADS = torch.get_num_threads()


def ring_mixture_params(K: int = 8, radius: float = 4.0, variance: float = 0.1):
    """Means (K, 2) on a circle and the common isotropic variance of the benchmark mixture."""
    ang = 2.0 * math.pi * np.arange(K) / K
    return np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius, variance


def _ring():
    means, var = ring_mixture_params()
    mix = GaussianMixture.isotropic(np.ones(len(means)), means, np.full(len(means), var))
    sde = VPSDE()
    oracle = MixtureOracle(mix, sde)
    x = oracle.sample(N, EPS, np.random.default_rng(2024))
    return oracle, sde, x, means, var


def _run_loglik(impl, oracle, sde, x, means, var):
    """(logp as numpy, nfe) for one implementation."""
    prior = oracle.exact_log_prob_T
    torch.set_num_threads(TORCH_THREADS)
    if impl == "seed-style":
        return seed_style_loglik(x, oracle, EPS, TOL, TOL, prior=prior)
    if impl == "scipy-numpy":
        return scipy_flat_loglik(x, oracle, EPS, TOL, TOL, prior=prior)
    if impl == "scorebench-torch":
        res = log_likelihood(torch.as_tensor(x), oracle, sde, rtol=TOL, atol=TOL, eps=EPS,
                             prior=prior)
        return res.logp.numpy(), res.nfe
    backend = {"scorebench-numpy": "numpy", "scorebench-auto": "auto"}[impl]
    res = log_likelihood(x, oracle, sde, rtol=TOL, atol=TOL, eps=EPS, prior=prior, backend=backend)
    return res.logp, res.nfe


LOGLIK_IMPLS = ["seed-style", "scipy-numpy", "scorebench-numpy", "scorebench-torch",
                "scorebench-auto"]


@pytest.mark.parametrize("impl", LOGLIK_IMPLS)
def test_loglik_ring2d_quick(benchmark, impl):
    oracle, sde, x, means, var = _ring()
    exact = oracle.log_prob(x, EPS)
    _run_loglik("scorebench-auto", oracle, sde, x[:8], means, var)  # compile / load numba caches
    benchmark.group = f"loglik ring2d N={N}"
    logp, nfe = benchmark.pedantic(
        _run_loglik, args=(impl, oracle, sde, x, means, var), rounds=2, iterations=1
    )
    err = np.abs(logp - exact)
    benchmark.extra_info.update(
        impl=impl, n_points=N, nfe=int(nfe), max_abs_err=float(err.max()),
        mean_abs_err=float(err.mean()), torch_threads=torch.get_num_threads(),
    )
    assert np.all(np.isfinite(logp))


DIMS = [2, 8, 32, 128, 256]
DIV_IMPLS = ["exact-laplacian", "exact-autograd", "hutchinson-autograd", "hutchinson-oracle"]


def _divergence_problem(d, K=8, n=256, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = 0.5 * A @ A.transpose(0, 2, 1) / d + 0.1 * np.eye(d)
    oracle = MixtureOracle(GaussianMixture(np.ones(K), 2 * rng.standard_normal((K, d)), covs),
                           VPSDE())
    return oracle, oracle.sample(n, 0.5, rng)


def _divergence_call(impl, oracle, x):
    sde = oracle.sde
    torch.set_num_threads(TORCH_THREADS)
    if impl == "exact-laplacian":
        est, xin = get_divergence("exact", oracle, sde), x
    elif impl == "exact-autograd":
        est, xin = get_divergence("exact", lambda z, t: oracle.score(z, t), sde), torch.as_tensor(x)
    elif impl == "hutchinson-autograd":
        est = get_divergence("hutchinson", lambda z, t: oracle.score(z, t), sde, probes=1)
        xin = torch.as_tensor(x)
    else:
        est, xin = get_divergence("hutchinson", oracle, sde, probes=1, jacobian="oracle"), x
    state = est.prepare(xin, np.random.default_rng(1)) if est.stochastic else None
    return lambda: est(xin, 0.5, state)


@pytest.mark.parametrize("impl", DIV_IMPLS)
@pytest.mark.parametrize("d", DIMS)
def test_divergence_cost(benchmark, d, impl):
    oracle, x = _divergence_problem(d)
    call = _divergence_call(impl, oracle, x)
    call()  # warm-up
    benchmark.group = f"divergence d={d}"
    v, div = benchmark.pedantic(call, rounds=5, iterations=1)
    exact = oracle.velocity_divergence(x, 0.5)
    div = div.numpy() if isinstance(div, torch.Tensor) else div
    benchmark.extra_info.update(impl=impl, d=d, K=8, n_points=x.shape[0],
                                rms_err=float(np.sqrt(np.mean((div - exact) ** 2))),
                                torch_threads=torch.get_num_threads())
    if impl.startswith("exact"):
        np.testing.assert_allclose(div, exact, rtol=1e-9, atol=1e-9)
