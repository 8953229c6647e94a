r"""A stochastic scheme plugged into scorebench from its own file: stochastic Heun.

For the reverse SDE :math:`dx = b(x, t)\,dt + g(t)\,d\bar W` (additive noise:
:math:`g` does not depend on ``x``), with the framework's Brownian increment
:math:`\Delta W \sim N(0, |h| I)`, the stochastic Heun (improved Euler) scheme is a predictor
and a trapezoidal corrector:

.. math::
    \tilde x = x + b(x, t)\, h + g(t)\, \Delta W, \qquad
    x_{n+1} = x + \tfrac12 \big(b(x, t) + b(\tilde x, t + h)\big) h
              + \tfrac12 \big(g(t) + g(t + h)\big) \Delta W .

With additive noise the Itô and Stratonovich forms coincide and the scheme converges with strong
order 1 (Rümelin 1982; Kloeden & Platen 1992, §11.1) and weak order 2: expanding the corrector's
:math:`b(\tilde x)` reproduces the :math:`h^2` terms of the weak order-2 Taylor scheme in
expectation, and :math:`\tfrac12 (g(t) + g(t+h)) \Delta W` matches :math:`\int g\, dW` up to a
term of variance :math:`O(h^3)`. Both orders are declared and both are measured by the suite: the
strong order on one Brownian path at every resolution, the weak order on the scheme's exact law
(Gaussian data, no Monte Carlo noise).

Verify it with no change to scorebench::

    scorebench verify --solver examples/stochastic_heun.py:StochasticHeun --profile quick

References
----------
Rümelin, W. (1982). Numerical treatment of stochastic differential equations.
*SIAM J. Numer. Anal.* 19(3), 604–613.
Kloeden, P. E. & Platen, E. (1992). *Numerical Solution of Stochastic Differential Equations*.
"""

from scorebench.solvers import SDESolver, register_solver


@register_solver
class StochasticHeun(SDESolver):
    """Stochastic Heun for additive noise (two drift evaluations per step)."""

    name = "stochastic-heun"
    strong_order = 1.0
    weak_order = 2.0

    def step(self, drift, g, x, t, dt, dw):
        b0 = drift(x, t)
        noise = dw * (0.5 * (g(t) + g(t + dt)))
        x_pred = x + b0 * dt + dw * g(t)
        return x + (b0 + drift(x_pred, t + dt)) * (0.5 * dt) + noise
