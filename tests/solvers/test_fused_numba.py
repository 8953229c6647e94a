"""The fused numba fast paths against exact oracles: likelihood, Euler–Maruyama, PC.

Statistical assertions in this file (alpha = 1e-6 in all, Bonferroni): the normal generator's KS
test, the EM KS test, and the EM mean and variance tests -- four, so each uses alpha = 2.5e-7
(KS: DKW-Massart threshold sqrt(ln(2 / alpha) / (2 n)); moments: |z| > 5.3 standard errors has
two-sided probability 1.2e-7 < 2.5e-7). Everything else is deterministic.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from _em_gaussian import em_gaussian_moments  # tests/solvers helper module
from numba import njit
from scipy import stats
from scipy.integrate import solve_ivp

from scorebench.analytic.linear_sde import LinearSDE
from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.solvers._numba_math import (
    fast_exp,
    fast_expm1,
    fast_log,
    seed_stream,
    standard_normal,
    ziggurat_tables,
)
from scorebench.solvers._sde_coeffs_numba import sde_coeffs_array, sde_to_params
from scorebench.solvers.base import SolverError
from scorebench.solvers.fused_likelihood_numba import dopri5_loglik_numba, supports
from scorebench.solvers.fused_sampling_numba import em_sample_numba, pc_sample_numba
from scorebench.solvers.grids import time_grid

EPS = 1e-5
ALPHA = 1e-6 / 4
SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}


def _mixture(d, seed, K=3):
    """K components, means of scale 2, full covariances with eigenvalues in about [0.05, 2]."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = 0.5 * A @ A.transpose(0, 2, 1) / d + 0.05 * np.eye(d)
    return GaussianMixture(rng.uniform(0.5, 1.5, K), 2.0 * rng.standard_normal((K, d)), covs)


def _ring(K=8, radius=2.0, variance=0.05):
    ang = 2 * np.pi * np.arange(K) / K
    return GaussianMixture.isotropic(np.ones(K), radius * np.c_[np.cos(ang), np.sin(ang)],
                                     np.full(K, variance))


# ------------------------------------------------------------------------------- building blocks
@njit(cache=True)
def _elementary(x):
    out = np.empty((3, x.size))
    for i in range(x.size):
        out[0, i] = fast_exp(x[i])
        out[1, i] = fast_expm1(x[i])
        out[2, i] = fast_log(abs(x[i]))
    return out


@njit(cache=True)
def _normals(seed, stream, n):
    state = seed_stream(seed, stream)
    out = np.empty(n)
    for i in range(n):
        out[i], state = standard_normal(state)
    return out


def test_elementary_functions_match_numpy_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 20000), rng.uniform(-1, 1, 20000),
                        rng.choice([-1, 1], 5000) * 10.0 ** rng.uniform(-300, 0, 5000)])
    e, em1, lg = _elementary(x)
    assert np.max(np.abs(e / np.exp(x) - 1)) < 1e-15
    assert np.max(np.abs(em1 / np.expm1(x) - 1)) < 2e-15
    ref = np.log(np.abs(x))
    assert np.max(np.abs(lg - ref) / np.maximum(np.abs(ref), 1.0)) < 1e-15


def test_ziggurat_tables_match_numpy_constants():
    ki, wi, _ = ziggurat_tables()
    # numpy/random/src/distributions/ziggurat_constants.h
    for i, ref in [(0, 0x000EF33D8025EF6A), (2, 0x000C08BE98FBC6A8), (3, 0x000DA354FABD8142)]:
        assert abs(int(ki[i]) - ref) / ref < 1e-12
    assert ki[1] == 0
    assert abs(wi[255] / 8.11384933765648418565e-16 - 1) < 1e-13
    assert abs(wi[254] / 7.65893637080557275482e-16 - 1) < 1e-12


def test_normal_stream_is_standard_normal_and_reproducible():
    z = _normals(np.uint64(7), np.uint64(3), 400_000)
    d_n = stats.kstest(z, "norm").statistic
    assert d_n < math.sqrt(math.log(2 / ALPHA) / (2 * z.size))  # DKW-Massart
    assert np.array_equal(z[:1000], _normals(np.uint64(7), np.uint64(3), 1000))
    assert not np.array_equal(z[:1000], _normals(np.uint64(7), np.uint64(4), 1000))


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(), VPSDE(0.05, 30.0, T=2.0),
                                 SubVPSDE(1.0, 5.0, T=0.5), VESDE(0.002, 80.0, T=1.5)])
def test_sde_coefficients_match_the_closed_forms(sde):
    code, params = sde_to_params(sde)
    t = sde.T * np.concatenate([[0.0, 1e-12, 1e-7], np.linspace(0.0, 1.0, 501)])
    ref = np.array([sde.drift_coeff(t), sde.diffusion_sq(t), sde.mean_coeff(t),
                    sde.marginal_var(t)])
    for fast in (False, True):
        out = sde_coeffs_array(code, params, t, fast)
        scale = np.where(ref == 0.0, 1.0, np.abs(ref))
        assert np.max(np.abs(out - ref) / scale) < 1e-14


def test_sde_without_a_closed_form_has_no_code():
    class MyVP(VPSDE):
        pass

    assert sde_to_params(LinearSDE(lambda t: -0.5 + 0 * t, lambda t: 1.0 + 0 * t)) is None
    assert sde_to_params(MyVP()) is None
    assert not supports(MixtureOracle(_ring(), MyVP()))


# ------------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize("d", [1, 2, 16])
@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_loglik_matches_exact_log_p_eps(name, d):
    oracle = MixtureOracle(_mixture(d, seed=d), SDES[name]())
    x = oracle.sample(96, EPS, np.random.default_rng(1))
    out = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="exact")
    err = np.abs(out.logp - oracle.log_prob(x, EPS))
    assert err.max() < 1e-3, f"max |logp - exact| = {err.max():.2e}"
    assert np.all(out.status == 0)
    assert np.all(out.nfe == 2 + 6 * (out.n_accepted + out.n_rejected))
    assert np.allclose(out.logp, out.prior_logp + out.delta_logp)


def test_loglik_is_scipy_rk45_applied_to_each_sample():
    """Same controller as scipy: per sample, identical NFE and logp to round-off."""
    for sde in (VPSDE(), VESDE()):
        oracle = MixtureOracle(_mixture(3, seed=5), sde)
        x = oracle.sample(12, EPS, np.random.default_rng(2))
        out = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6)
        for n in range(x.shape[0]):
            def rhs(t, y):
                p = y[None, :3]
                return np.append(oracle.velocity(p, t)[0], oracle.velocity_divergence(p, t))

            sol = solve_ivp(rhs, (EPS, sde.T), np.append(x[n], 0.0), method="RK45", rtol=1e-6,
                            atol=1e-6)
            assert sol.nfev == out.nfe[n]
            assert abs(sol.y[3, -1] - out.delta_logp[n]) < 1e-11
            assert np.max(np.abs(sol.y[:3, -1] - out.x_T[n])) < 1e-11


def test_loglik_default_prior_and_error_falls_with_rtol():
    oracle = MixtureOracle(_ring(), VPSDE())
    x = oracle.sample(256, EPS, np.random.default_rng(3))
    exact = oracle.log_prob(x, EPS)
    tols = np.array([1e-4, 1e-5, 1e-6, 1e-7])
    mean_err, max_err = [], []
    for tol in tols:
        out = dopri5_loglik_numba(oracle, x, EPS, rtol=tol, atol=tol, prior="exact")
        mean_err.append(np.mean(np.abs(out.logp - exact)))
        max_err.append(np.max(np.abs(out.logp - exact)))
    print("rtol", tols, "max error", max_err, "mean error", mean_err)
    assert np.all(np.diff(mean_err) < 0) and np.all(np.diff(max_err) < 0)
    slope = np.polyfit(np.log(tols), np.log(mean_err), 1)[0]
    assert 0.8 < slope < 1.5, slope  # tolerance proportionality (measured 1.0-1.3 here)
    # default prior N(0, I): differs from the exact one only by log N(x_T) - log p_T(x_T)
    out_d = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6)
    out_e = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="exact")
    assert np.array_equal(out_d.delta_logp, out_e.delta_logp)
    assert np.allclose(out_d.prior_logp, VPSDE().prior_log_prob(out_d.x_T), rtol=0, atol=1e-12)
    # no prior (log_likelihood applies its own): the same path, prior 0
    out_n = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="none")
    assert np.array_equal(out_n.delta_logp, out_e.delta_logp)
    assert np.array_equal(out_n.logp, out_n.delta_logp) and np.all(out_n.prior_logp == 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loglik_exact_prior_is_the_oracles_log_p_T(dtype):
    # prior="exact" is computed inside the kernel's chunks: it is the oracle's exact log p_T at
    # the path ends (same formula, sums in another order: a few ulp of the summed terms), for
    # every thread count (chunks of different sizes)
    mix = _mixture(3, 21, K=4)
    oracle = MixtureOracle(mix, VPSDE())
    x = oracle.sample(333, EPS, np.random.default_rng(22)).astype(dtype)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            out = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-4, atol=1e-4, prior="exact")
            ref = oracle.exact_log_prob_T(out.x_T)
            assert np.allclose(out.prior_logp, ref, rtol=1e-13, atol=1e-13)
            assert np.array_equal(out.logp, out.prior_logp + out.delta_logp)
    finally:
        numba.set_num_threads(before)


def test_loglik_follows_a_changed_sde_and_mixture():
    # the wrapper keeps per-oracle constants (layouts, a(T), the prior's constants): they must
    # follow an SDE whose parameters change and a mixture whose arrays are replaced
    mix = _mixture(2, 23, K=3)
    sde = VPSDE()
    oracle = MixtureOracle(mix, sde)
    x = oracle.sample(100, EPS, np.random.default_rng(24))
    first = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="exact")
    sde.beta_max = 10.0
    changed = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="exact")
    fresh = dopri5_loglik_numba(MixtureOracle(mix, VPSDE(beta_max=10.0)), x, EPS, rtol=1e-6,
                                atol=1e-6, prior="exact")
    assert not np.array_equal(first.logp, changed.logp)
    assert np.array_equal(changed.logp, fresh.logp)
    mix.means = mix.means + 0.5
    moved = dopri5_loglik_numba(oracle, x, EPS, rtol=1e-6, atol=1e-6, prior="exact")
    fresh = dopri5_loglik_numba(MixtureOracle(GaussianMixture(mix.weights, mix.means, mix.covs),
                                              VPSDE(beta_max=10.0)), x, EPS, rtol=1e-6,
                                atol=1e-6, prior="exact")
    # (the rebuilt mixture renormalises its weights: equal to an ulp, not bitwise)
    assert np.allclose(moved.logp, fresh.logp, rtol=0, atol=1e-9)
    assert np.abs(moved.logp - changed.logp).max() > 1e-3


def test_loglik_does_not_depend_on_threads_or_batch():
    oracle = MixtureOracle(_ring(), SubVPSDE())
    x = oracle.sample(300, EPS, np.random.default_rng(4))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = dopri5_loglik_numba(oracle, x, EPS)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = dopri5_loglik_numba(oracle, x, EPS)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.logp, many.logp) and np.array_equal(one.nfe, many.nfe)
    perm = np.random.default_rng(5).permutation(300)[:77]
    sub = dopri5_loglik_numba(oracle, x[perm], EPS)
    assert np.array_equal(sub.logp, one.logp[perm])


def test_loglik_failures_are_flagged_never_endless():
    oracle = MixtureOracle(_ring(), VPSDE())
    x = oracle.sample(40, EPS, np.random.default_rng(6))
    with pytest.raises(SolverError, match="max_steps"):
        dopri5_loglik_numba(oracle, x, EPS, max_steps=3)
    out = dopri5_loglik_numba(oracle, x, EPS, max_steps=3, check=False)
    assert np.all(out.status == 2) and np.all(np.isnan(out.logp))
    # some samples failing, the rest finished: the prior (any kind) only on the finished ones
    hard = np.concatenate([x[:5], np.full((1, 2), 1e6)])
    for prior in ("default", "exact", "none"):
        out = dopri5_loglik_numba(oracle, hard, EPS, max_steps=40, check=False, prior=prior)
        assert np.all(out.status[:5] == 0) and out.status[5] != 0
        assert np.all(np.isfinite(out.logp[:5])) and np.isnan(out.logp[5])
    # a lane whose sample failed takes the next one as if nothing had happened: with 64 failing
    # samples first, every lane of the chunk fails once, then finishes the easy ones exactly as
    # a run without the failures does
    easy = oracle.sample(100, EPS, np.random.default_rng(7))
    mixed = np.concatenate([np.full((64, 2), 1e6), easy])
    out = dopri5_loglik_numba(oracle, mixed, EPS, max_steps=40, check=False, prior="exact")
    ref = dopri5_loglik_numba(oracle, easy, EPS, max_steps=40, prior="exact")
    assert np.all(out.status[:64] != 0) and np.all(out.status[64:] == 0)
    assert np.array_equal(out.logp[64:], ref.logp) and np.array_equal(out.nfe[64:], ref.nfe)
    # tolerances no step can meet: the step shrinks to 10 ulp of t and the sample stops
    with pytest.raises(SolverError, match="10 ulp"):
        dopri5_loglik_numba(oracle, x, EPS, rtol=1e-300, atol=1e-300)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=0.0), "eps"), (dict(eps=1.0), "eps"), (dict(rtol=0.0), "rtol"),
    (dict(atol=-1.0), "atol"), (dict(prior="gauss"), "prior"), (dict(max_steps=0), "max_steps"),
    (dict(first_step=float("nan")), "first_step"),
])
def test_loglik_bad_input(kwargs, match):
    oracle = MixtureOracle(_ring(), VPSDE())
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match=match):
        dopri5_loglik_numba(oracle, x, **{"eps": EPS, **kwargs})


def test_loglik_rejects_unsupported_models_and_points():
    with pytest.raises(ValueError, match="oracle"):
        dopri5_loglik_numba(lambda x, t: -x, np.zeros((3, 2)))
    lin = MixtureOracle(_ring(), LinearSDE(lambda t: -0.5 + 0 * t, lambda t: 1.0 + 0 * t))
    with pytest.raises(ValueError, match="oracle"):
        dopri5_loglik_numba(lin, np.zeros((3, 2)))
    oracle = MixtureOracle(_ring(), VPSDE())
    with pytest.raises(ValueError, match="x"):
        dopri5_loglik_numba(oracle, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x"):
        dopri5_loglik_numba(oracle, np.array([[0.0, np.nan]]))


# ------------------------------------------------------------------------------- sampling
def _em_numpy(oracle, x, grid, dW):
    for i in range(grid.size - 1):
        t, h = grid[i], grid[i + 1] - grid[i]
        x = x + h * oracle.reverse_drift(x, t) + math.sqrt(oracle.sde.diffusion_sq(t)) * dW[i]
    return x


def _pc_numpy(oracle, x, grid, dW, z, snr, norm):
    """Song et al.'s PC written plainly: EM predictor, Langevin correctors at t_{i+1}."""
    sde = oracle.sde
    for i in range(grid.size - 1):
        t, t1 = grid[i], grid[i + 1]
        x = x + (t1 - t) * oracle.reverse_drift(x, t) + math.sqrt(sde.diffusion_sq(t)) * dW[i]
        alpha = (sde.mean_coeff(t) / sde.mean_coeff(t1)) ** 2
        for j in range(z.shape[1]):
            s = oracle.score(x, t1)
            gn, zn = np.linalg.norm(s, axis=1), np.linalg.norm(z[i, j], axis=1)
            if norm == "batch":
                gn, zn = gn.mean(), zn.mean()
            step = np.reshape(2 * alpha * (snr * zn / gn) ** 2, (-1, 1))
            x = x + step * s + np.sqrt(2 * step) * z[i, j]
    return x


@pytest.mark.parametrize("mix", [_ring(), _mixture(3, seed=8)], ids=["ring-diag", "full-3d"])
def test_em_with_given_increments_matches_numpy_loop(mix):
    oracle = MixtureOracle(mix, VPSDE())
    rng = np.random.default_rng(9)
    grid = time_grid("quadratic", 40, 1.0, 1e-3)
    x_T = oracle.sample(150, 1.0, rng)
    dW = rng.standard_normal((40, 150, mix.d)) * np.sqrt(-np.diff(grid))[:, None, None]
    out = em_sample_numba(oracle, x_T, grid, dW=dW)
    assert np.max(np.abs(out - _em_numpy(oracle, x_T, grid, dW))) < 1e-10


@pytest.mark.parametrize("norm", ["batch", "sample"])
@pytest.mark.parametrize("mix", [_ring(), _mixture(2, seed=10)], ids=["ring-diag", "full-2d"])
def test_pc_with_given_noise_matches_numpy_loop(mix, norm):
    oracle = MixtureOracle(mix, SubVPSDE())
    rng = np.random.default_rng(11)
    grid = time_grid("uniform", 30, 1.0, 1e-3)
    x_T = oracle.sample(200, 1.0, rng)
    dW = rng.standard_normal((30, 200, 2)) * np.sqrt(-np.diff(grid))[:, None, None]
    z = rng.standard_normal((30, 2, 200, 2))
    out = pc_sample_numba(oracle, x_T, grid, snr=0.16, n_corrector=2, norm=norm, dW=dW, z=z)
    ref = _pc_numpy(oracle, x_T, grid, dW, z, 0.16, norm)
    # relative to 1 + |x|: with per-sample norms a point whose score is nearly zero takes a
    # huge Langevin step (eps ~ 1/|score|^2), which amplifies round-off in both loops alike
    assert np.max(np.abs(out - ref) / (1.0 + np.abs(ref))) < 1e-10


def test_em_passes_ks_against_exact_p_eps():
    mix = GaussianMixture(np.array([0.3, 0.7]), np.array([[-2.0], [1.5]]),
                          np.array([[[0.2]], [[0.5]]]))
    oracle = MixtureOracle(mix, VPSDE())
    eps, n = 1e-3, 20_000
    x_T = oracle.sample(n, 1.0, np.random.default_rng(12))
    out = em_sample_numba(oracle, x_T, time_grid("uniform", 1000, 1.0, eps), seed=13)
    d_n = stats.kstest(out[:, 0], lambda v: oracle.marginal(eps).cdf(v)).statistic
    assert d_n < math.sqrt(math.log(2 / ALPHA) / (2 * n)), d_n  # DKW-Massart


def test_em_gaussian_moments_within_standard_errors():
    mu, var, eps, n, steps = 1.5, 0.3, 1e-3, 40_000, 1000
    sde = VPSDE()
    oracle = MixtureOracle(GaussianMixture(np.ones(1), np.array([[mu]]),
                                           np.array([[[var]]])), sde)
    grid = time_grid("uniform", steps, 1.0, eps)
    a, s2 = sde.mean_coeff(eps), sde.marginal_var(eps)
    m_ex, v_ex = a * mu, a * a * var + s2
    # EM on a Gaussian target is a linear recursion: its exact mean and variance at eps
    m, v = em_gaussian_moments(sde, mu, var, grid)
    se_m, se_v = math.sqrt(v_ex / n), v_ex * math.sqrt(2 / (n - 1))
    print("EM bias in standard errors: mean", (m - m_ex) / se_m, "variance", (v - v_ex) / se_v)
    # the discretisation bias at 1000 steps is below the Monte Carlo resolution of this test
    assert abs(m - m_ex) < 0.5 * se_m and abs(v - v_ex) < 0.5 * se_v
    x = em_sample_numba(oracle, oracle.sample(n, 1.0, np.random.default_rng(14)), grid,
                        seed=15)[:, 0]
    # Monte Carlo against the scheme's exact moments (no bias), then against the exact law
    assert abs(x.mean() - m) < 5.3 * se_m
    assert abs(x.var(ddof=1) - v) < 5.3 * se_v
    assert abs(x.mean() - m_ex) < 5.8 * se_m and abs(x.var(ddof=1) - v_ex) < 5.8 * se_v


def test_in_kernel_noise_is_reproducible_across_runs_threads_and_batches():
    oracle = MixtureOracle(_ring(), VPSDE())
    grid = time_grid("uniform", 50, 1.0, 1e-3)
    x_T = oracle.sample(500, 1.0, np.random.default_rng(16))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        runs1 = [em_sample_numba(oracle, x_T, grid, seed=17),
                 pc_sample_numba(oracle, x_T, grid, seed=17, norm="sample"),
                 pc_sample_numba(oracle, x_T, grid, seed=17, norm="batch")]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        runs2 = [em_sample_numba(oracle, x_T, grid, seed=17),
                 pc_sample_numba(oracle, x_T, grid, seed=17, norm="sample"),
                 pc_sample_numba(oracle, x_T, grid, seed=17, norm="batch")]
    finally:
        numba.set_num_threads(before)
    for r1, r2 in zip(runs1, runs2):
        assert np.array_equal(r1, r2)
    # a sample's noise depends on the seed and its index only (not on the others in the batch)
    assert np.array_equal(em_sample_numba(oracle, x_T[:130], grid, seed=17), runs1[0][:130])
    assert not np.array_equal(em_sample_numba(oracle, x_T, grid, seed=18), runs1[0])


def test_pc_zero_score_raises():
    oracle = MixtureOracle(GaussianMixture.point_masses(np.zeros((1, 2))), VPSDE())
    grid = time_grid("uniform", 3, 1.0, 1e-3)
    zeros = np.zeros((4, 2))
    for norm in ("batch", "sample"):
        with pytest.raises(SolverError, match="zero"):
            pc_sample_numba(oracle, zeros, grid, norm=norm, dW=np.zeros((3, 4, 2)),
                            z=np.zeros((3, 1, 4, 2)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(seed=None), "seed"), (dict(seed=-1), "seed"),
    (dict(seed=1, grid=[1.0, 0.5, 0.7]), "grid"),
    (dict(dW=np.zeros((5, 4, 2))), "dW"), (dict(seed=1, x_T=np.zeros((4, 3))), "x_T"),
    (dict(seed=1, x_T=np.zeros((4, 2), dtype=np.float16)), "x_T"),
])
def test_sampling_bad_input(kwargs, match):
    oracle = MixtureOracle(_ring(), VPSDE())
    args = dict(x_T=np.zeros((4, 2)), grid=time_grid("uniform", 3, 1.0, 1e-3))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        em_sample_numba(oracle, **args)
    with pytest.raises((ValueError, TypeError), match=match):
        pc_sample_numba(oracle, **args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(norm="mean"), "norm"), (dict(snr=0.0), "snr"), (dict(n_corrector=-1), "n_corrector"),
    (dict(dW=np.zeros((3, 4, 2))), "z"),
])
def test_pc_bad_input(kwargs, match):
    oracle = MixtureOracle(_ring(), VPSDE())
    with pytest.raises(ValueError, match=match):
        pc_sample_numba(oracle, np.zeros((4, 2)), time_grid("uniform", 3, 1.0, 1e-3), seed=1,
                        **kwargs)


def test_pc_batch_passes_take_no_literal_modes():
    """The predictor, corrector and final-update passes must share one compiled ``_pass``:
    literal ints as its mode/step/corrector arguments make numba compile it (the score inlined)
    once per literal, which doubled the first call's compile time (48.9 s -> 24.6 s measured).
    Checked on the source: numba's cache hides the callees' signatures."""
    import ast
    import inspect

    from scorebench.solvers import _pc_batch_numba

    tree = ast.parse(inspect.getsource(_pc_batch_numba.pc_batch_driver.py_func))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "_pass"]
    assert len(calls) == 3
    for call in calls:
        assert not any(isinstance(a, ast.Constant) for a in call.args[1:5]), ast.unparse(call)
