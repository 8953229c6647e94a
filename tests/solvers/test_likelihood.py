"""PF-ODE log-likelihoods against the exact log p_eps of Gaussian mixtures.

The oracle gives log p_eps(x) in closed form for every SDE family, and with
``prior = oracle.exact_log_prob_T`` the only error left is the ODE discretisation, so the checks
are sharp: RK45 at rtol = atol = 1e-6 within 1e-3 (max over points) for VP, sub-VP and VE in
1, 2 and 16 dimensions, errors falling with rtol (tolerance proportionality), RK4 at its order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scorebench.analytic import VESDE, VPSDE, GaussianMixture, MixtureOracle, SubVPSDE
from scorebench.solvers.base import ODESolver, SolverError
from scorebench.solvers.likelihood import LikelihoodResult, _fast_path, log_likelihood

EPS = 1e-5
# The generic path (the augmented ODE through scorebench's own steppers); backend="auto" would
# take the fused numba kernel for the oracle, tested separately below.
NP = dict(backend="numpy")
SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}


def _mixture(d: int, seed: int, K: int = 3) -> GaussianMixture:
    """K components, means of scale 2, covariances with eigenvalues in about [0.05, 2]."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = 0.5 * A @ A.transpose(0, 2, 1) / d + 0.05 * np.eye(d)
    return GaussianMixture(rng.uniform(0.5, 1.5, K), 2.0 * rng.standard_normal((K, d)), covs)


def _scenario(sde_name: str, d: int, n: int = 64, seed: int = 0):
    sde = SDES[sde_name]()
    oracle = MixtureOracle(_mixture(d, seed), sde)
    x = oracle.sample(n, EPS, np.random.default_rng(seed + 100))
    return oracle, sde, x, oracle.log_prob(x, EPS)


@pytest.mark.parametrize("d", [1, 2, 16])
@pytest.mark.parametrize("sde_name", ["vp", "subvp", "ve"])
def test_rk45_matches_exact_log_prob_and_error_falls_with_rtol(sde_name, d):
    oracle, sde, x, exact = _scenario(sde_name, d)
    errors = {}
    for tol in (1e-3, 1e-5, 1e-6, 1e-7):
        res = log_likelihood(x, oracle, sde, rtol=tol, atol=tol, eps=EPS,
                             prior=oracle.exact_log_prob_T, **NP)
        assert res.backend == "numpy"
        errors[tol] = np.abs(res.logp - exact)
    # measured max errors at 1e-6: 5e-6 .. 1.6e-4 over the nine scenarios
    assert errors[1e-6].max() < 1e-3
    means = [errors[tol].mean() for tol in (1e-3, 1e-5, 1e-7)]
    assert means[0] > means[1] > means[2]


@pytest.mark.parametrize("sde_name", ["vp", "subvp", "ve"])
def test_default_prior_mismatch_is_log_pT_minus_prior_at_x_T(sde_name):
    oracle, sde, x, _ = _scenario(sde_name, 2)
    exact = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T,
                           **NP)
    default = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, **NP)
    # the prior enters only at the end: same paths, same integrals
    np.testing.assert_array_equal(default.x_T, exact.x_T)
    np.testing.assert_array_equal(default.delta_logp, exact.delta_logp)
    np.testing.assert_allclose(default.prior_logp, sde.prior_log_prob(default.x_T),
                               rtol=0, atol=1e-12)
    mismatch = sde.prior_log_prob(exact.x_T) - oracle.log_prob(exact.x_T, sde.T)
    np.testing.assert_allclose(default.logp - exact.logp, mismatch, rtol=0, atol=1e-10)
    assert np.abs(mismatch).max() > 1e-6  # the check can see a prior that is ignored


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
def test_rk4_fixed_steps_accuracy_and_order(sde_name):
    oracle, sde, x, exact = _scenario(sde_name, 2)
    err = {}
    for steps in (100, 200):
        res = log_likelihood(x, oracle, sde, method="rk4", steps=steps,
                             prior=oracle.exact_log_prob_T)
        assert res.nfe == 4 * steps and res.method == "rk4"
        np.testing.assert_array_equal(res.n_accepted, steps)
        err[steps] = np.abs(res.logp - exact).mean()
    # measured: mean errors 2.4e-7 -> 1.5e-8 (VP), 2.5e-6 -> 1.6e-7 (VE): slope 3.99, 3.98
    assert np.abs(log_likelihood(x, oracle, sde, method="rk4", steps=100,
                                 prior=oracle.exact_log_prob_T).logp - exact).max() < 1e-3
    assert abs(math.log2(err[100] / err[200]) - 4.0) < 0.2


def test_bpd_formula_and_dequantisation_offset():
    oracle, sde, x, _ = _scenario("vp", 2)
    res = log_likelihood(x, oracle, sde, rtol=1e-4, atol=1e-4, **NP)
    d = x.shape[1]
    np.testing.assert_allclose(res.bpd, -res.logp / (d * math.log(2.0)), rtol=1e-14)
    np.testing.assert_allclose(res.logp, res.prior_logp + res.delta_logp, rtol=1e-14)
    deq = log_likelihood(x, oracle, sde, rtol=1e-4, atol=1e-4, dequantize=256, **NP)
    np.testing.assert_allclose(deq.bpd - res.bpd, 8.0, rtol=0, atol=1e-12)
    deq = log_likelihood(x, oracle, sde, rtol=1e-4, atol=1e-4, dequantize=128, **NP)
    np.testing.assert_allclose(deq.bpd - res.bpd, 7.0, rtol=0, atol=1e-12)


def test_result_fields_and_per_sample_statistics():
    oracle, sde, x, _ = _scenario("vp", 2)
    res = log_likelihood(x, oracle, sde, **NP)
    assert isinstance(res, LikelihoodResult)
    assert res.method == "rk45" and res.divergence == "exact" and res.nfe > 0
    assert res.logp.shape == (64,) and res.x_T.shape == (64, 2)
    assert res.n_accepted.shape == (64,) and res.n_rejected.shape == (64,)
    assert np.all(res.n_accepted >= 1)
    np.testing.assert_array_equal(res.n_steps, res.n_accepted + res.n_rejected)
    # per-sample step control: points do not all take the same number of steps
    assert res.n_accepted.min() < res.n_accepted.max()


def test_torch_in_torch_out_and_backends_agree():
    oracle, sde, x, exact = _scenario("vp", 2, n=32)
    ref = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T, **NP)
    xt = torch.as_tensor(x)
    res = log_likelihood(xt, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T)
    assert isinstance(res.logp, torch.Tensor) and res.logp.dtype == torch.float64
    assert res.backend == "torch"
    np.testing.assert_allclose(res.logp.numpy(), ref.logp, rtol=0, atol=1e-9)
    forced = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T,
                            backend="torch")
    assert isinstance(forced.logp, np.ndarray) and forced.backend == "torch"
    np.testing.assert_allclose(forced.logp, ref.logp, rtol=0, atol=1e-9)
    # float32 state, float64 time: against the float64 result (measured error 5e-4 at 1e-5)
    f32 = log_likelihood(xt.float(), oracle, sde, rtol=1e-5, atol=1e-5,
                         prior=oracle.exact_log_prob_T)
    assert f32.logp.dtype == torch.float32
    assert np.abs(f32.logp.double().numpy() - exact).max() < 5e-3


def test_autograd_exact_divergence_matches_laplacian_path():
    oracle, sde, x, exact = _scenario("subvp", 2, n=32)
    plain = lambda z, t: oracle.score(z, t)  # no laplacian: d batched VJPs through torch
    a = log_likelihood(torch.as_tensor(x), plain, sde, rtol=1e-6, atol=1e-6,
                       prior=oracle.exact_log_prob_T)
    b = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T, **NP)
    np.testing.assert_allclose(a.logp.numpy(), b.logp, rtol=0, atol=1e-8)
    assert np.abs(b.logp - exact).max() < 1e-3


def test_stochastic_divergence_is_reproducible_and_backend_independent():
    oracle, sde, x, exact = _scenario("vp", 2, n=32)
    kw = dict(divergence="hutchinson", probes=2, rtol=1e-5, atol=1e-5,
              prior=oracle.exact_log_prob_T)
    a = log_likelihood(x, oracle, sde, rng=np.random.default_rng(5), **kw)
    b = log_likelihood(x, oracle, sde, rng=np.random.default_rng(5), **kw)
    np.testing.assert_array_equal(a.logp, b.logp)
    c = log_likelihood(torch.as_tensor(x), oracle, sde, rng=np.random.default_rng(5), **kw)
    np.testing.assert_allclose(c.logp.numpy(), a.logp, rtol=0, atol=1e-8)
    d = log_likelihood(x, oracle, sde, rng=np.random.default_rng(6), **kw)
    assert np.abs(d.logp - a.logp).max() > 1e-3  # other probes, other estimates


def test_auto_backend_fast_path_agrees_with_the_generic_path():
    oracle, sde, x, exact = _scenario("vp", 2)
    auto = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T)
    generic = log_likelihood(x, oracle, sde, rtol=1e-6, atol=1e-6, prior=oracle.exact_log_prob_T,
                             **NP)
    assert isinstance(auto.logp, np.ndarray) and auto.backend in ("numba", "numpy")
    assert np.abs(auto.logp - exact).max() < 1e-3
    np.testing.assert_allclose(auto.logp, generic.logp, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="backend"):
        log_likelihood(x, oracle, sde, divergence="hutchinson", rng=0, backend="numba")
    # the fused kernel integrates the oracle's own SDE with its exact score: never for another
    # SDE, another estimator, a fixed-step method or a forced generic backend
    assert _fast_path(oracle, VPSDE(beta_max=10.0), "rk45", "exact", "auto") is None
    assert _fast_path(oracle, sde, "rk45", "hutchinson", "auto") is None
    assert _fast_path(oracle, sde, None, "exact", "auto") is None
    assert _fast_path(oracle, sde, "rk45", "exact", "numpy") is None


class _NaNSolver(ODESolver):
    name = "nan-solver-likelihood-test"
    order = 1

    def step(self, f, x, t, dt):
        return x * np.nan


def test_solver_returning_nan_is_reported():
    oracle, sde, x, _ = _scenario("vp", 1, n=8)
    with pytest.raises(SolverError, match="non-finite"):
        log_likelihood(x, oracle, sde, method=_NaNSolver(), steps=4)


def test_model_returning_nan_is_reported():
    oracle, sde, x, _ = _scenario("vp", 1, n=8)

    def bad(z, t):  # numpy or torch in, nan out (the exact divergence goes through autograd)
        return z * float("nan")

    with pytest.raises(SolverError, match="model.*non-finite"):
        log_likelihood(x, bad, sde, method="rk4", steps=4)
    with pytest.raises(SolverError, match="model.*non-finite"):
        log_likelihood(x, oracle_with_nan(oracle), sde, **NP)


def oracle_with_nan(oracle):
    class Broken:
        d = oracle.d

        def score(self, z, t):
            return oracle.score(z, t) * np.nan

        def laplacian(self, z, t):
            return oracle.laplacian(z, t)

    return Broken()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rtol=0.0), "rtol"),
        (dict(rtol=-1e-5), "rtol"),
        (dict(atol=0.0), "atol"),
        (dict(atol=float("nan")), "atol"),
        (dict(eps=0.0), "eps"),
        (dict(eps=1.0), "eps"),
        (dict(eps=-1e-3), "eps"),
        (dict(divergence="hutchinsn"), "divergence.*exact.*hutchinson.*hutch\\+\\+"),
        (dict(method="rk99"), "method.*rk45"),
        (dict(method="em"), "method"),
        (dict(probes=0), "probes"),
        (dict(probes=1.5), "probes"),
        (dict(probes=True), "probes"),
        (dict(divergence="hutch++", probes=2, rng=0), "probes"),
        (dict(probe="uniform"), "probe"),
        (dict(steps=10), "steps"),
        (dict(method="rk4"), "steps"),
        (dict(method="rk4", steps=0), "steps"),
        (dict(backend="jax"), "backend"),
        (dict(dequantize=0), "dequantize"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, match):
    oracle, sde, x, _ = _scenario("vp", 2, n=4)
    with pytest.raises(ValueError, match=match):
        log_likelihood(x, oracle, sde, **kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.array([[0.0, np.nan]]), "x.*non-finite"),
        (np.array([[0.0, np.inf]]), "x.*non-finite"),
        (np.zeros(2), "x.*shape"),
        (np.zeros((0, 2)), "x.*shape"),
        (np.zeros((3, 5)), "x.*shape"),
    ],
)
def test_bad_points_raise_value_error(x, match):
    oracle, sde, _, _ = _scenario("vp", 2, n=4)
    with pytest.raises(ValueError, match=match):
        log_likelihood(x, oracle, sde)


def test_stochastic_divergence_needs_an_rng_and_prior_must_fit():
    oracle, sde, x, _ = _scenario("vp", 2, n=4)
    with pytest.raises(TypeError, match="rng"):
        log_likelihood(x, oracle, sde, divergence="hutchinson")
    with pytest.raises(ValueError, match="prior"):
        log_likelihood(x, oracle, sde, prior=lambda z: np.zeros(3))
