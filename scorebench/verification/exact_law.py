r"""The exact law of a discretised sampler on Gaussian data, for any plug-in solver ("probe the affine map").

For one-component data :math:`N(\mu, \Sigma)` the score is affine in x,
:math:`\nabla\log p_t(x) = -C_t^{-1}(x - a_t\mu)` with :math:`C_t = a_t^2\Sigma + s_t^2 I`, so the
probability-flow velocity and the reverse drift are affine in x. Every scheme built from them —
Euler, Heun, RK4, DDIM, DPM-Solver, Euler–Maruyama, ancestral sampling — maps a state and a Brownian
increment affinely:

.. math:: x' = A x + b + B\, dW, \qquad dW \sim N(0, |dt| I),

so a Gaussian law :math:`N(m, S)` is carried exactly to :math:`N(Am + b,\; A S A^\top + |dt| B B^\top)`
(Pierret & Galerne, ICML 2025). Iterating over the grid gives the scheme's law at eps with no
Monte Carlo noise, and with it W2, KL and moment errors against the exact :math:`p_\varepsilon`.

**Probing.** A plug-in solver is a black box, but an affine map is determined by d + 1 points: one
call of the solver's step on the batch

* row 0: :math:`x = 0,\ dW = 0` gives :math:`b`;
* rows 1..d: :math:`x = e_j,\ dW = 0` give the columns :math:`A e_j = \Phi(e_j) - b`;
* rows d+1..2d (SDE solvers): :math:`x = 0,\ dW = \sqrt{|dt|}\, e_j` give
  :math:`B e_j = (\Phi(0, \sqrt{|dt|} e_j) - b)/\sqrt{|dt|}`;
* a last row at a random :math:`(x, dW)` checks the affine model to ``1e-9`` relative.

The same rows are then stepped again inside a larger batch (random extra rows) with a differently
seeded ``rng``: a scheme whose step depends on the batch (Song et al.'s batch-averaged
predictor-corrector norms) or draws its own noise gives different outputs and is reported as not
probeable (:class:`NotAffineError`) — its law is not a fixed linear-Gaussian recursion.
"""

from __future__ import annotations

import math

import numpy as np

from scorebench.solvers.base import solver_kind
from scorebench.solvers.problem import ReverseProblem

__all__ = ["NotAffineError", "probe_affine_step", "propagate_law", "exact_gaussian_law", "AFFINE_RTOL"]

#: Relative tolerance of the affine-model and batch-independence checks.
AFFINE_RTOL = 1e-9


class NotAffineError(ValueError):
    """The step is not a fixed affine map of (x, dW): nonlinear, batch-dependent or self-noised."""


def _step(solver, kind, problem, x, t, dt, dw, rng):
    if kind == "sde":
        return np.asarray(solver.advance(problem, x, t, dt, dw, rng), dtype=np.float64)
    return np.asarray(solver.advance(problem, x, t, dt), dtype=np.float64)


def probe_affine_step(solver, problem: ReverseProblem, d: int, t: float, dt: float, seed: int = 0):
    """``(A, b, B)`` of one step from ``t`` to ``t + dt`` (B is zero for ODE solvers).

    Raises
    ------
    NotAffineError
        When the random check row or the batch-independence check fails.
    """
    kind = "sde" if solver_kind(type(solver)) == "sde" else "ode"
    rng = np.random.default_rng(seed)
    root = math.sqrt(abs(dt))
    rows = 2 * d + 2 if kind == "sde" else d + 2
    x = np.zeros((rows, d))
    dw = np.zeros((rows, d))
    x[1 : d + 1] = np.eye(d)
    if kind == "sde":
        dw[d + 1 : 2 * d + 1] = root * np.eye(d)
    x[-1] = rng.standard_normal(d)
    dw[-1] = root * rng.standard_normal(d) if kind == "sde" else 0.0
    out = _step(solver, kind, problem, x, t, dt, dw, np.random.default_rng(seed + 1))
    if out.shape != x.shape or not np.all(np.isfinite(out)):
        raise ValueError(f"solver {solver.name!r} returned shape {out.shape} or non-finite values at t={t}")
    b = out[0]
    A = (out[1 : d + 1] - b).T
    B = ((out[d + 1 : 2 * d + 1] - b) / root).T if kind == "sde" else np.zeros((d, d))
    pred = A @ x[-1] + b + B @ dw[-1]
    scale = 1.0 + np.abs(out).max()
    if np.max(np.abs(pred - out[-1])) > AFFINE_RTOL * scale:
        raise NotAffineError(
            f"solver {solver.name!r}: the step at t={t:.6g} is not affine in (x, dW) "
            f"(check row off by {np.max(np.abs(pred - out[-1])):.3g})"
        )
    extra_x = 3.0 * rng.standard_normal((5, d))
    extra_dw = root * rng.standard_normal((5, d)) if kind == "sde" else np.zeros((5, d))
    out2 = _step(solver, kind, problem, np.vstack([x, extra_x]), t, dt, np.vstack([dw, extra_dw]),
                 np.random.default_rng(seed + 2))[:rows]
    if np.max(np.abs(out2 - out)) > AFFINE_RTOL * scale:
        raise NotAffineError(
            f"solver {solver.name!r}: the step at t={t:.6g} depends on the rest of the batch or on "
            f"the rng (off by {np.max(np.abs(out2 - out)):.3g}); its law is not a fixed linear-Gaussian "
            "recursion"
        )
    return A, b, B


def propagate_law(solver, oracle, grid, starts, seed: int = 0, model=None):
    """Carry Gaussian laws along ``grid`` through the probed affine steps of ``solver``.

    Parameters
    ----------
    solver : solver instance (fixed-step ODE or SDE)
    oracle : MixtureOracle
        One-component oracle (its score is affine); also the score model the solver sees.
    grid : array_like, shape (N + 1,)
        Decreasing times from T to eps.
    starts : list of (mean (d,), cov (d, d))
        Laws at ``grid[0]``, all carried by the same maps.
    seed : int
        Seeds the probes' check rows.
    model : score model, optional
        The score the solver sees (default the oracle); it must be affine in x, e.g. a
        :class:`~scorebench.solvers.perturbed_oracle.PerturbedOracle` of the oracle.

    Returns
    -------
    laws : list of (mean, cov)
        The laws at ``grid[-1]``.
    nfe : int
        Score evaluations spent by the probes.
    """
    if oracle.K != 1:
        raise ValueError(f"oracle: the exact law needs one-component data, got K = {oracle.K}")
    d = oracle.d
    problem = ReverseProblem(oracle if model is None else model, oracle.sde)
    laws = [(np.asarray(m, dtype=np.float64), np.asarray(c, dtype=np.float64)) for m, c in starts]
    g = np.asarray(grid, dtype=np.float64)
    for i in range(g.size - 1):
        t, dt = float(g[i]), float(g[i + 1] - g[i])
        A, b, B = probe_affine_step(solver, problem, d, t, dt, seed + 3 * i)
        noise = abs(dt) * (B @ B.T)
        laws = [(A @ m + b, A @ c @ A.T + noise) for m, c in laws]
        laws = [(m, 0.5 * (c + c.T)) for m, c in laws]
    return laws, problem.nfe


def exact_gaussian_law(oracle, t: float):
    """``(mean, cov)`` of the exact marginal p_t of one-component data."""
    if oracle.K != 1:
        raise ValueError(f"oracle: expected one-component data, got K = {oracle.K}")
    mix = oracle.marginal(t)
    return mix.means[0].copy(), mix.covs[0].copy()
