r"""A deliberately wrong solver: it declares order 2 but is only first order. Verification must FAIL.

Heun's method (the explicit trapezoidal rule) is :math:`x + h(\tfrac12 k_1 + \tfrac12 k_2)` with
:math:`k_2 = f(x + h k_1, t + h)`. Here the weights are altered to :math:`(0.6, 0.4)`: they still
sum to 1, so the scheme is consistent and converges, but the second-order condition
:math:`\sum_i b_i c_i = 1/2` becomes :math:`0.4 \ne 1/2`, so the local error is
:math:`(0.4 - 0.5)\, h^2 f' f + O(h^3)` and the global error is only :math:`O(h)`.

    scorebench verify --solver examples/wrong_order_solver.py:WrongOrderHeun --profile quick

reports an estimated order near 1 against the declared 2: verdict FAIL, exit status 1.
"""

from scorebench.solvers import ODESolver


class WrongOrderHeun(ODESolver):
    """Heun's method with its weights changed from (1/2, 1/2) to (0.6, 0.4); declares order 2."""

    name = "wrong-order-heun"
    order = 2  # wrong on purpose: the scheme is first order

    def step(self, f, x, t, dt):
        k1 = f(x, t)
        k2 = f(x + dt * k1, t + dt)
        return x + dt * (0.6 * k1 + 0.4 * k2)
