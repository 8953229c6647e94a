r"""A third-order Runge–Kutta solver plugged into scorebench from its own file.

Kutta's third-order method (1901) for :math:`dx/dt = f(x, t)` with step :math:`h`:

.. math::
    k_1 = f(x, t), \quad
    k_2 = f(x + \tfrac h2 k_1,\ t + \tfrac h2), \quad
    k_3 = f(x - h k_1 + 2 h k_2,\ t + h), \qquad
    x_{n+1} = x + \tfrac h6 (k_1 + 4 k_2 + k_3).

Its Butcher tableau satisfies every order condition up to 3 (:math:`\sum b_i = 1`,
:math:`\sum b_i c_i = 1/2`, :math:`\sum b_i c_i^2 = 1/3`, :math:`\sum b_i a_{ij} c_j = 1/6`) and
none of order 4, so its global error is :math:`O(h^3)`. Here ``f`` is the probability-flow
velocity and ``dt < 0`` (sampling runs from ``T`` down to ``eps``); nothing in the step needs to
know that.

Verify it with no change to scorebench::

    scorebench verify --solver examples/rk3_solver.py:RK3 --profile quick --out rk3-report

The report's ``global_error`` rows should show an estimated order close to 3 and verdict PASS.

References
----------
Kutta, W. (1901). Beitrag zur näherungsweisen Integration totaler Differentialgleichungen.
*Z. Math. Phys.* 46, 435–453.
"""

from scorebench.solvers import ODESolver, register_solver


@register_solver
class RK3(ODESolver):
    """Kutta's third-order Runge–Kutta method (three evaluations of ``f`` per step)."""

    name = "kutta-rk3"
    order = 3

    def step(self, f, x, t, dt):
        k1 = f(x, t)
        k2 = f(x + (0.5 * dt) * k1, t + 0.5 * dt)
        k3 = f(x + dt * (2.0 * k2 - k1), t + dt)
        return x + (dt / 6.0) * (k1 + 4.0 * k2 + k3)
