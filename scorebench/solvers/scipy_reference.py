"""A tight reference solver: ``scipy.integrate.solve_ivp`` run on each sample (or small chunk).

The verification suite uses DOP853 at ``rtol = atol = 1e-12`` as the reference trajectory for
mixtures, where no closed-form flow map exists. Integrating each sample on its own (the
default, ``chunk_size=1``) keeps scipy's error norm per sample; a larger ``chunk_size`` flattens
that many samples into one system and controls one RMS norm over all of them (cheaper, but a
single sample's error can then hide behind the others).

Registered as the adaptive solvers ``"scipy-dop853"`` and ``"scipy-rk45"``. ``n_rejected`` is
inferred from scipy's evaluation count (every attempt costs ``n_stages`` evaluations, plus 2 for
the start), since ``solve_ivp`` does not report it.

References
----------
E. Hairer, S. P. Nørsett, G. Wanner, *Solving ODEs I*, Sec. II.10 (DOP853); P. Virtanen et al.,
"SciPy 1.0", Nature Methods 17 (2020).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.integrate import DOP853, RK45, solve_ivp

from ._arrays import is_torch, to_numpy
from .base import AdaptiveODESolver, SolverError
from .registry import register_solver

__all__ = ["solve_ivp_reference", "ScipyDOP853", "ScipyRK45"]

_METHODS = {"DOP853": DOP853, "RK45": RK45}


def solve_ivp_reference(
    f, x, t0, t1, method="DOP853", rtol=1e-12, atol=1e-12, *, chunk_size=1, max_step=np.inf
):
    """Integrate ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with ``scipy.integrate.solve_ivp``.

    Parameters
    ----------
    f : callable
        ``f(y, t)`` with ``y`` (n, m) numpy float64 and ``t`` a float64 array (n,).
    x : array_like, shape (N, m)
        Initial states (torch tensors are converted to numpy float64 and the result converted
        back to the input's dtype and device).
    t0, t1 : float
    method : {"DOP853", "RK45"}
    rtol, atol : float
        Tolerances passed to ``solve_ivp`` (scipy's meaning).
    chunk_size : int
        Samples integrated together as one flattened system (1: strictly per sample).
    max_step : float
        Passed to ``solve_ivp``.

    Returns
    -------
    x1 : ndarray or Tensor, shape (N, m)
    nfe : int
        Total calls of ``f`` (each on one chunk).
    n_accepted, n_rejected : ndarray of int, shape (N,)
        Per chunk, repeated for each of its samples.
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {sorted(_METHODS)}, got {method!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    x_in = x
    x = np.asarray(to_numpy(x), dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D (N, m) array, got shape {x.shape}")
    n, m = x.shape
    out = np.empty_like(x)
    n_acc = np.zeros(n, dtype=np.int64)
    n_rej = np.zeros(n, dtype=np.int64)
    stages = _METHODS[method].n_stages
    nfe = 0
    for start in range(0, n, chunk_size):
        block = x[start : start + chunk_size]
        k = block.shape[0]

        def fun(t, yflat, k=k):
            dy = f(yflat.reshape(k, m), np.full(k, t))
            return np.asarray(to_numpy(dy), dtype=np.float64).reshape(-1)

        sol = solve_ivp(
            fun, (t0, t1), block.reshape(-1), method=method, max_step=max_step,
            rtol=np.tile(rtol, k) if np.ndim(rtol) else rtol,
            atol=np.tile(atol, k) if np.ndim(atol) else atol,
        )
        if sol.status != 0:
            raise SolverError(
                f"scipy-{method.lower()}: solve_ivp failed on samples {start}..{start + k - 1}: "
                f"{sol.message}"
            )
        out[start : start + k] = sol.y[:, -1].reshape(k, m)
        accepted = sol.t.size - 1
        n_acc[start : start + k] = accepted
        n_rej[start : start + k] = max(0, (sol.nfev - 2) // stages - accepted)
        nfe += int(sol.nfev)
    if is_torch(x_in):
        import torch

        return torch.as_tensor(out, dtype=x_in.dtype, device=x_in.device), nfe, n_acc, n_rej
    return out.astype(np.asarray(x_in).dtype, copy=False), nfe, n_acc, n_rej


class _ScipyAdaptive(AdaptiveODESolver, abstract=True):
    method: str
    chunk_size = 1

    def _solve(self, f, x, t0, t1, rtol, atol, first_step, max_steps):
        x1, _, n_acc, n_rej = solve_ivp_reference(
            f, x, t0, t1, method=self.method, rtol=rtol, atol=atol, chunk_size=self.chunk_size
        )
        if np.any(n_acc + n_rej > max_steps):
            raise SolverError(f"{self.name}: more than max_steps = {max_steps} steps")
        n_evals = (n_acc + n_rej) * _METHODS[self.method].n_stages + 2
        return x1, n_acc, n_rej, n_evals


@register_solver
class ScipyDOP853(_ScipyAdaptive):
    """scipy's DOP853 (order 8, error estimators of orders 5 and 3 combined), per sample."""

    name = "scipy-dop853"
    order = 8
    error_order = 7
    method = "DOP853"


@register_solver
class ScipyRK45(_ScipyAdaptive):
    """scipy's RK45 (Dormand–Prince 5(4)), per sample."""

    name = "scipy-rk45"
    order = 5
    error_order = 4
    method = "RK45"
