"""GaussianMixture: densities against scipy, scores against finite differences, sampling,
characteristic function, 1-D CDF, constructors and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from scipy import stats
from scipy.integrate import quad
from scipy.special import logsumexp

from scorebench.analytic.mixture import GaussianMixture
from scorebench.testing import strategies as sbst

_FEW = max(5, settings.default.max_examples // 2)
ALPHA = 1e-6  # family-wise false-failure probability budget of every statistical test


def bonferroni_z(n_assertions: int, alpha: float = ALPHA) -> float:
    """Two-sided normal quantile such that n_assertions |Z| > z events have total prob. < alpha."""
    return float(stats.norm.isf(alpha / (2 * n_assertions)))


def scipy_log_prob(mix, x):
    """log sum_k w_k N(x; mu_k, Sigma_k) with scipy's own factorisation (the reference)."""
    comps = [np.log(w) + np.atleast_1d(stats.multivariate_normal(m, c).logpdf(x))
             for w, m, c in zip(mix.weights, mix.means, mix.covs)]
    return logsumexp(np.stack(comps, axis=1), axis=1)


def central_gradient(f, x, h):
    """Fourth-order central differences of a batched scalar field f: (N, d) -> (N,).

    ``h`` is a per-point step (N,). Error h^4/30 |f^(5)| + ~1.5 eps |f| / h per component."""
    n, d = x.shape
    grad = np.empty((n, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = 1.0
        step = h[:, None] * e[None]
        fm2, fm1, fp1, fp2 = (f(x + c * step) for c in (-2.0, -1.0, 1.0, 2.0))
        grad[:, i] = (fm2 - 8.0 * fm1 + 8.0 * fp1 - fp2) / (12.0 * h)
    return grad


def eval_points(mix, rng, n=6, spread=4.0):
    """Samples of the mixture plus points up to ``spread`` widest-direction std's from a mean."""
    x = mix.sample(n, rng)
    k = rng.integers(0, mix.K, size=n)
    u = rng.standard_normal((n, mix.d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = rng.uniform(0, spread, size=(n, 1)) * np.sqrt(mix.eigvals.max(axis=1))[k][:, None]
    return np.concatenate([x, mix.means[k] + r * u])




mixtures = sbst.gaussian_mixtures(max_k=6, max_d=5, max_condition=1e4)


# --------------------------------------------------------------------------- density and score
@given(mixtures, sbst.seeds())
@example(sbst.build_gaussian_mixture(1, 6, 5, condition=1e4), 0)
@example(sbst.build_gaussian_mixture(2, 1, 1), 0)
def test_log_prob_matches_scipy(mix, seed):
    """Relative to 1 + |log p|: scipy and we factor differently (Cholesky vs eigh); with
    condition numbers <= 1e4 the quadratic forms agree to ~1e4 eps, so 1e-9 has a wide margin."""
    x = eval_points(mix, np.random.default_rng(seed))
    ref = scipy_log_prob(mix, x)
    out = mix.log_prob(x)
    assert out.shape == (x.shape[0],)
    np.testing.assert_array_less(np.abs(out - ref), 1e-9 * (1.0 + np.abs(ref)))


@given(mixtures, sbst.seeds())
@example(sbst.build_gaussian_mixture(3, 6, 5, condition=1e4), 1)
def test_score_matches_central_differences(mix, seed):
    """Step h = 1e-3 * ell with ell = min over components of the smallest std: log p is smooth
    on the scale ell (and on ell^2 / |mu_j - mu_k| where responsibilities switch, also covered
    by the min with the switching scale). The 4th-order error is ~(h/ell)^4 = 1e-12 relative to
    |score| ~ 1/ell, rounding ~eps |log p| ell / h = 1e3 eps |log p|; 1e-6 is a safe bound."""
    x = eval_points(mix, np.random.default_rng(seed))
    ell = np.sqrt(mix.eigvals.min())
    sep = np.ptp(mix.means, axis=0).max() if mix.K > 1 else 0.0
    ell = min(ell, ell**2 / max(sep, 1e-300))
    h = np.full(x.shape[0], 1e-3 * ell)
    fd = central_gradient(mix.log_prob, x, h)
    score = mix.score(x)
    scale = np.linalg.norm(score, axis=1) + 1.0 / ell
    np.testing.assert_array_less(np.linalg.norm(fd - score, axis=1), 1e-6 * scale)


def test_log_prob_far_out_is_finite_and_exact():
    """1e3 standard deviations out: log-sum-exp keeps log p and the score finite and exact."""
    mix = GaussianMixture.isotropic([0.5, 0.5], [[0.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
    x = np.array([[1e3, 0.0], [-1e3, 5e2]])
    np.testing.assert_allclose(mix.log_prob(x), scipy_log_prob(mix, x), rtol=1e-12)
    # far out, the nearer component (1, 0) has responsibility 1 - O(e^-1000)
    np.testing.assert_allclose(mix.score(x)[0], -(x[0] - [1.0, 0.0]), rtol=1e-12)
    np.testing.assert_allclose(mix.score(x)[1], -x[1], rtol=1e-12)


# --------------------------------------------------------------------------- sampling
MOMENT_CASES = [
    (11, sbst.build_gaussian_mixture(21, 3, 2, condition=100.0)),
    (12, sbst.build_gaussian_mixture(22, 1, 3, condition=1e4)),
    (13, sbst.build_gaussian_mixture(23, 4, 2, condition=10.0, n_point_masses=2)),
]
# number of scalar assertions in test_sample_moments: d means + d(d+1)/2 covariance entries each
N_MOMENT_ASSERTIONS = sum(m.d + m.d * (m.d + 1) // 2 for _, m in MOMENT_CASES)


@pytest.mark.parametrize("seed, mix", MOMENT_CASES, ids=["full", "ill-conditioned", "point-masses"])
def test_sample_moments(seed, mix):
    """Sample mean and covariance against mean() and covariance().

    Each entry's error divided by its estimated standard error (std of x_i, resp. of the
    centred products (x_i - m_i)(x_j - m_j), over sqrt(n)) is asymptotically N(0, 1) (mixtures
    have all moments). Bonferroni over the 19 entries of the three cases with alpha = 1e-7
    gives z = Phi^-1(1 - 1e-7 / 38) ~ 5.9; we budget 1e-7 rather than 1e-6 so that the CLT's
    skewness correction in the tail (Cramer: a factor exp(O(z^3 / sqrt(n))) <= ~1.5 at
    n = 1e5) still leaves the family-wise false-failure probability below 1e-6."""
    n = 100_000
    z = bonferroni_z(N_MOMENT_ASSERTIONS, alpha=ALPHA / 10)
    x = mix.sample(n, np.random.default_rng(seed))
    assert x.shape == (n, mix.d)
    se_mean = x.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - mix.mean()) <= z * se_mean)
    xc = x - x.mean(axis=0)
    prod = xc[:, :, None] * xc[:, None, :]
    se_cov = prod.std(axis=0, ddof=1) / np.sqrt(n)
    iu = np.triu_indices(mix.d)
    err = np.abs(prod.mean(axis=0) - mix.covariance())[iu]
    assert np.all(err <= z * se_cov[iu])


def test_mean_and_covariance_closed_forms():
    mix = GaussianMixture([0.25, 0.75], [[1.0, 0.0], [-1.0, 2.0]],
                          [np.eye(2), [[2.0, 0.5], [0.5, 1.0]]])
    np.testing.assert_allclose(mix.mean(), [-0.5, 1.5], rtol=1e-15)
    # law of total covariance: E[Cov] + Cov[E]
    within = 0.25 * np.eye(2) + 0.75 * np.array([[2.0, 0.5], [0.5, 1.0]])
    d = np.array([2.0, -2.0])
    np.testing.assert_allclose(mix.covariance(), within + 0.25 * 0.75 * np.outer(d, d), rtol=1e-14)


def test_point_mass_samples_are_the_points():
    pts = np.array([[0.0, 1.0], [2.0, -3.0], [5.0, 5.0]])
    mix = GaussianMixture.point_masses(pts, weights=[1.0, 1.0, 0.0])
    x = mix.sample(200, np.random.default_rng(3))
    hits = (x[:, None, :] == pts[None]).all(axis=2)
    assert np.all(hits.sum(axis=1) == 1) and not hits[:, 2].any()


# --------------------------------------------------------------------------- characteristic fn
@given(sbst.gaussian_mixtures(max_k=1, max_d=5, allow_point_masses=True), sbst.seeds())
def test_char_fn_single_gaussian_closed_form(mix, seed):
    """phi(w) = exp(i w.mu - w^T Sigma w / 2) for one component (point masses: Sigma = 0)."""
    rng = np.random.default_rng(seed)
    om = rng.standard_normal((5, mix.d)) / np.sqrt(mix.eigvals.max() + 1e-2)
    mu, cov = mix.means[0], mix.covs[0]
    ref = np.exp(1j * om @ mu - 0.5 * np.einsum("mi,ij,mj->m", om, cov, om))
    np.testing.assert_allclose(mix.char_fn(om), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mix.char_fn(np.zeros((1, mix.d))), [1.0 + 0j], rtol=0, atol=1e-15)


def test_char_fn_mixture_numeric_integral():
    """1-D mixture: E e^{i w x} = int e^{i w x} p(x) dx by adaptive quadrature (abs. err 1e-12)."""
    mix = GaussianMixture.isotropic([0.2, 0.5, 0.3], [[-2.0], [0.5], [3.0]], [0.3, 0.05, 1.5])
    pdf = lambda u: float(np.exp(mix.log_prob(np.array([[u]])))[0])
    for w in (0.0, 0.7, 2.5, -4.0):
        re = quad(lambda u: np.cos(w * u) * pdf(u), -15, 15, points=[-2.0, 0.5, 3.0],
                  epsabs=1e-13, limit=400)[0]
        im = quad(lambda u: np.sin(w * u) * pdf(u), -15, 15, points=[-2.0, 0.5, 3.0],
                  epsabs=1e-13, limit=400)[0]
        np.testing.assert_allclose(mix.char_fn(np.array([[w]]))[0], re + 1j * im, atol=1e-10)


def test_char_fn_monte_carlo():
    """Against the empirical characteristic function of 200,000 samples.

    cos(w.x) and sin(w.x) lie in [-1, 1]; Hoeffding gives P(|mean - E| >= eps) <= 2 exp(-n
    eps^2 / 2) with no normal approximation. Over 6 frequencies x 2 parts = 12 assertions,
    eps = sqrt(2 ln(2 * 12 / 1e-6) / n) keeps the family-wise false-failure rate below 1e-6."""
    mix = sbst.build_gaussian_mixture(31, 3, 2, condition=50.0, n_point_masses=1)
    n, n_assert = 200_000, 12
    eps = np.sqrt(2 * np.log(2 * n_assert / ALPHA) / n)
    rng = np.random.default_rng(32)
    x = mix.sample(n, rng)
    om = rng.standard_normal((6, 2))
    emp = np.exp(1j * x @ om.T).mean(axis=0)
    phi = mix.char_fn(om)
    assert np.all(np.abs(emp.real - phi.real) <= eps)
    assert np.all(np.abs(emp.imag - phi.imag) <= eps)


def test_char_fn_is_linear_in_components():
    mix = sbst.build_gaussian_mixture(41, 4, 3, condition=30.0)
    om = np.random.default_rng(42).standard_normal((4, 3))
    parts = [GaussianMixture([1.0], mix.means[k:k + 1], mix.covs[k:k + 1]).char_fn(om)
             for k in range(mix.K)]
    np.testing.assert_allclose(mix.char_fn(om), np.stack(parts, 1) @ mix.weights, rtol=1e-13)


# --------------------------------------------------------------------------- 1-D CDF
def test_cdf_matches_integral_of_density():
    mix = GaussianMixture.isotropic([0.2, 0.5, 0.3], [[-2.0], [0.5], [3.0]], [0.3, 0.05, 1.5])
    pdf = lambda u: float(np.exp(mix.log_prob(np.array([[u]])))[0])
    xs = np.array([-6.0, -2.0, -1.0, 0.4, 0.5, 0.6, 2.0, 3.0, 8.0])
    ref = []
    for xv in xs:
        pts = [p for p in (-2.0, 0.5, 3.0) if -30 < p < xv]
        ref.append(quad(pdf, -30.0, xv, points=pts or None, epsabs=1e-14, epsrel=1e-13,
                        limit=400)[0])
    np.testing.assert_allclose(mix.cdf(xs), ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(mix.cdf(xs[:, None]), ref, rtol=0, atol=1e-11)  # (N, 1) form
    assert mix.cdf(np.array([-1e6]))[0] == 0.0 and mix.cdf(np.array([1e6]))[0] == 1.0


def test_cdf_with_point_masses_is_a_right_continuous_step():
    """Atoms at 0 (w = 0.3) and 2 (w = 0.2) plus N(1, 0.5^2) (w = 0.5)."""
    mix = GaussianMixture([0.3, 0.2, 0.5], [[0.0], [2.0], [1.0]], [[[0.0]], [[0.0]], [[0.25]]])
    xs = np.array([-1.0, -1e-12, 0.0, 1e-12, 1.0, 2.0 - 1e-12, 2.0, 4.0])
    ref = (0.3 * (xs >= 0) + 0.2 * (xs >= 2) + 0.5 * stats.norm(1.0, 0.5).cdf(xs))
    np.testing.assert_allclose(mix.cdf(xs), ref, rtol=0, atol=1e-15)
    jump = mix.cdf(np.array([0.0]))[0] - mix.cdf(np.array([-1e-12]))[0]
    assert jump == pytest.approx(0.3, abs=1e-11)


# --------------------------------------------------------------------------- constructors
def test_constructors_agree_with_full_covariances():
    w, m = [0.3, 0.7], np.array([[0.0, 1.0, 2.0], [-1.0, 0.5, 0.0]])
    iso = GaussianMixture.isotropic(w, m, [0.5, 2.0])
    np.testing.assert_array_equal(iso.covs, [0.5 * np.eye(3), 2.0 * np.eye(3)])
    var = np.array([[0.1, 1.0, 3.0], [2.0, 0.2, 0.5]])
    dia = GaussianMixture.diagonal(w, m, var)
    np.testing.assert_array_equal(dia.covs, [np.diag(v) for v in var])
    full = GaussianMixture(w, m, [np.diag(v) for v in var])
    x = np.random.default_rng(5).standard_normal((4, 3))
    np.testing.assert_allclose(dia.log_prob(x), full.log_prob(x), rtol=1e-14)
    np.testing.assert_allclose(dia.log_prob(x), scipy_log_prob(dia, x), rtol=1e-12)
    pm = GaussianMixture.point_masses(m)
    np.testing.assert_array_equal(pm.weights, [0.5, 0.5])
    np.testing.assert_array_equal(pm.covs, np.zeros((2, 3, 3)))
    np.testing.assert_array_equal(pm.eigvals, 0.0)
    assert pm.is_singular and not full.is_singular
    np.testing.assert_allclose(GaussianMixture.point_masses(m, weights=[1, 3]).weights, [0.25, 0.75])


@given(sbst.gaussian_mixtures(allow_point_masses=True))
def test_eigendecomposition_reconstructs_covariances(mix):
    U, lam = mix.eigvecs, mix.eigvals
    assert np.all(lam >= 0)
    np.testing.assert_allclose(np.einsum("kij,kil->kjl", U, U), np.broadcast_to(np.eye(mix.d), U.shape),
                               atol=1e-13)
    recon = np.einsum("kij,kj,klj->kil", U, lam, U)
    scale = np.abs(mix.covs).max(axis=(1, 2), keepdims=True) + 1e-300
    assert np.all(np.abs(recon - mix.covs) <= 1e-13 * scale)
    np.testing.assert_allclose(mix.weights.sum(), 1.0, rtol=1e-14)


def test_zero_weight_components_are_ignored():
    """A zero-weight component contributes nothing; a zero-weight point mass still makes the
    mixture singular (every component is evaluated), so t = 0 raises instead of giving nan."""
    m = [[0.0, 0.0], [3.0, 1.0]]
    mix = GaussianMixture([0.0, 2.0], m, [0.3 * np.eye(2), np.eye(2)])
    single = GaussianMixture([1.0], m[1:], [np.eye(2)])
    x = np.array([[0.0, 0.0], [3.0, 1.5]])
    np.testing.assert_allclose(mix.log_prob(x), single.log_prob(x), rtol=1e-15)
    np.testing.assert_allclose(mix.score(x), single.score(x), rtol=1e-15)
    with_atom = GaussianMixture([0.0, 2.0], m, [np.zeros((2, 2)), np.eye(2)])
    assert with_atom.is_singular
    with pytest.raises(ValueError, match="^t:"):
        with_atom.log_prob(x)


def test_weights_are_normalised_and_documented():
    """Weights that do not sum to 1 are normalised (not rejected); the docstrings say so."""
    m, c = [[0.0], [2.0]], [[[1.0]], [[0.5]]]
    mix = GaussianMixture([2.0, 6.0], m, c)
    np.testing.assert_allclose(mix.weights, [0.25, 0.75], rtol=1e-15)
    ref = GaussianMixture([0.25, 0.75], m, c)
    x = np.array([[-1.0], [0.3], [2.0]])
    np.testing.assert_allclose(mix.log_prob(x), ref.log_prob(x), rtol=1e-15)
    assert "normalised" in GaussianMixture.__doc__
    import scorebench.analytic.mixture as module

    assert "normalised" in module.__doc__


# --------------------------------------------------------------------------- bad input
W2, M2, C2 = [0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [np.eye(2), np.eye(2)]
NAN, INF = float("nan"), float("inf")


def _cov(entries):
    return [np.array(entries, dtype=float), np.eye(2)]


@pytest.mark.parametrize(
    "make, param",
    [
        (lambda: GaussianMixture([-0.1, 1.1], M2, C2), "weights"),
        (lambda: GaussianMixture([0.0, 0.0], M2, C2), "weights"),
        (lambda: GaussianMixture([], np.zeros((0, 2)), np.zeros((0, 2, 2))), "weights"),
        (lambda: GaussianMixture([[0.5, 0.5]], M2, C2), "weights"),
        (lambda: GaussianMixture([NAN, 0.5], M2, C2), "weights"),
        (lambda: GaussianMixture([INF, 0.5], M2, C2), "weights"),
        (lambda: GaussianMixture(W2, [[0.0, 0.0]], C2), "means"),
        (lambda: GaussianMixture(W2, [0.0, 1.0], C2), "means"),
        (lambda: GaussianMixture(W2, [[0.0, NAN], [1.0, 1.0]], C2), "means"),
        (lambda: GaussianMixture(W2, [[0.0, INF], [1.0, 1.0]], C2), "means"),
        (lambda: GaussianMixture(W2, M2, [np.eye(2)]), "covs"),
        (lambda: GaussianMixture(W2, M2, [np.eye(3), np.eye(3)]), "covs"),
        (lambda: GaussianMixture(W2, M2, np.eye(2)), "covs"),
        (lambda: GaussianMixture(W2, M2, _cov([[1.0, 0.5], [0.4, 1.0]])), "covs"),  # asymmetric
        (lambda: GaussianMixture(W2, M2, _cov([[1.0, 2.0], [2.0, 1.0]])), "covs"),  # eig -1
        (lambda: GaussianMixture(W2, M2, _cov([[-1e-3, 0.0], [0.0, 1.0]])), "covs"),
        (lambda: GaussianMixture(W2, M2, _cov([[NAN, 0.0], [0.0, 1.0]])), "covs"),
        (lambda: GaussianMixture(W2, M2, _cov([[INF, 0.0], [0.0, 1.0]])), "covs"),
        (lambda: GaussianMixture.isotropic(W2, M2, [1.0, -1.0]), "variances"),
        (lambda: GaussianMixture.isotropic(W2, M2, [1.0]), "variances"),
        (lambda: GaussianMixture.isotropic(W2, M2, [1.0, NAN]), "variances"),
        (lambda: GaussianMixture.isotropic([-1.0, 2.0], M2, [1.0, 1.0]), "weights"),
        (lambda: GaussianMixture.diagonal(W2, M2, [1.0, 1.0]), "variances"),
        (lambda: GaussianMixture.diagonal(W2, M2, [[1.0, 1.0], [1.0, -2.0]]), "variances"),
        (lambda: GaussianMixture.diagonal(W2, M2, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), "variances"),
        (lambda: GaussianMixture.point_masses([[0.0, NAN]]), "points"),
        (lambda: GaussianMixture.point_masses([0.0, 1.0]), "points"),
        (lambda: GaussianMixture.point_masses(M2, weights=[1.0, -1.0]), "weights"),
        (lambda: GaussianMixture.point_masses(M2, weights=[1.0, 1.0, 1.0]), "means"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(make, param):
    with pytest.raises(ValueError, match=f"^{param}:"):
        make()


def test_round_off_asymmetry_and_negative_eigenvalues_are_accepted():
    """Within the documented 1e-10 bands: symmetrised, and -1e-14 eigenvalues become exact 0."""
    c = np.array([[1.0, 0.5 + 1e-13], [0.5, 1.0]])
    mix = GaussianMixture([1.0], [[0.0, 0.0]], [c])
    np.testing.assert_array_equal(mix.covs[0], mix.covs[0].T)
    v = np.array([1.0, -1.0]) / np.sqrt(2)
    rank1 = np.outer(v, v) - 1e-14 * np.eye(2)
    pm = GaussianMixture([1.0], [[0.0, 0.0]], [rank1])
    assert np.count_nonzero(pm.eigvals == 0.0) == 1 and pm.is_singular


@pytest.mark.parametrize(
    "call, param, exc",
    [
        (lambda m: m.log_prob(np.zeros((3, 3))), "x", ValueError),
        (lambda m: m.log_prob(np.zeros(2)), "x", ValueError),
        (lambda m: m.log_prob(np.array([[0.0, NAN]])), "x", ValueError),
        (lambda m: m.score(np.array([[INF, 0.0]])), "x", ValueError),
        (lambda m: m.score(np.zeros((1, 1))), "x", ValueError),
        (lambda m: m.char_fn(np.zeros((2, 3))), "omega", ValueError),
        (lambda m: m.char_fn(np.array([[NAN, 0.0]])), "omega", ValueError),
        (lambda m: m.cdf(np.zeros(3)), "x", ValueError),  # d = 2: no CDF
        (lambda m: m.sample(0, np.random.default_rng(0)), "n", ValueError),
        (lambda m: m.sample(2.5, np.random.default_rng(0)), "n", ValueError),
        (lambda m: m.sample(3, 0), "rng", TypeError),
        (lambda m: m.log_prob(np.array([["a", "b"]])), "x", TypeError),
    ],
)
def test_bad_call_arguments(call, param, exc):
    with pytest.raises(exc, match=f"^{param}:"):
        call(GaussianMixture(W2, M2, C2))


def test_cdf_bad_shapes_and_singular_density():
    one_d = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="^x:"):
        one_d.cdf(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="^x:"):
        one_d.cdf(np.array([NAN]))
    pm = GaussianMixture.point_masses([[0.0], [1.0]])
    for method in (pm.log_prob, pm.score):
        with pytest.raises(ValueError, match="^t:"):
            method(np.zeros((1, 1)))
