"""A broken solver that returns NaN: its rows get verdict "error" with a message, the run goes on.

    scorebench verify --solver rk4 --solver examples/nan_solver.py:NaNSolver --profile quick

verifies ``rk4`` as usual, reports ``nan-solver`` with verdict ERROR ("returned non-finite
values") and exits with status 1.
"""

import numpy as np

from scorebench.solvers import ODESolver


class NaNSolver(ODESolver):
    """Declares order 1 and returns NaN from every step."""

    name = "nan-solver"
    order = 1

    def step(self, f, x, t, dt):
        return np.full_like(x, np.nan)
