r"""Euler–Maruyama for the reverse-time SDE.

From ``T`` down to ``eps`` (``dt < 0``) the reverse SDE
:math:`dx = [f(t) x - g(t)^2 \nabla\log p_t(x)]\, dt + g(t)\, d\bar W` is stepped as

.. math:: x_{n+1} = x_n + b(x_n, t_n)\, \Delta t + g(t_n)\, \Delta W_n,
          \qquad \Delta W_n \sim N(0, |\Delta t| I),

with the increments supplied by the framework. The noise is additive (g depends on t only), so
with g in C^1 the scheme coincides with Milstein and has strong order 1.0 as well as weak order
1.0 (Kloeden & Platen, *Numerical Solution of SDEs*, Sec. 10.2 and 14.1).

References
----------
Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
ICLR 2021, Eq. (6).
"""

from __future__ import annotations

from ._arrays import coef_like
from .base import SDESolver
from .registry import register_solver

__all__ = ["EulerMaruyama"]


@register_solver
class EulerMaruyama(SDESolver):
    """Reverse-SDE Euler–Maruyama ("em"): strong order 1.0 (additive noise), weak order 1.0."""

    name = "em"
    strong_order = 1.0
    weak_order = 1.0

    def step(self, drift, g, x, t, dt, dw):
        return x + coef_like(dt, x) * drift(x, t) + coef_like(g(t), x) * dw
