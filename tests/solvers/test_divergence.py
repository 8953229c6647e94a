r"""Divergence estimators against exact oracles (the mixture Hessian and the Gaussian flow).

Statistical thresholds (a correct implementation fails with probability < 1e-6 per assertion)
-------------------------------------------------------------------------------------------
For one probe the Hutchinson estimate is Y = e^T J e with J = f I - g^2/2 H symmetric (H the exact
Hessian of log p_t). With R independent replicates (one probe each, fresh per replicate):

* Mean: the sample mean has standard error sigma / sqrt(R), sigma^2 the theoretical variance;
  |mean - tr J| < 5.3 SE has two-sided normal tail 1.2e-7 (R >= 5e4, so the CLT is accurate).
* Variance: the sample variance s^2 has relative sd sqrt((kappa - 1 + 2/(R-1)) / R), kappa the
  kurtosis of Y. For a 10 % band at z = 4.9 (two-sided 1e-6) R >= (4.9 / 0.1)^2 (kappa - 1)
  = 2401 (kappa - 1). Gaussian probes: Y - tr J = sum_i lam_i (z_i^2 - 1), kappa = 3 +
  12 sum lam^4 / (sum lam^2)^2 <= 15 (E(z^2-1)^4 = 60); Rademacher probes: kappa computed exactly
  here by enumerating all 2^d sign vectors. Each test asserts its own R >= 2401 (kappa - 1) with
  a safety factor 2 and uses R = 2e5 (worst case kappa = 15 needs 33,614).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle, SubVPSDE
from scorebench.solvers.divergence import (
    ExactDivergence,
    HutchinsonDivergence,
    HutchPlusPlusDivergence,
    draw_probes,
    get_divergence,
)
from scorebench.solvers.likelihood import log_likelihood

Z_BAND = 4.9  # two-sided normal quantile for 1e-6
Z_MEAN = 5.3  # two-sided normal quantile for 1.2e-7


def _mixture(d: int, seed: int, K: int = 2) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = 0.5 * A @ A.transpose(0, 2, 1) / d + 0.1 * np.eye(d)
    return GaussianMixture(rng.uniform(0.5, 1.5, K), rng.standard_normal((K, d)), covs)


def _velocity_jacobian(oracle, x, t):
    """J_v = f I - g^2/2 H at one point x (1, d), from the exact Hessian."""
    sde = oracle.sde
    H = oracle.hessian(x, t)[0]
    return sde.drift_coeff(t) * np.eye(oracle.d) - 0.5 * sde.diffusion_sq(t) * H


def _gaussian_kurtosis(J):
    lam = np.linalg.eigvalsh(J)
    return 3.0 + 12.0 * np.sum(lam ** 4) / np.sum(lam ** 2) ** 2


def _rademacher_moments(J):
    """Exact mean, variance and kurtosis of e^T J e over all 2^d sign vectors."""
    d = J.shape[0]
    E = np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    Y = np.einsum("ni,ij,nj->n", E, J, E)
    c = Y - Y.mean()
    return Y.mean(), np.mean(c ** 2), np.mean(c ** 4) / np.mean(c ** 2) ** 2


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_hutchinson_unbiased_with_theoretical_variance(probe):
    d, R, t = 4, 200_000, 0.3
    oracle = MixtureOracle(_mixture(d, 1), VPSDE())
    x0 = np.array([[0.3, -0.5, 0.8, 0.1]])
    J = _velocity_jacobian(oracle, x0, t)
    fro2, diag2 = np.sum(J * J), np.sum(np.diag(J) ** 2)
    if probe == "gaussian":
        var, kappa = 2.0 * fro2, _gaussian_kurtosis(J)
    else:
        mean_e, var, kappa = _rademacher_moments(J)
        np.testing.assert_allclose(mean_e, np.trace(J), rtol=1e-12)
        np.testing.assert_allclose(var, 2.0 * (fro2 - diag2), rtol=1e-10)
    assert R >= 2 * (Z_BAND / 0.1) ** 2 * (kappa - 1.0)  # the derivation in the module notes
    est = HutchinsonDivergence(oracle, oracle.sde, probes=1, probe=probe)
    X = np.repeat(x0, R, axis=0)
    state = est.prepare(X, np.random.default_rng(11))
    v, div = est(X, t, state)
    np.testing.assert_allclose(v, oracle.velocity(X[:1], t).repeat(R, 0), rtol=1e-12, atol=1e-12)
    assert abs(div.mean() - np.trace(J)) < Z_MEAN * np.sqrt(var / R)
    assert abs(div.var(ddof=1) / var - 1.0) < 0.1


def test_hutchinson_variance_scales_as_one_over_m():
    d, R, m, t = 4, 50_000, 4, 0.2
    oracle = MixtureOracle(_mixture(d, 2), SubVPSDE())
    x0 = np.array([[-0.4, 0.2, 0.5, -0.9]])
    J = _velocity_jacobian(oracle, x0, t)
    var = 2.0 * np.sum(J * J) / m
    # the mean of m i.i.d. estimates has kurtosis 3 + (kappa - 3) / m
    kappa = 3.0 + (_gaussian_kurtosis(J) - 3.0) / m
    assert R >= 2 * (Z_BAND / 0.1) ** 2 * (kappa - 1.0)
    est = HutchinsonDivergence(oracle, oracle.sde, probes=m, probe="gaussian")
    X = np.repeat(x0, R, axis=0)
    _, div = est(X, t, est.prepare(X, np.random.default_rng(12)))
    assert abs(div.mean() - np.trace(J)) < Z_MEAN * np.sqrt(var / R)
    assert abs(div.var(ddof=1) / var - 1.0) < 0.1


def _spiked_gaussian(d=16, n_spikes=3, seed=3):
    """One Gaussian whose covariance has n_spikes tiny variances: J_v = f I + g^2/2 C(t)^{-1}
    then has n_spikes dominant eigenvalues (about 17.5 at t = 0.05 for VP), the rest in
    [-0.4, 1.2]."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.concatenate([np.full(n_spikes, 1e-3), rng.uniform(0.3, 3.0, d - n_spikes)])
    cov = (U * lam) @ U.T
    return GaussianMixture(np.ones(1), np.zeros((1, d)), cov[None])


def test_hutchpp_unbiased_and_beats_hutchinson_at_equal_matvecs():
    r"""Hutch++ with m = 9 products: k = 3 sketch, 3 exact-trace, 3 Hutchinson (Gaussian).

    Given S its estimate is tr J + noise with conditional variance c(S) = 2 ||P J P||_F^2 / 3,
    P = I - QQ^T, Q = qr(J S) (recomputed here from the exact J). The total variance is the
    mean over S of c(S). Threshold for the variance check: given S the noise is a mean of
    3 Gaussian quadratic forms (kurtosis <= 3 + 12/3 = 7), so E[(Y - tr J)^4] <= 7 E[c(S)^2] and
    the sample variance has relative sd <= sqrt((7 E[c^2] / E[c]^2 - 1) / R). c(S) is heavy
    tailed (a sketch that misses a spike leaves it in P J P; measured E[c^2]/E[c]^2 = 9.3), so
    at R = 5e4 the band is 20 %: asserted below that 4.9 relative sd < 0.2.
    """
    d, R, m, t = 16, 50_000, 9, 0.05
    oracle = MixtureOracle(_spiked_gaussian(d), VPSDE())
    x0 = np.zeros((1, d))
    J = _velocity_jacobian(oracle, x0, t)
    eig = np.sort(np.abs(np.linalg.eigvalsh(J)))[::-1]
    assert eig[2] > 10 * eig[3]  # three dominant eigenvalues
    est = HutchPlusPlusDivergence(oracle, oracle.sde, probes=m, probe="gaussian")
    assert (est.sketch, est.remainder) == (3, 3)
    X = np.repeat(x0, R, axis=0)
    S, G = est.prepare(X, np.random.default_rng(13))
    _, div = est(X, t, (S, G))
    Q = np.linalg.qr(J @ S)[0]
    P = np.eye(d)[None] - Q @ Q.transpose(0, 2, 1)
    cond = 2.0 * np.sum((P @ J @ P) ** 2, axis=(1, 2)) / est.remainder
    var_pp = cond.mean()
    ratio = np.mean(cond ** 2) / var_pp ** 2
    assert Z_BAND * np.sqrt((7.0 * ratio - 1.0) / R) < 0.2
    var_hutch = 2.0 * np.sum(J * J) / m
    assert var_pp < 0.1 * var_hutch  # measured: 13.6 vs 203 (ratio 0.067, sd of it ~1e-3)
    assert abs(div.mean() - np.trace(J)) < Z_MEAN * np.sqrt(var_pp / R)
    assert abs(div.var(ddof=1) / var_pp - 1.0) < 0.2


def test_hutchpp_with_full_sketch_is_exact():
    d = 5
    oracle = MixtureOracle(_mixture(d, 4, K=3), VPSDE())
    x = np.random.default_rng(0).standard_normal((7, d))
    t = np.linspace(0.05, 0.9, 7)
    est = HutchPlusPlusDivergence(oracle, oracle.sde, probes=3 * d)  # Q spans R^d
    _, div = est(x, t, est.prepare(x, np.random.default_rng(1)))
    np.testing.assert_allclose(div, oracle.velocity_divergence(x, t), rtol=0, atol=1e-10)


@pytest.mark.parametrize("jacobian", ["autograd", "hessian", "oracle"])
def test_exact_divergence_routes_match_the_laplacian(jacobian):
    d = 6
    oracle = MixtureOracle(_mixture(d, 5, K=3), SubVPSDE())
    x = np.random.default_rng(2).standard_normal((9, d))
    t = np.linspace(0.01, 1.0, 9)
    ref_v, ref_div = oracle.velocity(x, t), oracle.velocity_divergence(x, t)
    lap = ExactDivergence(oracle, oracle.sde)
    assert lap.uses_laplacian
    v, div = lap(x, t)
    np.testing.assert_allclose(div, ref_div, rtol=0, atol=1e-10)
    v, div = ExactDivergence(oracle, oracle.sde, jacobian=jacobian)(x, t)
    np.testing.assert_allclose(v, ref_v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(div, ref_div, rtol=0, atol=1e-10)


def test_autograd_divergence_of_a_plain_torch_callable():
    d = 4
    oracle = MixtureOracle(_mixture(d, 6), VPSDE())
    x = torch.as_tensor(np.random.default_rng(3).standard_normal((5, d)))
    plain = lambda z, t: oracle.score(z, t)  # differentiable, no laplacian
    v, div = get_divergence("exact", plain, oracle.sde)(x, 0.4)
    assert isinstance(div, torch.Tensor) and div.dtype == torch.float64
    np.testing.assert_allclose(div.numpy(), oracle.velocity_divergence(x.numpy(), 0.4), atol=1e-10)


@pytest.mark.parametrize("name", ["hutchinson", "hutch++"])
def test_stochastic_routes_agree_for_the_same_probes(name):
    d = 5
    oracle = MixtureOracle(_mixture(d, 7, K=3), VPSDE())
    x = np.random.default_rng(4).standard_normal((6, d))
    t = np.linspace(0.1, 0.9, 6)
    out = []
    for jacobian in ("oracle", "hessian", "autograd"):
        est = get_divergence(name, oracle, oracle.sde, probes=6, probe="gaussian",
                             jacobian=jacobian)
        out.append(est(x, t, est.prepare(x, np.random.default_rng(9)))[1])
    np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[2], out[0], rtol=0, atol=1e-10)
    est = get_divergence(name, oracle, oracle.sde, probes=6, probe="gaussian")
    xt = torch.as_tensor(x)
    div_t = est(xt, t, est.prepare(xt, np.random.default_rng(9)))[1]
    np.testing.assert_allclose(div_t.numpy(), out[0], rtol=0, atol=1e-10)


def test_select_follows_rows():
    d = 3
    oracle = MixtureOracle(_mixture(d, 8), VPSDE())
    x = np.random.default_rng(5).standard_normal((10, d))
    est = HutchinsonDivergence(oracle, oracle.sde, probes=2)
    state = est.prepare(x, np.random.default_rng(0))
    assert state.shape == (10, d, 2) and set(np.unique(state)) == {-1.0, 1.0}
    rows = np.array([7, 2, 2, 9])
    _, full = est(x, 0.5, state)
    _, part = est(x[rows], 0.5, est.select(state, rows))
    np.testing.assert_allclose(part, full[rows], rtol=0, atol=1e-13)


def test_probes_held_fixed_along_the_path_give_variance_of_the_integrated_jacobian():
    r"""One Gaussian: J_v(t) = f I + g^2/2 C(t)^{-1} does not depend on x, with eigenvalues
    mu_i(t) = d/dt (1/2) log lambda_i(t), lambda_i = a^2 Lambda_i + s^2. With one Gaussian probe
    held fixed along each path, log p_ODE - log p_eps = e^T M e - tr M, M = int J dt =
    U diag(1/2 log(lambda(T)/lambda(eps))) U^T: variance 2 ||M||_F^2, kurtosis 3 + 12 sum m^4 /
    (sum m^2)^2 (probes redrawn at every evaluation would give a much smaller variance).
    Discretisation error (rtol = 1e-7, about 1e-6) is far below the sd (about 3).
    """
    d, R, eps = 3, 50_000, 1e-3
    rng = np.random.default_rng(21)
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Lam = np.array([0.05, 0.1, 0.2])
    mix = GaussianMixture(np.ones(1), np.zeros((1, d)), ((U * Lam) @ U.T)[None])
    sde = VPSDE()
    oracle = MixtureOracle(mix, sde)
    lam = lambda t: sde.mean_coeff(t) ** 2 * Lam + sde.marginal_var(t)
    mu = 0.5 * np.log(lam(sde.T) / lam(eps))
    var = 2.0 * np.sum(mu ** 2)
    kappa = 3.0 + 12.0 * np.sum(mu ** 4) / np.sum(mu ** 2) ** 2
    assert R >= 2 * (Z_BAND / 0.1) ** 2 * (kappa - 1.0)
    x = oracle.sample(R, eps, rng)
    res = log_likelihood(x, oracle, sde, divergence="hutchinson", probes=1, probe="gaussian",
                         rtol=1e-7, atol=1e-7, eps=eps, prior=oracle.exact_log_prob_T,
                         rng=np.random.default_rng(22))
    err = res.logp - oracle.log_prob(x, eps)
    assert abs(err.mean()) < Z_MEAN * np.sqrt(var / R)
    assert abs(err.var(ddof=1) / var - 1.0) < 0.1


def test_bad_arguments():
    oracle = MixtureOracle(_mixture(2, 9), VPSDE())
    with pytest.raises(ValueError, match="divergence.*exact.*hutchinson.*hutch\\+\\+"):
        get_divergence("skilling", oracle, oracle.sde)
    with pytest.raises(ValueError, match="probes"):
        get_divergence("hutchinson", oracle, oracle.sde, probes=0)
    with pytest.raises(ValueError, match="probes"):
        get_divergence("hutch++", oracle, oracle.sde, probes=2)
    with pytest.raises(ValueError, match="probe"):
        get_divergence("hutchinson", oracle, oracle.sde, probe="sphere")
    with pytest.raises(ValueError, match="jacobian"):
        ExactDivergence(oracle, oracle.sde, jacobian="finite-differences")
    with pytest.raises(TypeError, match="rng"):
        draw_probes(None, (2, 2, 1), "gaussian")
    est = HutchinsonDivergence(oracle, oracle.sde)
    with pytest.raises(ValueError, match="state"):
        est(np.zeros((2, 2)), 0.5)
    numpy_only = lambda z, t: np.asarray(oracle.score(np.asarray(z.detach()), t))
    with pytest.raises(TypeError, match="model.*autograd"):
        ExactDivergence(numpy_only, oracle.sde)(np.zeros((2, 2)), 0.5)
