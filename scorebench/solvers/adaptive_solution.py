"""What an adaptive solve takes and returns: argument checks, the counting wrapper, the result.

:meth:`AdaptiveODESolver.solve <scorebench.solvers.base.AdaptiveODESolver.solve>` does the
bookkeeping with these (scipy's split of a public method from the private implementation), so
every adaptive solver, built in or plugged in, validates and counts the same way.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._arrays import all_finite, is_torch
from .errors import SolverError

__all__ = ["AdaptiveSolution", "CountingFunction", "check_solve_args"]


@dataclass
class AdaptiveSolution:
    """Result of an adaptive solve.

    Attributes
    ----------
    x : ndarray or Tensor, shape (N, m)
        State at ``t1``.
    nfe : int
        Number of (batched) calls of ``f``.
    n_accepted, n_rejected : ndarray of int, shape (N,)
        Accepted and rejected steps of each sample.
    n_evals : ndarray of int, shape (N,)
        Rows of ``f`` evaluated for each sample (its own share of the work).
    """

    x: object
    nfe: int
    n_accepted: np.ndarray
    n_rejected: np.ndarray
    n_evals: np.ndarray = field(default=None)

    @property
    def n_steps(self) -> np.ndarray:
        """Attempted steps per sample (accepted + rejected)."""
        return self.n_accepted + self.n_rejected


class CountingFunction:
    """Wrap ``f(x, t)``: count batched calls (``nfe``) and check the returned shape."""

    def __init__(self, f):
        self.f = f
        self.nfe = 0

    def __call__(self, x, t):
        self.nfe += 1
        out = self.f(x, t)
        if tuple(getattr(out, "shape", ())) != tuple(x.shape):
            raise SolverError(
                f"f: returned shape {tuple(getattr(out, 'shape', ()))} for a state of shape "
                f"{tuple(x.shape)}"
            )
        return out


def _check_tol(value, name: str):
    arr = np.asarray(value, dtype=np.float64) if not is_torch(value) else None
    if arr is None or arr.ndim > 1:
        raise ValueError(f"{name}: expected a positive number or a 1-D array, got {value!r}")
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return float(arr) if arr.ndim == 0 else arr


def check_solve_args(f, x, t0, t1, rtol, atol, first_step, max_steps):
    """Validate the arguments of an adaptive solve; return them normalised.

    ``f`` may be a callable or an object with ``velocity`` (a ReverseProblem); ``x`` a finite
    (N, m) array or tensor; ``t0``, ``t1`` finite reals; ``rtol``, ``atol`` positive scalars or
    (m,) arrays; ``first_step`` None or positive (broadcast to (N,)); ``max_steps`` an int >= 1.
    """
    f = getattr(f, "velocity", f)
    if not callable(f):
        raise TypeError(f"f: expected a callable f(x, t) or a ReverseProblem, got {f!r}")
    if x is None or getattr(x, "ndim", None) != 2:
        raise ValueError(f"x: expected a 2-D (N, m) array, got {getattr(x, 'shape', x)!r}")
    if not all_finite(x):
        raise ValueError("x: contains non-finite entries (nan or inf)")
    times = []
    for name, value in (("t0", t0), ("t1", t1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name}: expected a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value}")
        times.append(float(value))
    rtol = _check_tol(rtol, "rtol")
    atol = _check_tol(atol, "atol")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if np.ndim(tol) == 1 and tol.shape[0] != x.shape[1]:
            raise ValueError(f"{name}: expected shape ({x.shape[1]},), got {tol.shape}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
        raise ValueError(f"max_steps: expected an int >= 1, got {max_steps!r}")
    if first_step is not None:
        first_step = np.broadcast_to(np.asarray(first_step, dtype=np.float64), (x.shape[0],))
        if not np.all(np.isfinite(first_step)) or not np.all(first_step > 0):
            raise ValueError(f"first_step: must be finite and > 0, got {first_step!r}")
        first_step = first_step.copy()
    return f, times[0], times[1], rtol, atol, first_step, int(max_steps)
