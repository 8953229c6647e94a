r"""The augmented probability-flow ODE of the likelihood, fed to the ordinary steppers.

The state is :math:`z = (x, \ell)` of shape (N, d + 1) with :math:`dz/dt = (v(x, t),
\nabla\cdot v(x, t))` and :math:`\ell(\varepsilon) = 0` -- "another ODE for the same solvers",
as torchsde builds its adjoint. :func:`integrate_augmented` runs it from eps to T with an
adaptive solver's ``solve`` (per-sample error control over all d + 1 components, the
log-density included, scipy's meaning of ``rtol``/``atol``) or a fixed-step solver's ``step``
on a uniform grid.

Stochastic divergence estimators keep per-sample probes. The adaptive driver drops finished
samples from the batch, so ``f`` sees a subset of rows; the state therefore carries one more
column, the sample's row index (constant, zero derivative), from which the right-hand side
picks each row's probes. That column has zero error, and the tolerances of the d + 1 real
components are scaled so the solver's RMS over d + 2 components equals the RMS over the d + 1
real ones exactly (:func:`augmented_tolerances`).
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import all_finite, is_torch, like, to_numpy
from .base import SolverError
from .grids import time_grid

__all__ = ["augmented_tolerances", "AugmentedRHS", "integrate_augmented"]

# tolerance of the row-index column: its error is exactly zero; a huge atol keeps it out of
# Hairer's initial-step estimate (finite in float32 too)
_INDEX_ATOL = 1e30


def augmented_tolerances(rtol, atol, d: int, with_index: bool):
    """Per-component tolerances of the augmented state (scalars when there is no index column).

    With the index column (m = d + 2 components, one with zero error) the solver's RMS over m
    components is sqrt((d+1)/(d+2)) times the RMS over the d + 1 real ones; multiplying their
    tolerances by c = sqrt((d+1)/(d+2)) makes the two norms equal exactly (error test and
    Hairer's initial step alike).
    """
    if not with_index:
        return rtol, atol
    c = math.sqrt((d + 1) / (d + 2))
    r = np.full(d + 2, rtol * c)
    a = np.full(d + 2, atol * c)
    r[-1], a[-1] = rtol, _INDEX_ATOL
    return r, a


class AugmentedRHS:
    """Right-hand side ``(v, div v[, 0])`` of the augmented state; counts evaluations."""

    def __init__(self, div, d: int, state, with_index: bool):
        self.div, self.d, self.state, self.with_index = div, d, state, with_index
        self.nfe = 0

    def __call__(self, z, t):
        self.nfe += 1
        d = self.d
        x = z[:, :d]
        state = self.state
        if self.with_index:
            rows = np.rint(to_numpy(z[:, d + 1])).astype(np.int64)
            state = self.div.select(state, rows)
        v, dv = self.div(x, t, state)
        if not (all_finite(v) and all_finite(dv)):
            what = "velocity" if not all_finite(v) else "divergence"
            raise SolverError(
                f"model: the {what} is non-finite (nan or inf) at t in "
                f"[{np.min(t)!r}, {np.max(t)!r}]; the score model returned non-finite values"
            )
        parts = [v, dv.reshape(-1, 1)]
        if self.with_index:
            parts.append(dv.reshape(-1, 1) * 0.0)
        if is_torch(z):
            import torch

            return torch.cat(parts, dim=1)
        return np.concatenate(parts, axis=1)

    def velocity(self, z, t):
        """Alias of the call, the face ``AdaptiveODESolver.solve`` looks for."""
        return self(z, t)


def _fixed_steps(solver, rhs, z, grid):
    """``solver.step`` along ``grid`` (increasing, eps -> T); every step checked."""
    for i in range(grid.size - 1):
        t, t_next = float(grid[i]), float(grid[i + 1])
        try:
            z_new = solver.step(rhs, z, t, t_next - t)
        except Exception as exc:
            raise SolverError(
                f"method: solver {solver.name!r} raised {type(exc).__name__} at step {i} "
                f"(t = {t!r} -> {t_next!r}): {exc}"
            ) from exc
        if tuple(getattr(z_new, "shape", ())) != tuple(z.shape) or is_torch(z_new) != is_torch(z):
            raise SolverError(
                f"method: solver {solver.name!r} returned {type(z_new).__name__} of shape "
                f"{tuple(getattr(z_new, 'shape', ()))} at step {i}, expected {tuple(z.shape)}"
            )
        if not all_finite(z_new):
            raise SolverError(
                f"method: solver {solver.name!r} returned non-finite values (nan or inf) at step "
                f"{i} (t = {t!r} -> {t_next!r})"
            )
        z = z_new
    return z


def integrate_augmented(x, div, solver, kind, eps, T, rtol, atol, steps, rng):
    """Integrate the augmented ODE from ``eps`` to ``T``.

    Parameters
    ----------
    x : ndarray or Tensor, shape (N, d)
        Start points (the working array kind).
    div : Divergence
        The estimator; its probes are drawn here (``div.prepare(x, rng)``), once.
    solver : AdaptiveODESolver or ODESolver
    kind : {"adaptive", "ode"}
    eps, T : float
    rtol, atol : float
        Adaptive tolerances (scaled per component, see :func:`augmented_tolerances`).
    steps : int or None
        Uniform steps of a fixed-step solver.
    rng : numpy.random.Generator or None

    Returns
    -------
    x_T : (N, d), delta_logp : (N,), nfe : int, n_accepted, n_rejected : int arrays (N,)
    """
    n, d = x.shape
    with_index = div.stochastic
    state = div.prepare(x, rng) if div.stochastic else None
    if with_index and n >= 1 << 24 and str(x.dtype).endswith(("float32", "float16", "bfloat16")):
        # the row index rides in the state; single precision holds integers exactly below 2**24
        raise ValueError("x: single-precision states with stochastic divergences need N < 2**24")
    cols = [np.zeros((n, 1))]
    if with_index:
        cols.append(np.arange(n, dtype=np.float64)[:, None])
    extra = like(np.concatenate(cols, axis=1), x)
    if is_torch(x):
        import torch

        z0 = torch.cat([x, extra], dim=1)
    else:
        z0 = np.concatenate([x, extra], axis=1)
    rhs = AugmentedRHS(div, d, state, with_index)
    if kind == "adaptive":
        r, a = augmented_tolerances(rtol, atol, d, with_index)
        sol = solver.solve(rhs, z0, eps, T, rtol=r, atol=a)
        z, n_acc, n_rej = sol.x, sol.n_accepted, sol.n_rejected
        nfe = sol.nfe
    else:
        z = _fixed_steps(solver, rhs, z0, time_grid("uniform", steps, T, eps)[::-1].copy())
        n_acc, n_rej = np.full(n, steps, dtype=np.int64), np.zeros(n, dtype=np.int64)
        nfe = rhs.nfe
    if not all_finite(z):
        raise SolverError(f"method: solver {solver.name!r} produced non-finite values")
    return z[:, :d], z[:, d], nfe, n_acc, n_rej
