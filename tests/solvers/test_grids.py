"""Time grids: exact end points, monotonicity, the defining formula of each kind, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solver_toys import ToyVPSDE

from scorebench.analytic import VESDE, VPSDE, SubVPSDE
from scorebench.solvers.grids import GRID_KINDS, check_grid, time_grid

SDES = [ToyVPSDE(), VPSDE(), SubVPSDE(), VESDE()]


@pytest.mark.parametrize("kind", GRID_KINDS)
@pytest.mark.parametrize("steps", [1, 2, 7, 100, 1000])
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.3])
def test_grid_shape_ends_and_monotonicity(kind, steps, eps):
    for sde in SDES:
        t = time_grid(kind, steps, 1.0, eps, sde=sde)
        assert t.dtype == np.float64 and t.shape == (steps + 1,)
        assert t[0] == 1.0 and t[-1] == eps  # exactly, not to rounding
        assert np.all(np.diff(t) < 0)


def test_uniform_and_quadratic_formulas():
    t = time_grid("uniform", 8, 2.0, 0.02, sde=None)
    np.testing.assert_allclose(np.diff(t), -(2.0 - 0.02) / 8, rtol=0, atol=1e-15)
    q = time_grid("quadratic", 10, 1.0, 1e-3)
    i = np.arange(11)
    np.testing.assert_allclose(q, 1e-3 + (1 - 1e-3) * (1 - i / 10) ** 2, rtol=0, atol=1e-15)
    # quadratic steps shrink towards eps: strictly decreasing step magnitudes
    assert np.all(np.diff(np.abs(np.diff(q))) < 0)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_logsnr_grid_is_uniform_in_log_snr(sde):
    t = time_grid("logsnr", 20, 1.0, 1e-3, sde=sde)
    lam = np.asarray(sde.log_snr(t))
    steps = np.diff(lam)
    # the inverse t_from_log_snr is closed-form for these SDEs: spacing equal to ~1e-9 relative
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-9)
    assert steps.mean() > 0  # log-SNR increases as t decreases


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("rho", [1.0, 3.0, 7.0])
def test_karras_grid_follows_rho_schedule(sde, rho):
    n = 16
    t = time_grid("karras", n, 1.0, 1e-3, sde=sde, rho=rho)
    sigma = np.exp(-0.5 * np.asarray(sde.log_snr(t)))  # sigma = s / a
    smax, smin = sigma[0], sigma[-1]
    i = np.arange(n + 1)
    expected = (smax ** (1 / rho) + i / n * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    np.testing.assert_allclose(sigma, expected, rtol=1e-9)


def test_karras_rho_one_is_uniform_in_sigma():
    sde = VESDE()
    t = time_grid("karras", 10, 1.0, 1e-2, sde=sde, rho=1.0)
    sigma = np.exp(-0.5 * np.asarray(sde.log_snr(t)))
    np.testing.assert_allclose(np.diff(sigma), np.diff(sigma).mean(), rtol=1e-9)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("uniform", 0, 1.0, 1e-3), {}, r"steps: must be >= 1"),
        (("uniform", -3, 1.0, 1e-3), {}, r"steps: must be >= 1"),
        (("uniform", 2.5, 1.0, 1e-3), {}, r"steps: expected an int >= 1"),
        (("uniform", 10.0, 1.0, 1e-3), {}, r"steps: expected an int >= 1"),
        (("uniform", True, 1.0, 1e-3), {}, r"steps: expected an int >= 1"),
        (("uniform", 10, 1.0, 0.0), {}, r"eps: must lie in the open interval \(0, T\)"),
        (("uniform", 10, 1.0, -1e-3), {}, r"eps: must lie in the open interval"),
        (("uniform", 10, 1.0, 1.0), {}, r"eps: must lie in the open interval"),
        (("uniform", 10, 1.0, 2.0), {}, r"eps: must lie in the open interval"),
        (("uniform", 10, 1.0, np.nan), {}, r"eps: must be finite"),
        (("uniform", 10, 0.0, 1e-3), {}, r"T: must be > 0"),
        (("cosine", 10, 1.0, 1e-3), {}, r"grid: unknown kind 'cosine'; expected one of uniform"),
        (("karras", 10, 1.0, 1e-3), {}, r"sde: the 'karras' grid needs an SDE"),
        (("logsnr", 10, 1.0, 1e-3), {}, r"sde: the 'logsnr' grid needs an SDE"),
        (("karras", 10, 1.0, 1e-3), {"sde": VPSDE(), "rho": 0.0}, r"rho: must be > 0"),
    ],
)
def test_grid_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_grid(*args, **kwargs)


def test_grid_that_float64_cannot_resolve_is_rejected():
    with pytest.raises(ValueError, match="steps: the 'uniform' grid .* not strictly decreasing"):
        time_grid("uniform", 10, 1.0, 1.0 - 1e-15)


def test_check_grid():
    g = check_grid([1.0, 0.5, 0.1], 1.0, 0.1)
    assert g.dtype == np.float64
    with pytest.raises(ValueError, match="grid: must be strictly decreasing"):
        check_grid([1.0, 0.5, 0.5, 0.1], 1.0)
    with pytest.raises(ValueError, match="grid: must start exactly at T"):
        check_grid([0.9, 0.1], 1.0)
    with pytest.raises(ValueError, match="grid: must end exactly at eps"):
        check_grid([1.0, 0.2], 1.0, 0.1)
    with pytest.raises(ValueError, match=r"grid: last time must lie in \(0, T\)"):
        check_grid([1.0, 0.0], 1.0)


@settings(max_examples=60)
@given(
    kind=st.sampled_from(GRID_KINDS),
    steps=st.integers(1, 3000),
    eps_exp=st.floats(-6.0, -0.5),
    sde_index=st.integers(0, len(SDES) - 1),
)
def test_grid_invariants_property(kind, steps, eps_exp, sde_index):
    eps = 10.0**eps_exp
    t = time_grid(kind, steps, 1.0, eps, sde=SDES[sde_index])
    assert t.shape == (steps + 1,) and t[0] == 1.0 and t[-1] == eps
    assert np.all(np.diff(t) < 0)
