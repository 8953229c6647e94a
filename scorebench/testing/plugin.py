"""pytest plugin: oracle fixtures for testing diffusion solvers against exact answers.

Registered through the ``pytest11`` entry point, so installing scorebench makes these
fixtures available in any test suite:

``sb_rng``
    a ``numpy.random.Generator`` seeded from a fixed, recorded seed (20261123).
``sb_vp_sde``, ``sb_subvp_sde``, ``sb_ve_sde``
    the three SDE families with their default parameters.
``sb_gaussian_oracle``
    the exact oracle of a 2-D anisotropic Gaussian under the VP SDE (exact flow map available).
``sb_mixture_oracle``
    the exact oracle of the 1-D three-component mixture under the VP SDE.
``sb_scenario``
    a factory: ``sb_scenario("ring8-ve")`` returns the named verification scenario (its
    ``.oracle()``, ``.mixture()``, ``.sde()``); ``scorebench list`` shows the names.
``sb_assert_order``
    :func:`scorebench.testing.assert_order`, e.g. ``sb_assert_order(MySolver, "gauss2d-vp")``.
"""

from __future__ import annotations

import numpy as np
import pytest

SEED = 20261123


@pytest.fixture
def sb_rng():
    return np.random.default_rng(SEED)


@pytest.fixture
def sb_vp_sde():
    from scorebench.analytic import VPSDE

    return VPSDE()


@pytest.fixture
def sb_subvp_sde():
    from scorebench.analytic import SubVPSDE

    return SubVPSDE()


@pytest.fixture
def sb_ve_sde():
    from scorebench.analytic import VESDE

    return VESDE()


@pytest.fixture
def sb_gaussian_oracle(sb_vp_sde):
    from scorebench.analytic import GaussianMixture, MixtureOracle

    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    mix = GaussianMixture([1.0], [[0.5, -1.0]], [cov])
    return MixtureOracle(mix, sb_vp_sde)


@pytest.fixture
def sb_mixture_oracle(sb_vp_sde):
    from scorebench.analytic import GaussianMixture, MixtureOracle

    mix = GaussianMixture.isotropic([0.3, 0.5, 0.2], [[-2.0], [0.5], [2.5]], [0.2, 0.1, 0.3])
    return MixtureOracle(mix, sb_vp_sde)


@pytest.fixture
def sb_scenario():
    from scorebench.verification.scenarios import get_scenario

    return get_scenario


@pytest.fixture
def sb_assert_order():
    from scorebench.testing.assert_order import assert_order

    return assert_order
