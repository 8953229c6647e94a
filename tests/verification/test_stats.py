"""Statistical acceptance: KS/DKW, exact mixture kernel expectations, MMD/McDiarmid, Gaussian distances.

Monte Carlo comparisons use 5.5 standard errors: P(|Z| > 5.5) = 3.8e-8 per comparison, and the 13
comparisons below stay under 1e-6 together (union bound). The kernel and the characteristic
function are bounded, so the CLT is accurate at n = 2e5.
"""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from scorebench.verification.stats import (
    bonferroni,
    char_fn_features,
    dkw_threshold,
    kernel_features,
    kl_gaussian,
    ks_test_cdf,
    mcdiarmid_threshold,
    mean_with_se,
    mixture_char_fn,
    mixture_first_moment,
    mixture_kernel_expectation,
    mixture_kernel_mean,
    mixture_second_moment,
    mmd_test_mixture,
    w2_gaussian,
    weak_error_with_bar,
)

K_SE = 5.5
W2D = np.array([0.5, 0.3, 0.2])
M2D = np.array([[0.0, 0.0], [2.0, -1.0], [-1.5, 2.0]])
C2D = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.2, 0.0], [0.0, 1.5]], [[0.0, 0.0], [0.0, 0.0]]])  # last: point mass
W1D = np.array([0.3, 0.5, 0.2])
M1D = np.array([[-2.0], [0.5], [2.5]])
V1D = np.array([0.2, 0.1, 0.3])
C1D = V1D[:, None, None]


def sample_mixture(w, m, c, n, rng):
    comp = rng.choice(len(w), size=n, p=w)
    vals, vecs = np.linalg.eigh(c)
    factors = vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]
    z = rng.standard_normal((n, m.shape[1]))
    return m[comp] + np.einsum("nij,nj->ni", factors[comp], z)


def mixture_cdf_1d(x, shift=0.0):
    return np.sum(W1D * sps.norm.cdf((np.asarray(x)[:, None] - M1D[:, 0] - shift) / np.sqrt(V1D)), axis=1)


# --------------------------------------------------------------------------- KS


def test_ks_statistic_matches_scipy_and_accepts_exact_samples():
    rng = np.random.default_rng(20)
    x = rng.standard_normal(2000)
    res = ks_test_cdf(x, sps.norm.cdf, alpha=1e-6)  # DKW: P(fail) <= 1e-6
    assert res.statistic == pytest.approx(sps.kstest(x, "norm").statistic, abs=1e-14)
    assert res.threshold == pytest.approx(math.sqrt(math.log(2e6) / 4000))
    assert res.passed


def test_ks_mixture_exact_passes_shifted_fails():
    alpha = bonferroni(1e-6, 2)
    rng = np.random.default_rng(21)
    x = sample_mixture(W1D, M1D, C1D, 2000, rng)
    assert ks_test_cdf(x, mixture_cdf_1d, alpha).passed
    # power: sup|F_n - G| <= eps w.p. 1 - alpha (DKW) and D_n >= D_true - eps, so the shifted CDF is
    # rejected whenever D_true > 2 * threshold, as checked here on a fine grid
    grid = np.linspace(-6, 6, 20001)
    d_true = np.max(np.abs(mixture_cdf_1d(grid, 0.5) - mixture_cdf_1d(grid)))
    res = ks_test_cdf(x, lambda s: mixture_cdf_1d(s, 0.5), alpha)
    assert d_true > 2 * res.threshold
    assert not res.passed and res.statistic > res.threshold


def test_ks_bad_input():
    with pytest.raises(ValueError, match="samples_1d"):
        ks_test_cdf(np.zeros((3, 2)), sps.norm.cdf, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        ks_test_cdf(np.zeros(3), sps.norm.cdf, 1.5)
    with pytest.raises(ValueError, match="cdf"):
        ks_test_cdf(np.zeros(3), lambda s: np.zeros(2), 0.01)
    with pytest.raises(ValueError, match="samples_1d"):
        ks_test_cdf(np.array([0.0, np.nan]), sps.norm.cdf, 0.01)


# --------------------------------------------------------------------------- exact expectations


def test_kernel_expectations_against_monte_carlo():
    rng = np.random.default_rng(30)
    n, ls = 200_000, 0.8
    x = sample_mixture(W2D, M2D, C2D, n, rng)
    xp = sample_mixture(W2D, M2D, C2D, n, rng)
    ys = np.array([[0.0, 0.0], [2.0, -1.0], [-1.5, 2.0], [1.0, 3.0]])
    mean, se = mean_with_se(kernel_features(x, ys, ls))
    exact = mixture_kernel_mean(W2D, M2D, C2D, ys, ls)
    assert np.all(np.abs(mean - exact) <= K_SE * se)
    pair = np.exp(-np.sum((x - xp) ** 2, axis=1) / (2 * ls**2))
    m_pair, se_pair = mean_with_se(pair)
    assert abs(m_pair - mixture_kernel_expectation(W2D, M2D, C2D, ls)) <= K_SE * se_pair
    omegas = np.array([[0.5, 0.0], [0.3, -0.7], [1.2, 0.4]])
    m_cf, se_cf = mean_with_se(char_fn_features(x, omegas))
    assert np.all(np.abs(m_cf - mixture_char_fn(W2D, M2D, C2D, omegas)) <= K_SE * se_cf)
    m1, se1 = mean_with_se(x)
    assert np.all(np.abs(m1 - mixture_first_moment(W2D, M2D, C2D)) <= K_SE * se1)
    m2, se2 = mean_with_se(x[:, [0, 0, 1]] * x[:, [0, 1, 1]])
    exact2 = mixture_second_moment(W2D, M2D, C2D)[[0, 0, 1], [0, 1, 1]]
    assert np.all(np.abs(m2 - exact2) <= K_SE * se2)


def _density_1d(x):
    return float(np.sum(W1D * sps.norm.pdf(x, M1D[:, 0], np.sqrt(V1D))))


def test_kernel_expectations_against_quadrature_1d():
    ls = 0.7
    ys = np.array([[-2.0], [0.3], [3.0]])
    exact = mixture_kernel_mean(W1D, M1D, C1D, ys, ls)
    for y, ex in zip(ys[:, 0], exact):
        val, _ = integrate.quad(lambda t: _density_1d(t) * math.exp(-((t - y) ** 2) / (2 * ls**2)), -12, 12,
                                points=[-2, 0.5, 2.5], epsabs=1e-13)
        assert ex == pytest.approx(val, rel=1e-9, abs=1e-12)
    # double integral by the trapezoid rule on [-8, 8]^2, step 0.01: for this smooth, rapidly decaying
    # integrand (narrowest sd 0.32) the rule is spectrally accurate, far below the 1e-9 asked
    g = np.linspace(-8, 8, 1601)
    dens = np.sum(W1D * sps.norm.pdf(g[:, None], M1D[:, 0], np.sqrt(V1D)), axis=1)
    integrand = dens[:, None] * dens[None, :] * np.exp(-((g[:, None] - g[None, :]) ** 2) / (2 * ls**2))
    dbl = integrate.trapezoid(integrate.trapezoid(integrand, g, axis=1), g)
    assert mixture_kernel_expectation(W1D, M1D, C1D, ls) == pytest.approx(dbl, rel=1e-9)
    for om in (0.4, 1.3):
        re, _ = integrate.quad(lambda t: _density_1d(t) * math.cos(om * t), -12, 12, points=[-2, 0.5, 2.5])
        im, _ = integrate.quad(lambda t: _density_1d(t) * math.sin(om * t), -12, 12, points=[-2, 0.5, 2.5])
        assert mixture_char_fn(W1D, M1D, C1D, [[om]])[0] == pytest.approx(re + 1j * im, abs=1e-10)


def test_point_masses_have_exact_closed_forms():
    w, m, c = np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.zeros((2, 1, 1))
    assert mixture_second_moment(w, m, c)[0, 0] == pytest.approx(1.0)
    assert mixture_char_fn(w, m, c, [[0.7]])[0] == pytest.approx(math.cos(0.7))
    # E k = 1/2 (k(0) + k(2)) for independent draws from {-1, 1}
    assert mixture_kernel_expectation(w, m, c, 1.0) == pytest.approx(0.5 * (1 + math.exp(-2.0)))


def test_mixture_validation():
    with pytest.raises(ValueError, match="weights"):
        mixture_first_moment([0.5, 0.4], M2D[:2], C2D[:2])
    bad = C2D.copy()
    bad[0] = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(ValueError, match="covs: expected positive semi-definite"):
        mixture_second_moment(W2D, M2D, bad)
    with pytest.raises(ValueError, match="covs"):
        mixture_second_moment(W2D, M2D, C2D[:, :1, :1])
    with pytest.raises(ValueError, match="lengthscale"):
        mixture_kernel_expectation(W2D, M2D, C2D, 0.0)
    with pytest.raises(ValueError, match="points"):
        mixture_kernel_mean(W2D, M2D, C2D, np.zeros((3, 3)), 1.0)


# --------------------------------------------------------------------------- MMD


def test_mmd_statistic_against_direct_formula_for_a_point_mass():
    # p = delta_0: E_p k(x, .) = exp(-|x|^2 / 2l^2) and E_pp k = 1, computed here from the definition
    rng = np.random.default_rng(40)
    x, ls = rng.standard_normal((300, 2)), 1.3
    kmat = np.exp(-np.sum((x[:, None] - x[None]) ** 2, axis=-1) / (2 * ls**2))
    cross = np.exp(-np.sum(x**2, axis=1) / (2 * ls**2))
    res = mmd_test_mixture(x, [1.0], [[0.0, 0.0]], np.zeros((1, 2, 2)), ls, 0.01)
    assert res.mmd2_v == pytest.approx(kmat.mean() - 2 * cross.mean() + 1, rel=1e-12)
    u = (kmat.sum() - 300) / (300 * 299)
    assert res.mmd2_u == pytest.approx(u - 2 * cross.mean() + 1, rel=1e-12)
    assert res.mmd == pytest.approx(math.sqrt(res.mmd2_v))
    assert mcdiarmid_threshold(300, 0.01) == pytest.approx(math.sqrt(1 / 300) * (1 + math.sqrt(2 * math.log(100))))


def test_mmd_accepts_exact_samples_and_rejects_shifted():
    alpha = bonferroni(1e-6, 4)  # 3 null tests + 1 power test
    n, ls = 1000, 1.0
    for seed in (41, 42, 43):
        x = sample_mixture(W2D, M2D, C2D, n, np.random.default_rng(seed))
        res = mmd_test_mixture(x, W2D, M2D, C2D, ls, alpha)
        assert res.passed and res.mmd2_v >= 0
    shifted = M2D + np.array([1.5, 0.0])
    # population MMD(p, q): with r = (p + q)/2, E_pq = 2 E_rr - (E_pp + E_qq)/2
    e_pp = mixture_kernel_expectation(W2D, M2D, C2D, ls)
    e_qq = mixture_kernel_expectation(W2D, shifted, C2D, ls)
    e_rr = mixture_kernel_expectation(np.r_[W2D, W2D] / 2, np.r_[M2D, shifted], np.r_[C2D, C2D], ls)
    mmd_true = math.sqrt(2 * (e_pp + e_qq) - 4 * e_rr)
    # MMD_V >= mmd_true - eps w.p. 1 - alpha (E MMD_V >= mmd_true by Jensen; McDiarmid lower tail with
    # eps = sqrt(2 ln(1/alpha) / n)), so the shift is detected if mmd_true > threshold + eps
    n_q = 2000
    eps = math.sqrt(2 * math.log(1 / alpha) / n_q)
    assert mmd_true > mcdiarmid_threshold(n_q, alpha) + eps
    q = sample_mixture(W2D, shifted, C2D, n_q, np.random.default_rng(44))
    res = mmd_test_mixture(q, W2D, M2D, C2D, ls, alpha)
    assert not res.passed and res.mmd > res.threshold


def test_mmd_bad_input():
    with pytest.raises(ValueError, match="samples"):
        mmd_test_mixture(np.zeros((10, 3)), W2D, M2D, C2D, 1.0, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        mmd_test_mixture(np.zeros((10, 2)), W2D, M2D, C2D, 1.0, 0.0)


# --------------------------------------------------------------------------- helpers


def test_bonferroni_and_thresholds():
    assert bonferroni(1e-6, 4) == pytest.approx(2.5e-7)
    assert dkw_threshold(100, 0.05) == pytest.approx(math.sqrt(math.log(40) / 200))
    with pytest.raises(ValueError, match="n_tests"):
        bonferroni(1e-6, 0)
    with pytest.raises(ValueError, match="alpha"):
        bonferroni(0.0, 3)


def test_mean_with_se_and_weak_error():
    v = np.array([1.0, 2.0, 3.0, 6.0])
    mean, se = mean_with_se(v)
    assert mean == pytest.approx(3.0) and se == pytest.approx(np.std(v, ddof=1) / 2)
    z = np.array([1 + 1j, 1 - 1j, 3 + 1j, 3 - 1j])  # var(re) = 4/3, var(im) = 4/3
    _, se_z = mean_with_se(z)
    assert se_z == pytest.approx(math.sqrt(8 / 3 / 4))
    vals = np.column_stack([v, 2 * v])
    we = weak_error_with_bar(vals, [2.0, 5.0])  # biases 1 and 1
    assert we.error == pytest.approx(math.sqrt(2)) and we.errors == pytest.approx([1.0, 1.0])
    assert we.se == pytest.approx(math.sqrt(se**2 + (2 * se) ** 2)) and we.n == 4
    assert weak_error_with_bar(v, 3.0).error == pytest.approx(0.0)
    with pytest.raises(ValueError, match="exact"):
        weak_error_with_bar(vals, [1.0])
    with pytest.raises(ValueError, match="values"):
        mean_with_se(np.array([1.0]))


# --------------------------------------------------------------------------- Gaussian distances


def test_w2_and_kl_closed_forms_1d():
    m1, s1, m2, s2 = 0.3, 0.7, -1.1, 1.9
    assert w2_gaussian([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(math.hypot(m1 - m2, s1 - s2), rel=1e-12)
    kl = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert kl_gaussian([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(kl, rel=1e-12)
    assert w2_gaussian(m1, s1**2, m1, s1**2) == pytest.approx(0.0, abs=1e-12)


def test_w2_and_kl_in_several_dimensions():
    rng = np.random.default_rng(50)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    a, b = np.array([0.5, 1.0, 2.0]), np.array([1.5, 0.2, 2.0])
    m1, m2 = rng.standard_normal(3), rng.standard_normal(3)
    # commuting covariances: W2^2 = |dm|^2 + sum (sqrt a - sqrt b)^2, invariant under rotation
    w2 = math.sqrt(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert w2_gaussian(q @ m1, q @ np.diag(a) @ q.T, q @ m2, q @ np.diag(b) @ q.T) == pytest.approx(w2, rel=1e-10)
    # point mass vs Gaussian: W2^2 = |dm|^2 + tr C
    assert w2_gaussian(m1, np.zeros((3, 3)), m2, np.diag(b)) == pytest.approx(
        math.sqrt(np.sum((m1 - m2) ** 2) + b.sum()), rel=1e-10)
    c1 = q @ np.diag(a) @ q.T
    c2 = np.diag(b) + 0.1
    kl = 0.5 * (np.trace(np.linalg.solve(c2, c1)) + (m2 - m1) @ np.linalg.solve(c2, m2 - m1) - 3
                + np.linalg.slogdet(c2)[1] - np.linalg.slogdet(c1)[1])
    assert kl_gaussian(m1, c1, m2, c2) == pytest.approx(kl, rel=1e-10)
    assert kl_gaussian(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="cov2: expected a positive definite"):
        kl_gaussian(m1, c1, m2, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="cov1"):
        w2_gaussian(m1, np.ones((2, 2)), m2, c2)
