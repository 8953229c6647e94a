"""Exact moments of a sampler on 1-D Gaussian data, with no Monte Carlo noise.

For data N(mu, var0) the exact score is affine in x, so every step of EM, ancestral sampling or a
PC sampler without corrector is an affine map of the state and the Brownian increment,
``x' = A x + B + C dw``. The coefficients are read off the solver itself (three evaluations of
``advance``: x = 0, x = 1, and x = 0 with dw = 1), and the mean and variance are propagated
exactly: ``m' = A m + B``, ``v' = A^2 v + C^2 |dt|`` (Pierret & Galerne, ICML 2025).
"""

from __future__ import annotations

import numpy as np

from scorebench.solvers.problem import ReverseProblem


def affine_step(solver, problem, t, dt):
    """``(A, B, C)`` of one step of ``solver`` from ``t`` to ``t + dt`` (1-D problem)."""
    x = np.array([[0.0], [1.0], [0.0]])
    dw = np.array([[0.0], [0.0], [1.0]])
    out = solver.advance(problem, x, t, dt, dw, None)[:, 0]
    B = out[0]
    return out[1] - B, B, out[2] - B


def propagate_moments(solver, oracle, grid, m0, v0, check_rng=None):
    """Exact mean and variance of ``solver``'s output along ``grid`` from N(m0, v0).

    With ``check_rng`` the affine form is confirmed at every step on a random batch (so the
    moments really describe the solver): the returned ``max_affine_residual`` is the largest
    mismatch seen.
    """
    problem = ReverseProblem(oracle, oracle.sde)
    m, v, resid = float(m0), float(v0), 0.0
    for t, t1 in zip(grid[:-1], grid[1:]):
        t, dt = float(t), float(t1) - float(t)
        A, B, C = affine_step(solver, problem, t, dt)
        if check_rng is not None:
            x = check_rng.standard_normal((4, 1)) * np.sqrt(v) + m
            dw = check_rng.standard_normal((4, 1)) * np.sqrt(abs(dt))
            out = solver.advance(problem, x, t, dt, dw, None)
            resid = max(resid, float(np.abs(out - (A * x + B + C * dw)).max()))
        m, v = A * m + B, A * A * v + C * C * abs(dt)
    return m, v, resid


def w2_gaussian_1d(m1, v1, m2, v2):
    """2-Wasserstein distance between N(m1, v1) and N(m2, v2)."""
    return float(np.hypot(m1 - m2, np.sqrt(v1) - np.sqrt(v2)))


def ks_gaussian_1d(m1, v1, m2, v2):
    """sup_x |Phi((x - m1)/sqrt v1) - Phi((x - m2)/sqrt v2)| (evaluated on a fine grid)."""
    from scipy.stats import norm

    sd = max(np.sqrt(v1), np.sqrt(v2))
    x = np.linspace(min(m1, m2) - 8 * sd, max(m1, m2) + 8 * sd, 200_001)
    return float(np.abs(norm.cdf(x, m1, np.sqrt(v1)) - norm.cdf(x, m2, np.sqrt(v2))).max())
