"""MixtureOracle against independent references: autograd, finite differences, the
Fokker-Planck equation, Tweedie's formulas, tight ODE solves, change of variables and a forward
Euler-Maruyama Monte Carlo. Random mixtures (K <= 6, d <= 5, condition numbers up to 1e4), every
SDE family, t in [1e-4, T]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import solve_ivp
from scipy.special import logsumexp

from scorebench.analytic.linear_sde import LinearSDE
from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.testing import strategies as sbst

_N = settings.default.max_examples
_FEW = max(5, _N // 3)
ALPHA = 1e-6  # family-wise false-failure budget of each statistical test


# --------------------------------------------------------------------------- helpers
@st.composite
def cases(draw, *, max_k=6, max_d=5, allow_point_masses=True, families=sbst.SDE_FAMILIES,
          low=1e-4, n=6):
    """(oracle, t, x): a random mixture under a random SDE at a random time, with test points."""
    mix = draw(sbst.gaussian_mixtures(max_k=max_k, max_d=max_d, max_condition=1e4,
                                      allow_point_masses=allow_point_masses), label="mix")
    sde = draw(sbst.sdes(families), label="sde")
    t = draw(sbst.times(sde, low=low), label="t")
    oracle = MixtureOracle(mix, sde, backend="numpy")
    x = draw(sbst.evaluation_points(oracle, t, n=n), label="x")
    return oracle, t, x


def pinned(seed, k, d, sde, t, *, condition=1e4, n_point_masses=0, covariance_type="full", n=6):
    """A reproducible case for @example: the same construction as ``cases`` from fixed inputs."""
    mix = sbst.build_gaussian_mixture(seed, k, d, condition=condition, n_point_masses=n_point_masses,
                                      covariance_type=covariance_type)
    oracle = MixtureOracle(mix, sde, backend="numpy")
    rng = np.random.default_rng(seed + 1)
    x = np.concatenate([oracle.sample(n // 2, t, rng),
                        oracle.marginal(t).means[:1] + 3 * rng.standard_normal((n - n // 2, d))])
    return oracle, t, x


def marginal_variances(oracle, t):
    """lambda_ki(t) = a^2 Lambda_ki + s^2, the eigenvalues of each C_k(t), shape (K, d)."""
    a, s2 = oracle.sde.mean_coeff(t), oracle.sde.marginal_var(t)
    return a * a * oracle.mix.eigvals + s2


def length_scale(oracle, t):
    """The shortest length on which log p_t varies: the smallest std of a component, and the
    width ell^2 / |a (mu_j - mu_k)| of the regions where responsibilities switch."""
    ell = np.sqrt(marginal_variances(oracle, t).min())
    means = oracle.sde.mean_coeff(t) * oracle.mix.means
    sep = np.ptp(means, axis=0).max() if oracle.K > 1 else 0.0
    return min(ell, ell * ell / sep) if sep > 0 else ell


def reference_components(oracle, t, x):
    """Independent reference with scipy / numpy.linalg on the explicit covariances:
    responsibilities (N, K), log p (N,), scores C_k^-1 (a mu_k - x) (N, K, d), and the
    posterior means mu + a Sigma C^-1 (x - a mu) (N, K, d) and covariances (K, d, d)."""
    mix, sde = oracle.mix, oracle.sde
    a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
    C = a * a * mix.covs + s2 * np.eye(mix.d)[None]
    logr = np.stack([np.log(w) + np.atleast_1d(stats.multivariate_normal(a * m, c).logpdf(x))
                     for w, m, c in zip(mix.weights, mix.means, C)], axis=1)
    logp = logsumexp(logr, axis=1)
    resp = np.exp(logr - logp[:, None])
    diff = x[:, None, :] - a * mix.means[None]
    g = -np.stack([np.linalg.solve(C[k], diff[:, k].T).T for k in range(mix.K)], axis=1)
    post_mean = mix.means[None] - a * np.einsum("kij,nkj->nki", mix.covs, g)
    post_cov = mix.covs - a * a * np.stack([mix.covs[k] @ np.linalg.solve(C[k], mix.covs[k])
                                            for k in range(mix.K)])
    return resp, logp, g, post_mean, post_cov


def assert_within(actual, desired, tol, what=""):
    """|actual - desired| <= tol elementwise (tol broadcast), with the worst ratio reported."""
    err = np.abs(np.asarray(actual) - np.asarray(desired))
    tol = np.broadcast_to(tol, err.shape)
    ratio = err / tol
    assert np.all(err <= tol), f"{what}: worst |error| / tolerance = {np.nanmax(ratio):.3g}"


def fd_weights(offsets):
    """Weights w with sum_j w_j u(t + o_j h) / h = u'(t) + O(h^len(offsets)-1)."""
    o = np.asarray(offsets, dtype=np.float64)
    V = np.vander(o, increasing=True).T  # rows: sum_j o_j^k w_j
    rhs = np.zeros(len(o))
    rhs[1] = 1.0
    return np.linalg.solve(V, rhs)


CENTRAL7 = np.arange(-3, 4)
BACKWARD7 = np.arange(-6, 1)


def time_derivative(fn, t, dt, T):
    """6th-order finite difference in t: central when the stencil fits in [0, T], else backward.

    Returns the derivative and its round-off bound eps * sum_j |w_j fn(t_j)| / dt."""
    offsets = CENTRAL7 if t + 3 * dt <= T else BACKWARD7
    w = fd_weights(offsets)
    terms = [wj * fn(t + oj * dt) for wj, oj in zip(w, offsets)]
    roundoff = np.finfo(np.float64).eps * sum(np.abs(term) for term in terms) / dt
    return sum(terms) / dt, roundoff


def central_gradient(f, x, h):
    """Fourth-order central differences of a batched scalar field f: (N, d) -> (N,)."""
    n, d = x.shape
    grad = np.empty((n, d))
    for i in range(d):
        step = np.zeros((n, d))
        step[:, i] = h
        fm2, fm1, fp1, fp2 = (f(x + c * step) for c in (-2.0, -1.0, 1.0, 2.0))
        grad[:, i] = (fm2 - 8.0 * fm1 + 8.0 * fp1 - fp2) / (12.0 * h)
    return grad


# --------------------------------------------------------------------------- derivatives
@given(cases())
@example(pinned(1, 6, 5, VPSDE(), 1e-4))
@example(pinned(2, 3, 2, VESDE(sigma_min=1e-3, sigma_max=1e3), 1.0, n_point_masses=1))
def test_score_is_autograd_gradient(case):
    """score = d log_prob / dx by torch autograd in float64 (an independent derivative of the
    torch log-density). Both are exact up to round-off amplified by the condition number of
    C_k (<= ~1e5 here); 1e-11 relative to |score| + 1/ell (ell the shortest length scale).
    Measured worst over 300 random cases: 3e-15."""
    oracle, t, x = case
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(oracle.log_prob(xt, t).sum(), xt)
    score = oracle.score(x, t)
    scale = np.linalg.norm(score, axis=1) + 1.0 / length_scale(oracle, t)
    np.testing.assert_array_less(np.linalg.norm(grad.numpy() - score, axis=1), 1e-11 * scale)
    np.testing.assert_array_equal(oracle(x, t), score)  # the oracle is a score model


@given(cases())
@example(pinned(3, 6, 5, SubVPSDE(), 1e-4))
def test_score_matches_central_differences(case):
    """4th-order central differences with h = 1e-3 ell: truncation ~(h/ell)^4 = 1e-12 relative,
    round-off ~eps |log p| ell / h; measured worst 2e-8 relative (300 cases), asserted 1e-6."""
    oracle, t, x = case
    ell = length_scale(oracle, t)
    fd = central_gradient(lambda y: oracle.log_prob(y, t), x, np.full(x.shape[0], 1e-3 * ell))
    score = oracle.score(x, t)
    scale = np.linalg.norm(score, axis=1) + 1.0 / ell
    np.testing.assert_array_less(np.linalg.norm(fd - score, axis=1), 1e-6 * scale)


@settings(max_examples=_FEW)
@given(cases(n=4))
@example(pinned(4, 6, 5, VPSDE(), 1e-4, n=4))
def test_hessian_is_autograd_hessian_and_laplacian_its_trace(case):
    """hessian = torch.autograd.functional.hessian of log_prob (float64); laplacian = its trace;
    score_and_laplacian = (score, laplacian). Errors relative to 1/ell^2 + |score|^2, the size of
    the Hessian's terms sum pi_k (g_k g_k^T - C_k^-1) - s s^T: asserted 1e-11 (autograd) and
    1e-10 (trace); measured worst over 100 random cases 4e-14 and 8e-15."""
    oracle, t, x = case
    H = oracle.hessian(x, t)
    assert H.shape == (x.shape[0], oracle.d, oracle.d)
    score = oracle.score(x, t)
    scale = 1.0 / length_scale(oracle, t) ** 2 + (score * score).sum(axis=1)
    for i in range(x.shape[0]):
        Hi = torch.autograd.functional.hessian(
            lambda y: oracle.log_prob(y[None], t)[0], torch.tensor(x[i], dtype=torch.float64)
        ).numpy()
        assert np.abs(Hi - H[i]).max() <= 1e-11 * scale[i]
    lap = oracle.laplacian(x, t)
    np.testing.assert_array_less(np.abs(lap - np.trace(H, axis1=1, axis2=2)), 1e-10 * scale)
    s2, lap2 = oracle.score_and_laplacian(x, t)
    np.testing.assert_allclose(s2, score, rtol=1e-13, atol=0)
    np.testing.assert_allclose(lap2, lap, rtol=1e-13, atol=0)
    np.testing.assert_array_less(np.abs(H - np.transpose(H, (0, 2, 1))).max(axis=(1, 2)), 1e-12 * scale)


# --------------------------------------------------------------------------- Fokker-Planck
@given(cases())
@example(pinned(5, 6, 5, VPSDE(), 1e-4))
@example(pinned(6, 4, 3, VESDE(sigma_min=1e-3, sigma_max=1e3), 1.0))
@example(pinned(7, 3, 2, SubVPSDE(), 1.0, n_point_masses=3))
def test_fokker_planck_residual(case):
    """p_t solves d/dt p = -div(f x p) + (g^2/2) Lap p. Divided by p, in terms of the score s:

        d/dt log p = -d f - f x.s + (g^2/2) (Lap log p + |s|^2).

    The left side is a 6th-order finite difference in t with step dt = 0.002 / r (capped at
    t/7 so the stencil stays in (0, T]), r the fastest relative rate in the problem: that of the
    variances lambda_k(t) of C_k(t), |lambda'/lambda| <= 2|f| + g^2 / min lambda, and those of the
    schedule itself, |(log g^2)'| and |(log |f|)'|, which set the higher t-derivatives. The
    truncation error ~(r dt)^6 times the derivatives' constants is then negligible (at
    r dt = 0.01 it still reached 2.5e-8 of the terms), and the difference's round-off,
    eps sum_j |w_j log p(t_j)| / dt, is the floor. The residual is asserted below 1e-7 times
    the sum of the absolute values of the five terms plus 100 times that round-off bound; the
    measured worst over 400 random cases is 0.015 of this bound (at 1.6 times the round-off).
    """
    oracle, t, x = case
    sde, d = oracle.sde, oracle.d
    f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
    rate = 2 * abs(f) + g2 / marginal_variances(oracle, t).min()
    lo, hi = max(0.0, t * (1 - 1e-4)), min(sde.T, t * (1 + 1e-4))
    for coeff in (sde.diffusion_sq, sde.drift_coeff):
        c_lo, c_hi = abs(coeff(lo)), abs(coeff(hi))
        if c_lo > 0 and c_hi > 0:
            rate = max(rate, abs(np.log(c_hi / c_lo)) / (hi - lo))
    dt = min(0.002 / rate, t / 7)
    lhs, roundoff = time_derivative(lambda u: oracle.log_prob(x, u), t, dt, sde.T)
    score, lap = oracle.score_and_laplacian(x, t)
    terms = [np.full(x.shape[0], -d * f), -f * np.einsum("nd,nd->n", x, score),
             0.5 * g2 * lap, 0.5 * g2 * (score * score).sum(axis=1)]
    residual = lhs - sum(terms)
    size = np.abs(lhs) + sum(np.abs(term) for term in terms)
    assert_within(residual, 0.0, 1e-7 * size + 100 * roundoff, "Fokker-Planck residual")


# --------------------------------------------------------------------------- Tweedie
@given(cases())
@example(pinned(8, 4, 3, VPSDE(), 1e-4, n_point_masses=2))
@example(pinned(9, 6, 5, VPSDE(), 1.0))  # a(T)^2 = e^-10: Tweedie divides by a small a
def test_tweedie_denoiser_is_posterior_mean(case):
    """denoise(x, t) = (x + s^2 score)/a = sum_k pi_k m'_k with the posterior components computed
    independently (scipy log-densities, numpy.linalg.solve); posterior() returns the same
    responsibilities, means and covariances. Valid for point-mass components (m'_k = mu_k).
    The denoiser divides x + s^2 score (size ~|x|) by a: tolerance 1e-8 (|x| + s^2 |score|)/a."""
    oracle, t, x = case
    resp_ref, _, _, mean_ref, cov_ref = reference_components(oracle, t, x)
    resp, post_mean, post_cov = oracle.posterior(x, t)
    np.testing.assert_allclose(resp, resp_ref, rtol=0, atol=1e-9)
    spread = np.sqrt(oracle.mix.eigvals.max()) + np.abs(oracle.mix.means).max()
    np.testing.assert_allclose(post_mean, mean_ref, rtol=0, atol=1e-9 * spread)
    np.testing.assert_allclose(post_cov, cov_ref, rtol=0, atol=1e-10 * max(1.0, oracle.mix.eigvals.max()))
    denoised = oracle.denoise(x, t)
    expected = np.einsum("nk,nkd->nd", resp_ref, mean_ref)
    a, s2 = oracle.sde.mean_coeff(t), oracle.sde.marginal_var(t)
    score = oracle.score(x, t)
    tol = 1e-8 * (np.linalg.norm(x, axis=1) + s2 * np.linalg.norm(score, axis=1)) / a
    np.testing.assert_array_less(np.linalg.norm(denoised - expected, axis=1), tol + 1e-9 * spread)


@given(cases())
@example(pinned(10, 4, 3, VPSDE(), 1e-4, n_point_masses=2))
def test_second_order_tweedie(case):
    """Cov[x_0 | x_t] = (s^2/a^2)(I + s^2 Hessian) against the posterior's mixture covariance
    sum_k pi_k (C'_k + (m'_k - m)(m'_k - m)^T), m = sum_k pi_k m'_k (independent reference).
    I + s^2 H cancels when the posterior is narrow, so the scale is (s^2/a^2)(1 + s^2 |H|)."""
    oracle, t, x = case
    resp, _, _, mean_ref, cov_ref = reference_components(oracle, t, x)
    m = np.einsum("nk,nkd->nd", resp, mean_ref)
    dev = mean_ref - m[:, None, :]
    post = np.einsum("nk,kij->nij", resp, cov_ref) + np.einsum("nk,nki,nkj->nij", resp, dev, dev)
    a, s2 = oracle.sde.mean_coeff(t), oracle.sde.marginal_var(t)
    H = oracle.hessian(x, t)
    tweedie = (s2 / a**2) * (np.eye(oracle.d)[None] + s2 * H)
    scale = (s2 / a**2) * (1.0 + s2 * np.abs(H).max(axis=(1, 2)))
    spread = max(1.0, oracle.mix.eigvals.max(), np.abs(oracle.mix.means).max() ** 2)
    err = np.abs(tweedie - post).max(axis=(1, 2))
    np.testing.assert_array_less(err, 1e-8 * scale + 1e-11 * spread)


# --------------------------------------------------------------------------- exact flow map
@st.composite
def flow_cases(draw):
    oracle, t, x = draw(cases(max_k=1, n=3))
    r = draw(sbst.times(oracle.sde, low=1e-4), label="r")
    return oracle, r, t, oracle.sample(3, r, np.random.default_rng(draw(sbst.seeds())))


@settings(max_examples=_FEW)
@given(flow_cases())
@example(pinned(11, 1, 5, VPSDE(), 1e-4)[:2] + (1.0, np.full((3, 5), 0.3)))
@example(pinned(12, 1, 3, VESDE(sigma_min=1e-3, sigma_max=1e3), 1.0)[:2] + (1e-4, np.ones((3, 3))))
def test_flow_map_solves_probability_flow_ode(case):
    """flow_map(x, r, t) equals a DOP853 solve of dx/dt = velocity(x, t) at rtol = atol = 1e-12
    to 1e-8 of |x_t| + the largest std at t (measured worst over 100 random cases: 4e-10, the
    solver's accumulated tolerance)."""
    oracle, r, t, x = case
    if r == t:
        t = oracle.sde.T if r < oracle.sde.T / 2 else 1e-4
    n, d = x.shape
    sol = solve_ivp(lambda u, y: oracle.velocity(y.reshape(n, d), u).ravel(), (r, t), x.ravel(),
                    method="DOP853", rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    x_t, _ = oracle.flow_map(x, r, t)
    scale = np.abs(x_t).max() + np.sqrt(marginal_variances(oracle, t).max())
    np.testing.assert_allclose(sol.y[:, -1].reshape(n, d), x_t, rtol=0, atol=1e-8 * scale)


@given(flow_cases())
def test_flow_map_pushforward_and_change_of_variables(case):
    """The map is affine, T(x) = A x + b (A and b read off T(0) and T(e_i)); it pushes
    N(m_r, C_r) to N(m_t, C_t): A m_r + b = m_t and A C_r A^T = C_t; its log-det is
    log|det A| and log p_r(x) = log p_t(T(x)) + logdet; T(T(x, r, u), u, t) = T(x, r, t)."""
    oracle, r, t, x = case
    d = oracle.d
    sde, mix = oracle.sde, oracle.mix
    b, logdet = oracle.flow_map(np.zeros((1, d)), r, t)
    A = (oracle.flow_map(np.eye(d), r, t)[0] - b).T
    b = b[0]
    a_r, a_t = sde.mean_coeff(r), sde.mean_coeff(t)
    C_r = a_r**2 * mix.covs[0] + sde.marginal_var(r) * np.eye(d)
    C_t = a_t**2 * mix.covs[0] + sde.marginal_var(t) * np.eye(d)
    size = np.abs(b).max() + np.abs(A).max() * (1 + np.abs(a_r * mix.means[0]).max())
    np.testing.assert_allclose(A @ (a_r * mix.means[0]) + b, a_t * mix.means[0], rtol=0, atol=1e-12 * size)
    np.testing.assert_allclose(A @ C_r @ A.T, C_t, rtol=0, atol=1e-10 * np.abs(C_t).max())
    np.testing.assert_allclose(np.linalg.slogdet(A)[1], logdet, rtol=0, atol=1e-9 * (1 + abs(logdet)))
    x_t, logdet_x = oracle.flow_map(x, r, t)
    assert logdet_x == logdet
    lhs = oracle.log_prob(x, r)
    rhs = oracle.log_prob(x_t, t) + logdet
    assert_within(lhs, rhs, 1e-9 * (1 + np.abs(lhs)), "change of variables")
    u = 0.5 * (r + t)
    np.testing.assert_allclose(oracle.flow_map(oracle.flow_map(x, r, u)[0], u, t)[0], x_t,
                               rtol=0, atol=1e-10 * (1 + np.abs(x_t).max()))
    # identity up to the round-off of projecting on U and back
    np.testing.assert_allclose(oracle.flow_map(x, r, r)[0], x, rtol=0,
                               atol=1e-14 * (np.abs(x).max() + np.abs(a_r * mix.means[0]).max()))


def test_flow_map_rejects_mixtures_and_singular_time():
    mix = sbst.build_gaussian_mixture(13, 2, 2)
    with pytest.raises(ValueError, match="^mix:"):
        MixtureOracle(mix, VPSDE()).flow_map(np.zeros((1, 2)), 0.5, 0.1)
    pm = MixtureOracle(GaussianMixture.point_masses([[1.0, 2.0]]), VPSDE())
    with pytest.raises(ValueError, match="^t:"):
        pm.flow_map(np.zeros((1, 2)), 0.5, 0.0)
    with pytest.raises(ValueError, match="^r:"):
        pm.flow_map(np.zeros((1, 2)), 1.5, 0.5)
    x_t, logdet = pm.flow_map(np.zeros((1, 2)), 0.5, 0.1)  # point mass, t > 0: fine
    assert np.all(np.isfinite(x_t)) and np.isfinite(logdet)


# --------------------------------------------------------------------------- velocity
@settings(max_examples=_FEW)
@given(cases(n=4))
@example(pinned(14, 6, 5, VESDE(sigma_min=1e-3, sigma_max=1e3), 1e-4, n=4))
def test_velocity_and_its_divergence(case):
    """velocity = f x - g^2/2 score, reverse_drift = f x - g^2 score, velocity_divergence =
    d f - g^2/2 laplacian = trace of the autograd Jacobian of the (torch) velocity."""
    oracle, t, x = case
    sde = oracle.sde
    f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
    score, lap = oracle.score(x, t), oracle.laplacian(x, t)
    np.testing.assert_allclose(oracle.velocity(x, t), f * x - 0.5 * g2 * score, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(oracle.reverse_drift(x, t), f * x - g2 * score, rtol=1e-14, atol=1e-300)
    div = oracle.velocity_divergence(x, t)
    np.testing.assert_allclose(div, oracle.d * f - 0.5 * g2 * lap, rtol=1e-14, atol=0)
    scale = oracle.d * abs(f) + 0.5 * g2 * (1.0 / length_scale(oracle, t) ** 2
                                            + (score * score).sum(axis=1))
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(
            lambda y: oracle.velocity(y[None], t)[0], torch.tensor(x[i], dtype=torch.float64)
        ).numpy()
        assert abs(np.trace(J) - div[i]) <= 1e-8 * scale[i]


# --------------------------------------------------------------------------- forward-SDE MC
EM_CASES = [(VPSDE(), 0.5, 2000, 101), (SubVPSDE(), 0.5, 2000, 102), (VESDE(), 0.5, 4000, 103)]
EM_MIX = sbst.build_gaussian_mixture(100, 3, 2, condition=20.0)
N_EM_ASSERT = len(EM_CASES) * 5  # 2 means + 3 covariance entries per case


@pytest.mark.parametrize("sde, t, steps, seed", EM_CASES, ids=["vp", "subvp", "ve"])
def test_forward_euler_maruyama_matches_marginal_moments(sde, t, steps, seed):
    """20,000 Euler-Maruyama paths of dx = f x dt + g dW from exact x_0 ~ p_0 to t match the
    exact marginal's mean and covariance.

    Statistics: each entry's error over its estimated standard error is asymptotically N(0, 1);
    Bonferroni over 15 entries (3 cases x 5) at 1e-7 gives z = Phi^-1(1 - 1e-7/30) ~ 5.8 (we
    budget 1e-7, not 1e-6, to cover the tail error of the CLT and the small bias below).

    Discretisation bias: EM on this linear SDE is a linear recursion, so its mean and covariance
    are known exactly: E x_n = P E x_0, Cov x_n = P^2 Cov x_0 + V, P = prod(1 + f_j h),
    V_{j+1} = (1 + f_j h)^2 V_j + g_j^2 h. The steps were chosen so that this bias is below 0.1
    standard error for every entry (asserted), i.e. far below the test's resolution."""
    n = 20_000
    rng = np.random.default_rng(seed)
    mix = EM_MIX
    x = mix.sample(n, rng)
    h = t / steps
    tj = np.arange(steps) * h
    f, g = sde.drift_coeff(tj), sde.diffusion(tj)
    P, V = 1.0, 0.0
    noise = np.empty_like(x)
    for j in range(steps):  # x <- x + f x h + g sqrt(h) z, in place
        rng.standard_normal(out=noise)
        noise *= g[j] * np.sqrt(h)
        x *= 1 + f[j] * h
        x += noise
        P, V = P * (1 + f[j] * h), (1 + f[j] * h) ** 2 * V + g[j] ** 2 * h
    exact = MixtureOracle(mix, sde).marginal(t)
    m_exact, c_exact = exact.mean(), exact.covariance()
    se_mean = x.std(axis=0, ddof=1) / np.sqrt(n)
    xc = x - x.mean(axis=0)
    prod = xc[:, :, None] * xc[:, None, :]
    se_cov = prod.std(axis=0, ddof=1) / np.sqrt(n)
    iu = np.triu_indices(2)
    # the exact EM bias is negligible against the standard errors
    bias_mean = (P - sde.mean_coeff(t)) * mix.mean()
    bias_cov = (P**2 - sde.mean_coeff(t) ** 2) * mix.covariance() + (V - sde.marginal_var(t)) * np.eye(2)
    assert np.all(np.abs(bias_mean) <= 0.1 * se_mean)
    assert np.all(np.abs(bias_cov[iu]) <= 0.1 * se_cov[iu])
    z = stats.norm.isf(ALPHA / 10 / (2 * N_EM_ASSERT))
    assert np.all(np.abs(x.mean(axis=0) - m_exact) <= z * se_mean)
    assert np.all(np.abs(prod.mean(axis=0) - c_exact)[iu] <= z * se_cov[iu])


def test_exact_samples_and_marginal():
    """sample(n, t) has the marginal's moments (Bonferroni over 5 entries at 1e-7, z ~ 5.7);
    marginal(t) is the mixture N(a mu_k, a^2 Sigma_k + s^2 I) and its log_prob is log p_t."""
    sde, t = SubVPSDE(), 0.3
    oracle = MixtureOracle(EM_MIX, sde)
    marg = oracle.marginal(t)
    a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
    np.testing.assert_allclose(marg.means, a * EM_MIX.means, rtol=1e-15)
    np.testing.assert_allclose(marg.covs, a * a * EM_MIX.covs + s2 * np.eye(2), rtol=1e-15)
    x = oracle.sample(100_000, t, np.random.default_rng(104))
    np.testing.assert_allclose(oracle.log_prob(x[:50], t), marg.log_prob(x[:50]), rtol=1e-12)
    np.testing.assert_allclose(oracle.exact_log_prob_T(x[:5]), oracle.log_prob(x[:5], sde.T), rtol=0)
    z = stats.norm.isf(ALPHA / 10 / (2 * 5))
    n = x.shape[0]
    assert np.all(np.abs(x.mean(0) - marg.mean()) <= z * x.std(0, ddof=1) / np.sqrt(n))
    xc = x - x.mean(0)
    prod = (xc[:, :, None] * xc[:, None, :])[:, [0, 0, 1], [0, 1, 1]]
    cov = marg.covariance()[[0, 0, 1], [0, 1, 1]]
    assert np.all(np.abs(prod.mean(0) - cov) <= z * prod.std(0, ddof=1) / np.sqrt(n))


# --------------------------------------------------------------------------- stability
STABILITY_SDES = [VPSDE(), SubVPSDE(), VESDE(), VESDE(sigma_min=0.01, sigma_max=1e3)]


@pytest.mark.parametrize("sde", STABILITY_SDES, ids=repr)
@pytest.mark.parametrize("t", [1e-5, 0.5, 1.0])
def test_far_points_small_times_and_large_sigma_are_finite_and_exact(sde, t):
    """Points 1e3 standard deviations out, t down to 1e-5 and VE up to sigma_max = 1e3: every
    output finite, log p and score equal to the scipy/linalg reference (log-sum-exp in both)."""
    mix = sbst.build_gaussian_mixture(200, 3, 3, condition=1e4)
    oracle = MixtureOracle(mix, sde, backend="numpy")
    lam = marginal_variances(oracle, t)
    rng = np.random.default_rng(201)
    u = rng.standard_normal((4, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    k = np.arange(4) % 3
    x = sde.mean_coeff(t) * mix.means[k] + 1e3 * np.sqrt(lam.max(axis=1))[k][:, None] * u
    x = np.concatenate([x, oracle.sample(2, t, rng)])
    resp, logp_ref, g, _, _ = reference_components(oracle, t, x)
    outputs = [oracle.log_prob(x, t), oracle.score(x, t), oracle.hessian(x, t),
               oracle.laplacian(x, t), oracle.denoise(x, t), oracle.velocity(x, t),
               oracle.velocity_divergence(x, t)]
    assert all(np.all(np.isfinite(o)) for o in outputs)
    np.testing.assert_allclose(outputs[0], logp_ref, rtol=1e-9)
    score_ref = np.einsum("nk,nkd->nd", resp, g)
    # error relative to the score's size, amplified by cond(C_k) <= 1e4
    err = np.linalg.norm(outputs[1] - score_ref, axis=1)
    assert np.all(err <= 1e-9 * np.linalg.norm(score_ref, axis=1))


COSINE = LinearSDE(lambda t: -1.49 * np.tan(0.01 + 1.49 * t),
                   lambda t: np.sqrt(2 * 1.49 * np.tan(0.01 + 1.49 * t)), name="cosine")


@pytest.mark.parametrize("sde", STABILITY_SDES + [COSINE], ids=repr)
def test_point_mass_data(sde):
    """Point-mass data: finite everything for t > 0 (down to 1e-5), a ValueError naming t at
    t = 0 (scalar or inside a per-point t array), and the exact score of N(a y, s^2 I) for one
    point mass: (a y - x) / s^2."""
    y = np.array([[1.0, -2.0]])
    oracle = MixtureOracle(GaussianMixture.point_masses(np.concatenate([y, -y])), sde, backend="numpy")
    single = MixtureOracle(GaussianMixture.point_masses(y), sde, backend="numpy")
    x = np.array([[0.5, 0.5], [1.0, -2.0], [300.0, 0.0]])
    for t in (1e-5, 0.3, sde.T):
        for method in ("log_prob", "score", "laplacian", "hessian", "denoise", "velocity",
                       "velocity_divergence", "reverse_drift"):
            assert np.all(np.isfinite(getattr(oracle, method)(x, t)))
        a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
        np.testing.assert_allclose(single.score(x, t), (a * y - x) / s2, rtol=1e-12)
        np.testing.assert_allclose(single.denoise(x, t), np.broadcast_to(y, x.shape), rtol=1e-9, atol=1e-9)
    for method in ("log_prob", "score", "laplacian", "hessian", "score_and_laplacian", "denoise",
                   "posterior", "velocity", "velocity_divergence", "reverse_drift"):
        with pytest.raises(ValueError, match="^t:"):
            getattr(oracle, method)(x, 0.0)
        with pytest.raises(ValueError, match="^t:"):
            getattr(oracle, method)(x, np.array([0.5, 0.0, 0.5]))
    with pytest.raises(ValueError, match="^t:"):
        oracle.log_prob(torch.tensor(x), 0.0)


def test_density_at_t0_is_the_data_density():
    mix = sbst.build_gaussian_mixture(300, 3, 2, condition=100.0)
    oracle = MixtureOracle(mix, VPSDE())
    x = mix.sample(5, np.random.default_rng(301))
    np.testing.assert_allclose(oracle.log_prob(x, 0.0), mix.log_prob(x), rtol=1e-14)
    np.testing.assert_allclose(oracle.score(x, 0.0), mix.score(x), rtol=1e-14)
    np.testing.assert_allclose(oracle.denoise(x, 0.0), x, rtol=1e-14)


# --------------------------------------------------------------------------- per-point times
def test_per_point_times_equal_scalar_evaluations():
    mix = sbst.build_gaussian_mixture(400, 3, 3, condition=50.0, n_point_masses=1)
    oracle = MixtureOracle(mix, VESDE(), backend="numpy")
    ts = np.array([1e-4, 0.2, 0.5, 1.0])
    x = np.random.default_rng(401).standard_normal((4, 3))
    for method in ("log_prob", "score", "laplacian", "hessian", "denoise", "velocity",
                   "velocity_divergence", "reverse_drift"):
        fn = getattr(oracle, method)
        per_point = fn(x, ts)
        looped = np.concatenate([fn(x[i:i + 1], ts[i]) for i in range(4)])
        np.testing.assert_allclose(per_point, looped, rtol=1e-13, atol=0, err_msg=method)
    resp, means, covs = oracle.posterior(x, ts)
    assert covs.shape == (4, 3, 3, 3)
    for i in range(4):
        r_i, m_i, c_i = oracle.posterior(x[i:i + 1], ts[i])
        np.testing.assert_allclose(resp[i], r_i[0], rtol=1e-13)
        np.testing.assert_allclose(means[i], m_i[0], rtol=1e-13)
        np.testing.assert_allclose(covs[i], c_i, rtol=1e-13, atol=1e-300)


# --------------------------------------------------------------------------- bad input
BAD_X = [
    (np.zeros((3, 3)), "wrong last dimension"),
    (np.zeros(2), "1-D"),
    (np.zeros((1, 2, 2)), "3-D"),
    (np.array([[0.0, np.nan]]), "nan"),
    (np.array([[np.inf, 0.0]]), "inf"),
    (torch.zeros((3, 1), dtype=torch.float64), "torch wrong dimension"),
    (torch.tensor([[0.0, float("nan")]]), "torch nan"),
]


@pytest.mark.parametrize("x", [b[0] for b in BAD_X], ids=[b[1] for b in BAD_X])
def test_bad_points_raise(x):
    oracle = MixtureOracle(sbst.build_gaussian_mixture(500, 2, 2), VPSDE())
    methods = ["log_prob", "score", "laplacian", "hessian", "score_and_laplacian", "denoise",
               "velocity", "velocity_divergence", "reverse_drift", "__call__"]
    if not isinstance(x, torch.Tensor):
        methods.append("posterior")
    for method in methods:
        with pytest.raises(ValueError, match="^x:"):
            getattr(oracle, method)(x, 0.5)
    if not isinstance(x, torch.Tensor):
        single = MixtureOracle(sbst.build_gaussian_mixture(500, 1, 2), VPSDE())
        with pytest.raises(ValueError, match="^x:"):
            single.flow_map(x, 0.5, 0.1)


@pytest.mark.parametrize("t", [-1e-3, 1.0 + 1e-9, float("nan"), float("inf"),
                               np.array([0.5, 1.5]), np.array([0.5]), np.zeros((2, 1))],
                         ids=["neg", "above", "nan", "inf", "arr-above", "arr-wrong-length", "2-D"])
def test_bad_times_raise(t):
    oracle = MixtureOracle(sbst.build_gaussian_mixture(501, 2, 2), VPSDE())
    x = np.zeros((2, 2))
    for method in ("log_prob", "score", "laplacian", "hessian", "denoise", "velocity",
                   "velocity_divergence", "reverse_drift", "posterior"):
        with pytest.raises(ValueError, match="^t:"):
            getattr(oracle, method)(x, t)


def test_bad_construction_and_scalar_only_methods():
    mix = sbst.build_gaussian_mixture(502, 2, 2)
    with pytest.raises(TypeError, match="^mix:"):
        MixtureOracle("mixture", VPSDE())
    with pytest.raises(TypeError, match="^sde:"):
        MixtureOracle(mix, "vp")
    with pytest.raises(ValueError, match="^backend:"):
        MixtureOracle(mix, VPSDE(), backend="cuda-magic")
    oracle = MixtureOracle(mix, VPSDE())
    with pytest.raises(ValueError, match="^t:"):
        oracle.marginal(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="^t:"):
        oracle.sample(3, 2.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="^n:"):
        oracle.sample(0, 0.5, np.random.default_rng(0))


# --------------------------------------------------------------------------- torch in, torch out
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_in_torch_out(dtype):
    """Each method returns a tensor of the input's dtype and device, differentiable, equal to
    the numpy float64 result (float32: 1e-4 relative on this well-conditioned case)."""
    mix = sbst.build_gaussian_mixture(600, 3, 2, condition=10.0)
    oracle = MixtureOracle(mix, VPSDE())
    x = oracle.sample(5, 0.4, np.random.default_rng(601))
    rtol = 1e-12 if dtype == torch.float64 else 1e-4
    for method in ("log_prob", "score", "laplacian", "hessian", "denoise", "velocity",
                   "velocity_divergence", "reverse_drift", "__call__"):
        xt = torch.tensor(x, dtype=dtype, requires_grad=True)
        out = getattr(oracle, method)(xt, 0.4)
        ref = getattr(oracle, method)(x, 0.4)
        assert isinstance(out, torch.Tensor), method
        assert out.dtype == dtype and out.device == xt.device, method
        assert out.requires_grad and out.grad_fn is not None, method
        scale = np.abs(ref).max()
        np.testing.assert_allclose(out.detach().double().numpy(), ref, rtol=0, atol=rtol * scale,
                                   err_msg=method)
    s, lap = oracle.score_and_laplacian(torch.tensor(x, dtype=dtype), torch.full((5,), 0.4))
    assert s.dtype == dtype and lap.dtype == dtype and lap.shape == (5,)
