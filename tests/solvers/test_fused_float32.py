"""The float32 specialisation of the fused samplers and likelihood, tested against float64.

Thresholds are deterministic round-off budgets (no randomness is compared except in the moment
test, whose bound is derived there): float32 rounds each operation to 2^-24 ~ 6e-8 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _em_gaussian import em_gaussian_moments  # tests/solvers helper module
from numba import njit

from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.analytic._numba_exp import exp_expm1_f32
from scorebench.solvers._numba_precision import fast_exp_f32
from scorebench.solvers._sde_coeffs_numba import (lanes_coeffs_as, lanes_coeffs_f32,
                                                  sde_coeffs_array, sde_to_params)
from scorebench.solvers.fused_likelihood_numba import dopri5_loglik_numba
from scorebench.solvers.fused_sampling_numba import em_sample_numba, pc_sample_numba
from scorebench.solvers.grids import time_grid


def _ring(K=8, radius=2.0, variance=0.05):
    ang = 2 * np.pi * np.arange(K) / K
    return GaussianMixture.isotropic(np.ones(K), radius * np.c_[np.cos(ang), np.sin(ang)],
                                     np.full(K, variance))


def _full(d, seed, K=3):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = 0.5 * A @ A.transpose(0, 2, 1) / d + 0.05 * np.eye(d)
    return GaussianMixture(rng.uniform(0.5, 1.5, K), 2.0 * rng.standard_normal((K, d)), covs)


@njit(cache=True)
def _exp32_all(x, out):
    for i in range(x.size):
        out[i] = fast_exp_f32(x[i])


def test_float32_exp_is_within_two_ulp():
    x = np.concatenate([np.linspace(-80.0, 88.0, 400_001), [0.0, -0.5, 0.5, -1e-8]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    _exp32_all(x, out)
    assert out.dtype == np.float32
    ref = np.exp(x.astype(np.float64))
    # 2 ulp of float32 is 2^-22 ~ 2.4e-7 relative (measured: 8e-8)
    assert np.max(np.abs(out / ref - 1.0)) < 2.4e-7


@njit(cache=True)
def _exp_expm1_32_all(x, e, m):
    for i in range(x.size):
        e[i], m[i] = exp_expm1_f32(x[i])


def test_float32_exp_and_expm1_are_each_within_two_ulp_of_their_own_size():
    x = np.concatenate([np.linspace(-80.0, 88.0, 400_001), np.linspace(-0.4, 0.4, 100_001),
                        [0.0, -1e-8, 1e-8, -1e-30]]).astype(np.float32)
    e, m = np.empty_like(x), np.empty_like(x)
    _exp_expm1_32_all(x, e, m)
    x64 = x.astype(np.float64)  # the float32 arguments exactly: only the functions' error
    # 2 ulp of float32 is 2^-22 ~ 2.4e-7 relative, for expm1 too (no cancellation near 0:
    # the polynomial itself there); measured 7.8e-8 and 1.1e-7
    assert np.max(np.abs(e / np.exp(x64) - 1.0)) < 2.4e-7
    nz = x64 != 0.0
    assert np.max(np.abs(m[nz] / np.expm1(x64[nz]) - 1.0)) < 2.4e-7 and m[~nz][0] == 0.0


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(), VPSDE(0.05, 30.0, T=2.0),
                                 SubVPSDE(1.0, 5.0, T=0.5), VESDE(0.002, 80.0, T=1.5)])
def test_float32_sde_coefficients_are_the_float64_ones_to_float32_accuracy(sde):
    """The float32 kernel's coefficients against the float64 closed forms. The exponent x
    (-B/2, or Lt/T and 2Lt/T for VE) is rounded to float32: that moves e^x by |x| 2^-24
    relative; then a float32 exp_expm1 (2 ulp, 2^-22) and a few float32 roundings (beta(t)
    and the products, 2^-24 each). Bound: (|x|_max + 8) 2^-24 with |x|_max of each SDE over
    [0, T]; s^2 near t = 0 included (expm1: no cancellation). Measured: 0.36-0.64 of it."""
    code, params = sde_to_params(sde)
    t = sde.T * np.concatenate([[0.0, 1e-12, 1e-7, 1e-5], np.linspace(0.0, 1.0, 501)])
    f, g2h, a, s2 = (np.empty(t.size, np.float32) for _ in range(4))
    lanes_coeffs_f32(code, params, t, f, g2h, a, s2)
    ref = np.array([sde.drift_coeff(t), 0.5 * sde.diffusion_sq(t), sde.mean_coeff(t),
                    sde.marginal_var(t)])
    out = np.array([f, g2h, a, s2], dtype=np.float64)
    scale = np.where(ref == 0.0, 1.0, np.abs(ref))
    assert np.all(out[:, ref[3] == 0.0][3] == 0.0)  # s^2(0) = 0 exactly
    T = sde.T  # |x| at most 2 L (VE) or B(T) / 2 (VP, sub-VP)
    x_max = (2.0 * math.log(sde.sigma_max / sde.sigma_min) if isinstance(sde, VESDE)
             else 0.5 * (sde.beta_min * T + 0.5 * (sde.beta_max - sde.beta_min) * T * T))
    assert np.max(np.abs(out - ref) / scale) < (x_max + 8.0) * 2.0**-24


def test_float32_exp_flushes_below_minus_80_to_zero_never_to_a_subnormal():
    x = np.array([-80.5, -87.0, -100.0, -1e30, -np.inf], dtype=np.float32)
    out = np.full_like(x, np.nan)
    _exp32_all(x, out)
    assert np.all(out == 0.0)
    # just above the cut: a normal number (products with O(1) factors stay normal)
    y = np.array([-79.99], dtype=np.float32)
    _exp32_all(y, out[:1])
    assert out[0] > 1e3 * np.finfo(np.float32).tiny


@pytest.mark.parametrize("mix, sde", [(_ring(), VPSDE()), (_full(3, seed=21), SubVPSDE())],
                         ids=["ring-diag-vp", "full-3d-subvp"])
def test_float32_em_and_batch_pc_follow_the_float64_path(mix, sde):
    oracle = MixtureOracle(mix, sde)
    rng = np.random.default_rng(22)
    steps, n = 60, 300
    grid = time_grid("uniform", steps, 1.0, 1e-3)
    x_T = oracle.sample(n, 1.0, rng)
    dW = rng.standard_normal((steps, n, mix.d)) * np.sqrt(-np.diff(grid))[:, None, None]
    z = rng.standard_normal((steps, 1, n, mix.d))
    pairs = [(em_sample_numba(oracle, x_T, grid, dW=dW),
              em_sample_numba(oracle, x_T.astype(np.float32), grid, dW=dW)),
             (pc_sample_numba(oracle, x_T, grid, dW=dW, z=z, norm="batch"),
              pc_sample_numba(oracle, x_T.astype(np.float32), grid, dW=dW, z=z, norm="batch"))]
    for hi, lo in pairs:
        assert lo.dtype == np.float32 and hi.dtype == np.float64
        # budget: ~30 roundings per step (score, update) of 6e-8 relative on |x| <~ 6, over
        # 60 steps, added up without cancellation: 30 * 6e-8 * 6 * 60 = 6.5e-4 (the reverse
        # SDE contracts towards the data, so errors do not grow; measured ~3e-5)
        assert np.max(np.abs(lo - hi)) < 6.5e-4


def test_float32_em_gaussian_moments_within_standard_errors():
    # As the float64 test in test_fused_numba: EM on a Gaussian is a linear recursion whose
    # exact moments at eps are computed here; the float32 samples must match them to Monte
    # Carlo accuracy. z = 5.3 two-sided per check (4 checks: 4 * 1.2e-7 < 1e-6); the float32
    # round-off (<= 1e-5 absolute, previous test) is < 0.01 standard errors at n = 40,000.
    mu, var, eps, n, steps = 1.5, 0.3, 1e-3, 40_000, 1000
    sde = VPSDE()
    oracle = MixtureOracle(GaussianMixture(np.ones(1), np.array([[mu]]), np.array([[[var]]])),
                           sde)
    grid = time_grid("uniform", steps, 1.0, eps)
    m, v = em_gaussian_moments(sde, mu, var, grid)
    se_m, se_v = math.sqrt(v / n), v * math.sqrt(2 / (n - 1))
    x_T = oracle.sample(n, 1.0, np.random.default_rng(23)).astype(np.float32)
    for out in (em_sample_numba(oracle, x_T, grid, seed=24),
                pc_sample_numba(oracle, x_T, grid, n_corrector=0, seed=24)):
        assert out.dtype == np.float32
        x = out[:, 0].astype(np.float64)
        assert abs(x.mean() - m) < 5.3 * se_m
        assert abs(x.var(ddof=1) - v) < 5.3 * se_v


# ------------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize("mix, sde", [(_ring(), VPSDE()), (_full(3, seed=21), SubVPSDE()),
                                      (_full(16, seed=3), VESDE())],
                         ids=["ring-diag-vp", "full-3d-subvp", "full-16d-ve"])
def test_float32_likelihood_follows_the_float64_kernel_and_the_exact_density(mix, sde):
    eps = 1e-5
    oracle = MixtureOracle(mix, sde)
    # points representable in float32, so both kernels start from the same x
    x32 = oracle.sample(300, eps, np.random.default_rng(23)).astype(np.float32)
    x64 = x32.astype(np.float64)
    a = dopri5_loglik_numba(oracle, x64, eps, rtol=1e-6, atol=1e-6, prior="exact")
    b = dopri5_loglik_numba(oracle, x32, eps, rtol=1e-6, atol=1e-6, prior="exact")
    assert np.all(b.status == 0)
    # the float64 kernel's yardstick at rtol 1e-6 (measured for float32: 1.3e-4 at worst, 16-D)
    assert np.max(np.abs(b.logp - oracle.log_prob(x64, eps))) < 1e-3
    # Most samples take the float64 kernel's step sequence (measured: 86-98 %); their logp then
    # differs by the float32 rounding carried along ~100 evaluations (2^-24 relative each, on
    # states and increments of size <~ 10: a few 1e-5 at worst; measured median 8e-6 in 16-D).
    # A sample whose accept/reject flips differs by up to the truncation error instead.
    same = a.nfe == b.nfe
    assert same.mean() > 0.75
    assert np.median(np.abs(a.logp - b.logp)[same]) < 1e-4


def test_log_likelihood_runs_float32_points_in_the_float32_kernel():
    import scorebench as sb

    oracle = MixtureOracle(_ring(), VPSDE())
    x32 = oracle.sample(200, 1e-5, np.random.default_rng(24)).astype(np.float32)
    r32 = sb.log_likelihood(x32, oracle, oracle.sde, backend="numba")
    r64 = sb.log_likelihood(x32.astype(np.float64), oracle, oracle.sde, backend="numba")
    direct = dopri5_loglik_numba(oracle, x32, 1e-5, rtol=1e-5, atol=1e-5)
    assert r32.backend == "numba" and r32.logp.dtype == np.float32
    # the float32 kernel's own result (to float32 rounding of the returned array) ...
    assert np.array_equal(r32.logp, direct.logp.astype(np.float32))
    # ... which is not the float64 kernel's, but close to it (see the test above)
    assert not np.array_equal(r32.logp, r64.logp.astype(np.float32))
    assert np.max(np.abs(r32.logp - r64.logp)) < 2e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_coefficients_in_the_state_dtype_from_python_and_from_numba_agree(dtype):
    """``lanes_coeffs_as`` picks its branch by the state's dtype: at run time from Python, at
    compile time in numba; both give the same numbers to 4 ulps of the dtype (numba may fuse
    a multiply-add differently in the two compiled contexts: measured 1 ulp), float64 the
    float64 closed forms' fast path (lanes_coeffs) with g^2 halved."""
    sde = VPSDE()
    code, params = sde_to_params(sde)
    t = np.linspace(1e-5, 1.0, 77)
    scratch = [np.empty(t.size) for _ in range(4)]
    py = [np.empty(t.size, dtype) for _ in range(4)]
    nb = [np.empty(t.size, dtype) for _ in range(4)]
    lanes_coeffs_as(code, params, t, *scratch, *py)
    _coeffs_as_numba(code, params, t, *scratch, *nb)
    ulps = 4 * np.finfo(dtype).eps
    for a, b in zip(py, nb):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=ulps, atol=0)
    if dtype == np.float64:
        f, g2, a, s2 = sde_coeffs_array(code, params, t, True)
        for got, want in zip(py, (f, 0.5 * g2, a, s2)):
            np.testing.assert_allclose(got, want, rtol=ulps, atol=0)


@njit(cache=True)
def _coeffs_as_numba(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d):
    lanes_coeffs_as(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d)
