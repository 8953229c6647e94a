"""The SDE families: closed forms against numerical solutions, LinearSDE quadrature, log-SNR,
priors and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import solve_ivp

from scorebench.analytic.linear_sde import LinearSDE
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.testing import strategies as sbst

T_GRID = np.array([1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
_FEW = max(5, settings.default.max_examples // 2)


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))


def _moment_odes(sde, t_eval):
    """Solve m' = f m, v' = 2 f v + g^2 from m(0) = 1, v(0) = 0 with DOP853 at rtol 1e-12."""

    def rhs(t, y):
        f = sde.drift_coeff(min(t, sde.T))
        return [f * y[0], 2.0 * f * y[1] + sde.diffusion_sq(min(t, sde.T))]

    # atol far below every value of interest (v(1e-5) >= ~1e-14 here): a purely relative control.
    sol = solve_ivp(rhs, (0.0, sde.T), [1.0, 0.0], method="DOP853", rtol=1e-12, atol=1e-30,
                    first_step=1e-9, t_eval=t_eval)
    assert sol.success, sol.message
    return sol.y[0], sol.y[1]


# --------------------------------------------------------------------------- closed forms
DEFAULT_SDES = [
    VPSDE(),
    SubVPSDE(),
    VESDE(),
    VESDE(sigma_min=0.01, sigma_max=1e3),
    VPSDE(beta_min=0.5, beta_max=0.5),
    SubVPSDE(beta_min=0.01, beta_max=30.0),
    VPSDE(beta_min=0.1, beta_max=20.0, T=2.0),
    VESDE(sigma_min=0.05, sigma_max=20.0, T=2.0),
    SubVPSDE(beta_min=0.3, beta_max=12.0, T=0.5),
]


@pytest.mark.parametrize("sde", DEFAULT_SDES, ids=repr)
def test_kernel_solves_moment_odes(sde):
    """a(t), s(t)^2 equal the numerical solutions of m' = f m, v' = 2 f v + g^2.

    DOP853 at rtol 1e-12 on these smooth, non-stiff scalar ODEs has a global relative error
    below ~2e-11 (measured); 1e-9 leaves a margin of 50 while any wrong coefficient fails by
    orders of magnitude."""
    t = T_GRID * sde.T
    m, v = _moment_odes(sde, t)
    np.testing.assert_array_less(_rel(sde.mean_coeff(t), m), 1e-9)
    np.testing.assert_array_less(_rel(sde.marginal_var(t), v), 1e-9)
    assert sde.mean_coeff(0.0) == 1.0 and sde.marginal_var(0.0) == 0.0


@settings(max_examples=_FEW)
@given(sbst.sdes())
def test_kernel_solves_moment_odes_random(sde):
    """Same as above over random parameters of every family (LinearSDE schedules included)."""
    t = T_GRID * sde.T
    m, v = _moment_odes(sde, t)
    np.testing.assert_array_less(_rel(sde.mean_coeff(t), m), 1e-9)
    np.testing.assert_array_less(_rel(sde.marginal_var(t), v), 1e-9)


@pytest.mark.parametrize("sde", DEFAULT_SDES, ids=repr)
def test_closed_form_table(sde):
    """The DESIGN.md table written out independently: f, g^2, a, s^2 per family."""
    t = T_GRID * sde.T
    if isinstance(sde, VESDE):
        sigma = sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** (t / sde.T)
        f, g2, a = 0.0 * t, 2 * np.log(sde.sigma_max / sde.sigma_min) / sde.T * sigma**2, 1.0 + 0 * t
        s2 = sigma**2 - sde.sigma_min**2
    else:
        beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)
        B = sde.beta_min * t + 0.5 * (sde.beta_max - sde.beta_min) * t**2
        f, a = -beta / 2, np.exp(-B / 2)
        if isinstance(sde, SubVPSDE):
            g2, s2 = beta * (1 - np.exp(-2 * B)), (1 - np.exp(-B)) ** 2
        else:
            g2, s2 = beta, 1 - np.exp(-B)
    np.testing.assert_allclose(sde.drift_coeff(t), f, rtol=1e-14, atol=0)
    np.testing.assert_allclose(sde.diffusion_sq(t), g2, rtol=1e-7)  # 1 - e^{-2B} loses digits
    np.testing.assert_allclose(sde.diffusion(t) ** 2, sde.diffusion_sq(t), rtol=1e-14)
    np.testing.assert_allclose(sde.mean_coeff(t), a, rtol=1e-14)
    np.testing.assert_allclose(sde.marginal_var(t), s2, rtol=1e-6)  # naive 1 - e^{-B} at 1e-5
    np.testing.assert_allclose(sde.marginal_std(t) ** 2, sde.marginal_var(t), rtol=1e-14)


def test_scalar_in_float_out_array_in_array_out():
    sde = VPSDE()
    for name in ("drift_coeff", "diffusion", "diffusion_sq", "mean_coeff", "marginal_std",
                 "marginal_var", "log_snr"):
        assert type(getattr(sde, name)(0.3)) is float
        out = getattr(sde, name)(np.array([0.1, 0.3]))
        assert isinstance(out, np.ndarray) and out.shape == (2,)
        assert out[1] == getattr(sde, name)(0.3)


# --------------------------------------------------------------------------- LinearSDE
def _as_linear(sde):
    return LinearSDE(sde.drift_coeff, sde.diffusion, T=sde.T)


@settings(max_examples=_FEW)
@given(sbst.sdes(families=("vp", "subvp", "ve")))
@example(VPSDE())
@example(SubVPSDE(beta_min=0.01, beta_max=30.0))  # g(0)^2 ~ 2 beta_min^2 t: s^2 ~ t^2 at t -> 0
@example(VESDE(sigma_min=1e-3, sigma_max=1e3))
def test_linear_sde_reproduces_closed_forms(sde):
    """LinearSDE given a family's f and g equals its closed forms to 1e-10 relative, t >= 1e-5."""
    lin = _as_linear(sde)
    t = T_GRID * sde.T
    np.testing.assert_array_less(_rel(lin.mean_coeff(t), sde.mean_coeff(t)), 1e-10)
    np.testing.assert_array_less(_rel(lin.marginal_var(t), sde.marginal_var(t)), 1e-10)
    np.testing.assert_array_less(_rel(lin.diffusion_sq(t), sde.diffusion_sq(t)), 1e-14)
    np.testing.assert_array_equal(lin.drift_coeff(t), sde.drift_coeff(t))
    assert lin.mean_coeff(0.0) == 1.0 and lin.marginal_var(0.0) == 0.0


@settings(max_examples=_FEW)
@given(sbst.sdes(families=("linear",), horizons=st.sampled_from([1.0, 0.5, 3.0])))
def test_linear_sde_schedules_match_their_closed_forms(sde):
    """The strategies' cosine, sigma-power and quadratic-beta schedules: quadrature = closed form."""
    t = T_GRID * sde.T
    np.testing.assert_array_less(_rel(sde.mean_coeff(t), sde.schedule.a(t)), 1e-10)
    np.testing.assert_array_less(_rel(sde.marginal_var(t), sde.schedule.s2(t)), 1e-10)


def test_linear_sde_tutorial_ve_and_scalar_callables():
    """g(t) = sigma^t with f = 0 (written for scalars only): s^2 = (sigma^2t - 1) / (2 ln sigma)."""
    sigma = 25.0
    sde = LinearSDE(lambda t: 0.0, lambda t: float(sigma**t))
    t = T_GRID
    np.testing.assert_array_less(
        _rel(sde.marginal_var(t), np.expm1(2 * t * np.log(sigma)) / (2 * np.log(sigma))), 1e-10
    )
    np.testing.assert_array_equal(sde.mean_coeff(t), 1.0)
    # default prior: marginal std at T of unit-variance data
    assert sde.prior_std == pytest.approx(np.sqrt(1 + (sigma**2 - 1) / (2 * np.log(sigma))), rel=1e-12)


def test_linear_sde_bad_input():
    with pytest.raises(TypeError, match="^f:"):
        LinearSDE(1.0, lambda t: 1.0 + 0 * t)
    with pytest.raises(TypeError, match="^g:"):
        LinearSDE(lambda t: 0 * t, "g")
    with pytest.raises(ValueError, match="^f:"):
        LinearSDE(lambda t: np.where(t > 0.5, np.nan, 0.0), lambda t: 1.0 + 0 * t)
    with pytest.raises(ValueError, match="^g:"):
        LinearSDE(lambda t: 0 * t, lambda t: 0 * t)
    with pytest.raises(ValueError, match="^T:"):
        LinearSDE(lambda t: 0 * t, lambda t: 1.0 + 0 * t, T=0.0)
    with pytest.raises(ValueError, match="^prior_std:"):
        LinearSDE(lambda t: 0 * t, lambda t: 1.0 + 0 * t, prior_std=-1.0)


# --------------------------------------------------------------------------- log-SNR
@settings(max_examples=_FEW)
@given(st.data())
def test_log_snr_round_trip(data):
    """t_from_log_snr inverts log_snr: t -> lambda -> t recovers t to 1e-9 relative.

    The inverse is well conditioned: |d log t / d lambda| = 1 / (t |lambda'(t)|) is at most ~1
    for these schedules (lambda ~ -log t near 0), so lambda's round-off (1e-16 |lambda|) moves t
    by far less than 1e-9 relative; LinearSDE's bisection runs to double precision."""
    sde = data.draw(sbst.sdes(), label="sde")
    t = data.draw(sbst.times(sde, low=1e-5), label="t")
    lam = sde.log_snr(t)
    t_back = sde.t_from_log_snr(lam)
    assert abs(t_back - t) <= 1e-9 * t
    # and it is decreasing
    assert sde.log_snr(min(sde.T, 1.01 * t)) < lam or t == sde.T


@pytest.mark.parametrize("sde", DEFAULT_SDES[:4], ids=repr)
def test_log_snr_values_and_range(sde):
    t = T_GRID * sde.T
    lam = sde.log_snr(t)
    np.testing.assert_allclose(lam, np.log(sde.mean_coeff(t) ** 2 / sde.marginal_var(t)), rtol=1e-13)
    assert np.all(np.diff(lam) < 0)
    assert sde.log_snr(0.0) == np.inf
    np.testing.assert_allclose(sde.t_from_log_snr(lam), t, rtol=1e-9)
    with pytest.raises(ValueError, match="^lam:"):
        sde.t_from_log_snr(sde.log_snr(sde.T) - 1.0)
    with pytest.raises(ValueError, match="^lam:"):
        sde.t_from_log_snr(float("nan"))


# --------------------------------------------------------------------------- priors
PRIOR_SDES = [VPSDE(), SubVPSDE(), VESDE(), LinearSDE(lambda t: 0 * t, lambda t: 3.0**t)]


@pytest.mark.parametrize("sde", PRIOR_SDES, ids=repr)
def test_prior_log_prob_matches_scipy(sde):
    rng = np.random.default_rng(101)
    expected_std = {VPSDE: 1.0, SubVPSDE: 1.0, VESDE: 50.0}.get(type(sde))
    if expected_std is not None:
        assert sde.prior_std == expected_std
    for d in (1, 3):
        x = sde.prior_std * rng.standard_normal((7, d)) * 2.0
        ref = stats.multivariate_normal(np.zeros(d), sde.prior_std**2 * np.eye(d)).logpdf(x)
        np.testing.assert_allclose(sde.prior_log_prob(x), np.atleast_1d(ref), rtol=1e-13)
        xt = torch.as_tensor(x)
        out = sde.prior_log_prob(xt)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        np.testing.assert_allclose(out.numpy(), np.atleast_1d(ref), rtol=1e-13)


def test_prior_sample_moments():
    """Sample mean and variance of each coordinate within a Bonferroni-corrected normal bound.

    n = 40,000 draws; 2 SDEs x 3 coordinates x (mean, variance) = 12 assertions. The sample mean
    has standard error std / sqrt(n) and the sample variance var * sqrt(2 / (n - 1)) (Gaussian
    data); by the CLT each standardised error is N(0, 1) to O(n^-1/2), so with
    z = Phi^-1(1 - 1e-6 / (2 * 12)) ~ 5.5 the family-wise false-failure rate is below 1e-6."""
    n, d, n_assert = 40_000, 3, 12
    z = stats.norm.isf(1e-6 / (2 * n_assert))
    for seed, sde in ((7, VPSDE()), (8, VESDE())):
        x = sde.prior_sample(n, d, np.random.default_rng(seed))
        assert x.shape == (n, d)
        sd = sde.prior_std
        assert np.all(np.abs(x.mean(axis=0)) <= z * sd / np.sqrt(n))
        assert np.all(np.abs(x.var(axis=0, ddof=1) - sd**2) <= z * sd**2 * np.sqrt(2 / (n - 1)))


def test_prior_bad_input():
    sde = VPSDE()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^n:"):
        sde.prior_sample(0, 2, rng)
    with pytest.raises(ValueError, match="^d:"):
        sde.prior_sample(3, 0, rng)
    with pytest.raises(TypeError, match="^rng:"):
        sde.prior_sample(3, 2, 42)
    with pytest.raises(ValueError, match="^x:"):
        sde.prior_log_prob(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="^x:"):
        sde.prior_log_prob(np.zeros(3))
    with pytest.raises(ValueError, match="^x:"):
        sde.prior_log_prob(torch.tensor([[0.0, float("inf")]]))


# --------------------------------------------------------------------------- invalid parameters
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "make, param",
    [
        (lambda: VPSDE(beta_min=1.0, beta_max=0.5), "beta_max"),
        (lambda: SubVPSDE(beta_min=1.0, beta_max=0.5), "beta_max"),
        (lambda: VPSDE(beta_min=0.0), "beta_min"),
        (lambda: VPSDE(beta_min=-0.1), "beta_min"),
        (lambda: VPSDE(beta_min=NAN), "beta_min"),
        (lambda: VPSDE(beta_max=INF), "beta_max"),
        (lambda: SubVPSDE(beta_max=NAN), "beta_max"),
        (lambda: VPSDE(T=0.0), "T"),
        (lambda: VPSDE(T=INF), "T"),
        (lambda: VESDE(sigma_min=0.0), "sigma_min"),
        (lambda: VESDE(sigma_min=-1.0), "sigma_min"),
        (lambda: VESDE(sigma_min=NAN), "sigma_min"),
        (lambda: VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_max"),
        (lambda: VESDE(sigma_min=1.0, sigma_max=0.5), "sigma_max"),
        (lambda: VESDE(sigma_max=INF), "sigma_max"),
        (lambda: VESDE(T=-1.0), "T"),
    ],
)
def test_invalid_sde_parameters_raise(make, param):
    with pytest.raises(ValueError, match=f"^{param}:"):
        make()


@pytest.mark.parametrize("bad", [True, "1.0", None, [0.1]])
def test_sde_parameter_types(bad):
    with pytest.raises(TypeError, match="^beta_min:"):
        VPSDE(beta_min=bad)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(), VPSDE(T=2.0), PRIOR_SDES[-1]], ids=repr)
@pytest.mark.parametrize(
    "bad_t",
    [-1e-3, "above", NAN, INF, -INF, np.array([0.1, -0.1]), np.array([0.5, NAN]), np.zeros((2, 2))],
    ids=["neg", "above", "nan", "inf", "-inf", "arr_neg", "arr_nan", "2d"],
)
def test_time_outside_range_raises(sde, bad_t):
    if isinstance(bad_t, str):
        bad_t = sde.T * (1 + 1e-9)
    for name in ("drift_coeff", "diffusion", "diffusion_sq", "mean_coeff", "marginal_std",
                 "marginal_var", "log_snr", "check_time"):
        with pytest.raises(ValueError, match="^t:"):
            getattr(sde, name)(bad_t)


def test_time_endpoints_accepted():
    sde = VPSDE(T=2.0)
    assert sde.check_time(0.0) == 0.0 and sde.check_time(2.0) == 2.0
    out = sde.check_time(np.array([0.0, 2.0]))
    assert out.dtype == np.float64 and out.shape == (2,)
    assert sde.check_time(torch.tensor([0.5], dtype=torch.float32)).dtype == np.float64
