"""The exception solvers raise when a solve fails (re-exported by ``scorebench.solvers.base``)."""

from __future__ import annotations

__all__ = ["SolverError"]


class SolverError(RuntimeError):
    """A solver raised, returned non-finite values, or could not finish (step-size underflow).

    The message names the solver and where it failed (step index and times, or the sample and
    time of a step-size underflow).
    """
