r"""Adaptive Dormand–Prince 5(4) with per-sample step sizes for batched solves.

Every sample of the batch carries its own time :math:`t_i` and step :math:`h_i`; the active
samples advance together, each stage being one vectorised call ``f(y, t_vec)`` with ``y`` of
shape (n_active, m) and ``t_vec`` of shape (n_active,). The error of each sample is controlled
on its own (:mod:`scorebench.solvers.step_control`), so one hard sample cannot make the others
take tiny steps and no sample's error hides in a batch-wide norm; samples that reach ``t1`` leave
the active set, so no work is wasted on them.

The stepper is the 7-stage Dormand–Prince pair (:data:`~scorebench.solvers.tableau.DOPRI5`):
the 5th-order solution is propagated (local extrapolation), the 4th-order one gives the error
estimate :math:`h\sum_i e_i k_i`, and the last stage, evaluated at the new solution, is the first
stage of the next step (FSAL), so an attempted step costs 6 evaluations. Because ``f`` maps
(n, m) to (n, m) for any m, augmented states such as (x, log p) of shape (N, d+1) go through the
same solver.

Guards: a step below ten units in the last place of ``t`` raises :class:`SolverError`
(step-size underflow: a stiff problem, a tolerance beyond float64, or non-finite values of
``f``), as does a sample needing more than ``max_steps`` attempts. Neither loops forever.

References
----------
J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math.
6 (1980) 19-26. E. Hairer, S. P. Nørsett, G. Wanner, *Solving ODEs I*, Sec. II.4-5.
"""

from __future__ import annotations

import numpy as np

from ._arrays import coef_like, copy, index_rows, is_torch, where_rows
from .base import AdaptiveODESolver, SolverError
from .registry import register_solver
from .step_control import StepController, error_norm, initial_step
from .tableau import DOPRI5, ButcherTableau

__all__ = ["embedded_rk_solve", "DormandPrince45"]


def _weighted_sum(weights, ks):
    acc = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            term = float(w) * k
            acc = term if acc is None else acc + term
    return acc


def _attempt(tableau: ButcherTableau, f, y, t, h, k1):
    """One attempted step of every active sample: (y_new, error estimate, last stage)."""
    ks = [k1]
    y_new = None
    for i in range(1, tableau.stages):
        yi = y + coef_like(h, y) * _weighted_sum(tableau.A[i, :i], ks)
        if tableau.fsal and i == tableau.stages - 1:
            y_new = yi  # A[-1] == b: the last stage input is the new solution
        ks.append(f(yi, t + tableau.c[i] * h))
    if y_new is None:
        y_new = y + coef_like(h, y) * _weighted_sum(tableau.b, ks)
    err = coef_like(h, y) * _weighted_sum(tableau.b_err, ks)
    return y_new, err, ks[-1]


def embedded_rk_solve(
    tableau: ButcherTableau,
    f,
    x,
    t0: float,
    t1: float,
    rtol,
    atol,
    *,
    controller: StepController | None = None,
    first_step=None,
    max_steps: int = 10_000,
    name: str = "rk45",
):
    """Integrate ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with per-sample adaptive steps.

    Parameters
    ----------
    tableau : ButcherTableau
        An embedded pair (``b_err`` and ``error_order`` set).
    f : callable
        ``f(y, t)`` with ``y`` (n, m) and ``t`` a float64 array (n,); returns (n, m).
    x : ndarray or Tensor, shape (N, m)
    t0, t1 : float
    rtol, atol : float or ndarray, shape (m,)
    controller : StepController, optional
        Defaults to ``StepController(tableau.error_order)``.
    first_step : ndarray, shape (N,), optional
        Initial step magnitudes (Hairer's selection otherwise).
    max_steps : int
        Most attempted steps per sample.
    name : str
        Solver name used in error messages.

    Returns
    -------
    x1 : ndarray or Tensor, shape (N, m)
    n_accepted, n_rejected, n_evals : ndarray of int, shape (N,)
    """
    if tableau.b_err is None:
        raise ValueError(f"tableau: {tableau.name!r} has no error weights (b_err)")
    controller = controller or StepController(tableau.error_order)
    n = x.shape[0]
    direction = 1.0 if t1 > t0 else -1.0
    lo, hi = min(t0, t1), max(t0, t1)
    interval = hi - lo

    def fc(y, t):  # stage times never leave [t0, t1], even by one ulp
        return f(y, np.clip(t, lo, hi))

    out = copy(x)
    n_acc = np.zeros(n, dtype=np.int64)
    n_rej = np.zeros(n, dtype=np.int64)
    n_evals = np.zeros(n, dtype=np.int64)
    act = np.arange(n)
    y = x
    t = np.full(n, float(t0))
    k1 = fc(y, t)
    n_evals += 1
    if first_step is None:
        h = initial_step(fc, t0, y, k1, direction, tableau.error_order, rtol, atol, interval)
        n_evals += 1
    else:
        h = np.minimum(np.asarray(first_step, dtype=np.float64), interval)
    rejected_before = np.zeros(n, dtype=bool)
    cost = tableau.stages - 1 if tableau.fsal else tableau.stages

    while act.size:
        remaining = np.abs(t1 - t)
        min_step = 10.0 * np.abs(np.nextafter(t, direction * np.inf) - t)
        last = (h >= remaining) | (remaining <= min_step)
        h_abs = np.where(last, remaining, h)
        tiny = ~last & (h_abs < min_step)
        if tiny.any():
            i = int(np.flatnonzero(tiny)[0])
            raise SolverError(
                f"{name}: step size underflow for sample {int(act[i])} at t = {float(t[i])!r} "
                f"(h = {h_abs[i]:.3e} is below 10 ulp of t); the problem is too stiff for "
                f"rtol = {rtol}, atol = {atol}, or f returned non-finite values"
            )
        hs = direction * h_abs
        if k1 is None:
            k1 = fc(y, t)
        y_new, err, k_last = _attempt(tableau, fc, y, t, hs, k1)
        n_evals[act] += cost
        en = error_norm(err, y, y_new, rtol, atol)
        accept, factor = controller.decide(en, rejected_before)
        n_acc[act[accept]] += 1
        n_rej[act[~accept]] += 1
        over = (n_acc[act] + n_rej[act]) >= max_steps
        if over.any() and not np.all(accept[over] & last[over]):
            i = int(np.flatnonzero(over & ~(accept & last))[0])
            raise SolverError(
                f"{name}: sample {int(act[i])} reached max_steps = {max_steps} attempted steps "
                f"at t = {t[i]!r} (h = {h_abs[i]:.3e}); raise max_steps or loosen rtol/atol"
            )
        y = where_rows(accept, y_new, y)
        k1 = where_rows(accept, k_last, k1) if tableau.fsal else None
        t = np.where(accept, np.where(last, t1, t + hs), t)
        h = h_abs * factor
        rejected_before = ~accept
        done = accept & last
        if done.any():
            rows = act[done]
            if is_torch(out):
                import torch

                out[torch.as_tensor(rows, device=out.device)] = index_rows(y, np.flatnonzero(done))
            else:
                out[rows] = y[done]
            keep = np.flatnonzero(~done)
            act, t, h, rejected_before = act[keep], t[keep], h[keep], rejected_before[keep]
            y = index_rows(y, keep)
            if k1 is not None:
                k1 = index_rows(k1, keep)
    return out, n_acc, n_rej, n_evals


@register_solver
class DormandPrince45(AdaptiveODESolver):
    """Adaptive Dormand–Prince 5(4) ("rk45"): FSAL, per-sample step control.

    See :func:`embedded_rk_solve`; ``rtol``/``atol`` mean what they mean in scipy, applied to
    each sample separately.
    """

    name = "rk45"
    order = 5
    error_order = 4
    tableau = DOPRI5

    def _solve(self, f, x, t0, t1, rtol, atol, first_step, max_steps):
        return embedded_rk_solve(
            self.tableau,
            f,
            x,
            t0,
            t1,
            rtol,
            atol,
            controller=StepController(self.tableau.error_order),
            first_step=first_step,
            max_steps=max_steps,
            name=self.name,
        )
