"""The hypothesis strategies users get in scorebench.testing.strategies keep their promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorebench.analytic.linear_sde import LinearSDE
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.testing import strategies as sbst


@given(sbst.gaussian_mixtures(max_k=4, max_d=4, max_condition=1e3))
def test_mixtures_respect_their_bounds(mix):
    assert 1 <= mix.K <= 4 and 1 <= mix.d <= 4
    assert not mix.is_singular
    assert np.all(mix.weights >= 0.2 / mix.K - 1e-15)
    lam = mix.eigvals
    # largest eigenvalue of each component in [0.1, 1], condition number <= 1e3
    assert np.all((lam.max(axis=1) >= 0.1 * (1 - 1e-12)) & (lam.max(axis=1) <= 1 + 1e-12))
    assert np.all(lam.max(axis=1) / lam.min(axis=1) <= 1e3 * (1 + 1e-9))


@given(sbst.gaussian_mixtures(min_k=2, max_k=5, d=3, allow_point_masses=True))
def test_mixtures_with_point_masses(mix):
    assert mix.d == 3 and 2 <= mix.K <= 5
    atoms = np.all(mix.eigvals == 0.0, axis=1)
    # a component is either a point mass or non-degenerate
    assert np.all(atoms | np.all(mix.eigvals > 0, axis=1))
    assert mix.is_singular == bool(atoms.any())


@pytest.mark.parametrize("kind", ["full", "diagonal", "isotropic"])
def test_build_is_reproducible_and_exactly_conditioned(kind):
    a = sbst.build_gaussian_mixture(5, 3, 4, condition=250.0, covariance_type=kind, n_point_masses=1)
    b = sbst.build_gaussian_mixture(5, 3, 4, condition=250.0, covariance_type=kind, n_point_masses=1)
    np.testing.assert_array_equal(a.covs, b.covs)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covs[2], 0.0)
    cond = a.eigvals[:2].max(axis=1) / a.eigvals[:2].min(axis=1)
    np.testing.assert_allclose(cond, 1.0 if kind == "isotropic" else 250.0, rtol=1e-9)
    off_diagonal = a.covs[:2] * (1 - np.eye(4))
    assert (np.abs(off_diagonal).max() == 0.0) == (kind != "full")


@given(sbst.sdes())
def test_sdes_have_documented_parameters(sde):
    assert sde.T == 1.0
    if isinstance(sde, (VPSDE, SubVPSDE)):
        assert 0.01 <= sde.beta_min <= 2.0 and sde.beta_min <= sde.beta_max <= sde.beta_min + 30
    elif isinstance(sde, VESDE):
        assert 1e-3 <= sde.sigma_min <= 0.5 and max(1.0, 4 * sde.sigma_min) <= sde.sigma_max <= 1e3
    else:
        assert isinstance(sde, LinearSDE)
        t = np.linspace(0.0, 1.0, 5)
        np.testing.assert_allclose(sde.mean_coeff(t), sde.schedule.a(t), rtol=1e-10)
    assert sde.marginal_var(sde.T) > 0


@given(sbst.sdes(families=("ve",), horizons=st.just(2.0), max_sigma=10.0))
def test_sdes_families_horizons_and_max_sigma(sde):
    assert isinstance(sde, VESDE) and sde.T == 2.0 and sde.sigma_max <= 10.0


@given(st.data())
def test_times_and_evaluation_points(data):
    sde = data.draw(sbst.sdes())
    t = data.draw(sbst.times(sde, low=1e-3, high=0.5))
    assert 1e-3 <= t <= 0.5
    mix = data.draw(sbst.gaussian_mixtures(max_k=3, max_d=3, allow_point_masses=True))
    x = data.draw(sbst.evaluation_points(MixtureOracle(mix, sde), t, n=5))
    assert x.shape == (5, mix.d) and np.all(np.isfinite(x))
    assert 0 <= data.draw(sbst.seeds()) < 2**32


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="^families:"):
        sbst.sdes(families=("vp", "heat"))
    with pytest.raises(ValueError, match="^linear_kinds:"):
        sbst.sdes(linear_kinds=())
    with pytest.raises(ValueError, match="^low:"):
        sbst.times(VPSDE(), low=0.0)
    with pytest.raises(ValueError, match="^condition:"):
        sbst.build_gaussian_mixture(0, 2, 2, condition=0.5)
    with pytest.raises(ValueError, match="^covariance_type:"):
        sbst.build_gaussian_mixture(0, 2, 2, covariance_type="banded")
    with pytest.raises(ValueError, match="^n_point_masses:"):
        sbst.build_gaussian_mixture(0, 2, 2, n_point_masses=3)
