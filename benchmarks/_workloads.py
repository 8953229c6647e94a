"""Shared benchmark workloads (issue 5): the 2-D ring of 8 Gaussians and its likelihood/sampling set-ups.

Every function is deterministic (fixed seeds), so all implementations in a run see the same
points, and runs on different machines see the same problem.

``ring_of_8``
    8 isotropic components of equal weight on a circle of radius 2, variance 0.05 each
    (:func:`scorebench.bench.workloads.ring8`, the data of ``scorebench bench``).
``likelihood_workload`` -- workload (a)
    N points drawn exactly from p_eps (VP, eps = 1e-5) and their exact log p_eps; the solvers
    integrate the PF-ODE from eps to T = 1 at rtol = atol = 1e-5.
``sampling_workload`` -- workloads (c), (d)
    N exact samples of p_T (VP, T = 1) and the uniform grid of ``steps`` steps from T to
    eps = 1e-3; EM and PC run on it.
"""

from __future__ import annotations

import numpy as np

from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE
from scorebench.bench.workloads import RING_RADIUS, RING_VARIANCE, ring8
from scorebench.solvers.grids import time_grid

__all__ = ["ring_of_8", "likelihood_workload", "sampling_workload", "RING_RADIUS",
           "RING_VARIANCE"]

LIKELIHOOD_EPS = 1e-5
SAMPLING_EPS = 1e-3

ring_of_8 = ring8  # the 2-D ring of 8 (radius RING_RADIUS, variance RING_VARIANCE)


def likelihood_workload(n: int = 10_000, seed: int = 0):
    """(oracle, x, exact log p_eps(x), eps): N exact samples of p_eps of the ring under VP."""
    oracle = MixtureOracle(ring_of_8(), VPSDE())
    x = oracle.sample(n, LIKELIHOOD_EPS, np.random.default_rng(seed))
    return oracle, x, oracle.log_prob(x, LIKELIHOOD_EPS), LIKELIHOOD_EPS


def sampling_workload(n: int = 100_000, steps: int = 1000, seed: int = 0):
    """(oracle, x_T, grid): N exact samples of p_T of the ring under VP and a uniform grid."""
    oracle = MixtureOracle(ring_of_8(), VPSDE())
    x_T = oracle.sample(n, oracle.sde.T, np.random.default_rng(seed))
    return oracle, x_T, time_grid("uniform", steps, oracle.sde.T, SAMPLING_EPS)
