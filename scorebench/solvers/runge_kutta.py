r"""Explicit Runge–Kutta probability-flow solvers, all run by one stage loop over a tableau.

For a tableau :math:`(c, A, b)` one step of :math:`x' = f(x, t)` is

.. math::

    k_i = f\Big(x + h \sum_{j<i} a_{ij} k_j,\; t + c_i h\Big), \qquad
    x_{new} = x + h \sum_i b_i k_i .

The methods are data: :class:`Euler` (order 1), :class:`Midpoint` (2), :class:`Heun` (2) and
:class:`RK4` (4) only set ``tableau`` (and ``name``); ``order`` is taken from the tableau, whose
order conditions were checked when it was built. States may be numpy arrays or torch tensors;
``t`` and ``h`` may be floats or per-sample float64 arrays of shape (N,).

References
----------
E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I*, 2nd ed.,
Springer 1993, Sec. II.1.
"""

from __future__ import annotations

from ._arrays import coef_like
from .base import ODESolver
from .registry import register_solver
from .tableau import EULER, HEUN, MIDPOINT, RK4, ButcherTableau

__all__ = ["rk_stages", "rk_step", "RungeKuttaSolver", "Euler", "Midpoint", "Heun", "RK4Solver"]


def _combine(x, h, weights, ks):
    """``x + h * sum_j weights[j] * ks[j]`` skipping zero weights; ``h`` float or (N,) array."""
    acc = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            term = float(w) * k
            acc = term if acc is None else acc + term
    if acc is None:
        return x
    return x + coef_like(h, x) * acc


def rk_stages(tableau: ButcherTableau, f, x, t, h, k1=None):
    """Evaluate the stages ``k_1..k_s`` of one explicit RK step.

    Parameters
    ----------
    tableau : ButcherTableau
    f : callable
        ``f(x, t)``.
    x : ndarray or Tensor, shape (N, m)
    t, h : float or ndarray, shape (N,)
        Current time(s) and step(s) (float64).
    k1 : ndarray or Tensor, optional
        ``f(x, t)`` when already known (first-same-as-last reuse).

    Returns
    -------
    list
        The s stage derivatives.
    """
    ks = [f(x, t) if k1 is None else k1]
    for i in range(1, tableau.stages):
        xi = _combine(x, h, tableau.A[i, :i], ks)
        ks.append(f(xi, t + tableau.c[i] * h))
    return ks


def rk_step(tableau: ButcherTableau, f, x, t, h):
    """One explicit RK step; returns the state at ``t + h``."""
    return _combine(x, h, tableau.b, rk_stages(tableau, f, x, t, h))


class RungeKuttaSolver(ODESolver, abstract=True):
    """A fixed-step ODE solver defined by its ``tableau`` (class attribute).

    Subclasses set ``name`` and ``tableau``; ``order`` defaults to ``tableau.order``.
    """

    tableau: ButcherTableau

    def __init_subclass__(cls, **kwargs):
        tab = cls.__dict__.get("tableau")
        if tab is not None:
            if not isinstance(tab, ButcherTableau):
                raise TypeError(f"{cls.__qualname__}: 'tableau' must be a ButcherTableau")
            if "order" not in cls.__dict__:
                cls.order = tab.order
        super().__init_subclass__(**kwargs)

    def step(self, f, x, t, dt):
        return rk_step(self.tableau, f, x, t, dt)


@register_solver
class Euler(RungeKuttaSolver):
    """Explicit Euler on the probability-flow ODE (order 1)."""

    name = "euler"
    tableau = EULER

    def step(self, f, x, t, dt):  # the one-stage loop, without the bookkeeping
        return x + coef_like(dt, x) * f(x, t)


@register_solver
class Midpoint(RungeKuttaSolver):
    """Explicit midpoint rule (order 2)."""

    name = "midpoint"
    tableau = MIDPOINT


@register_solver
class Heun(RungeKuttaSolver):
    """Heun's method, the explicit trapezoidal rule (order 2)."""

    name = "heun"
    tableau = HEUN


@register_solver
class RK4Solver(RungeKuttaSolver):
    """The classical fourth-order Runge–Kutta method."""

    name = "rk4"
    tableau = RK4

