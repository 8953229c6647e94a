"""Fixed-grid integration loops and the Brownian increments the framework owns.

The framework, not the solver, owns the time grid and the noise: :func:`integrate_sde` takes
increments either drawn step by step from ``rng`` or pre-drawn by the caller, so the
verification suite can pass increments summed from a finer path (coarse increment = sum of the
fine ones) and measure strong errors on one Brownian path at every resolution.
:func:`brownian_increments` draws exactly what the step-by-step stream draws from the same
generator state.

Every step is checked: a solver that raises, returns the wrong shape or non-finite values
raises :class:`~scorebench.solvers.base.SolverError` naming the solver, the step and its times.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._arrays import all_finite, is_torch
from .base import SolverError

__all__ = ["brownian_increments", "integrate_ode", "integrate_sde"]


def _grid_steps(grid) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)):
        raise ValueError(f"grid: expected a finite 1-D array of >= 2 times, got shape {g.shape}")
    dt = np.diff(g)
    if not (np.all(dt < 0) or np.all(dt > 0)):
        raise ValueError("grid: must be strictly monotone")
    return g


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def _increment_stream(rng, n: int, d: int, grid: np.ndarray, like):
    """Yield the increments ``dW_i ~ N(0, |t_{i+1} - t_i| I)``, shape (n, d), one step at a time.

    numpy generators draw float64 normals (cast to the state's dtype, converted to a tensor for
    torch states); torch generators draw directly in the state's dtype on the generator's device.
    """
    torch_rng = type(rng).__module__.startswith("torch")
    if torch_rng:
        import torch

        dtype = like.dtype if is_torch(like) else torch.float64
        if like is not None and not is_torch(like):
            raise TypeError("rng: a torch.Generator needs a torch state; got a numpy array")
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: expected numpy.random.Generator or torch.Generator, got {type(rng).__name__}"
        )
    for i in range(grid.size - 1):
        scale = math.sqrt(abs(float(grid[i + 1]) - float(grid[i])))
        if torch_rng:
            z = torch.randn((n, d), generator=rng, dtype=dtype, device=rng.device)
            yield (z if like is None else z.to(like.device)) * scale
            continue
        z = rng.standard_normal((n, d)) * scale
        if like is None:
            yield z
        elif is_torch(like):
            import torch

            yield torch.as_tensor(z, dtype=like.dtype, device=like.device)
        else:
            yield z.astype(like.dtype, copy=False)


def brownian_increments(rng, n: int, d: int, grid):
    """Brownian increments on ``grid``: array of shape (steps, n, d), ``dW_i ~ N(0, |dt_i| I)``.

    Parameters
    ----------
    rng : numpy.random.Generator or torch.Generator
    n, d : int
        Number of paths and dimension.
    grid : array_like, shape (steps + 1,)
        Strictly monotone times.

    Returns
    -------
    ndarray (float64) or Tensor (float64, on the generator's device)
        The same numbers :func:`integrate_sde` draws step by step from the same generator state.
        Sum consecutive blocks of a fine path's increments to get a coarse path's.
    """
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    g = _grid_steps(grid)
    parts = list(_increment_stream(rng, n, d, g, None))
    if parts and is_torch(parts[0]):
        import torch

        return torch.stack(parts)
    return np.stack(parts)


def _fail(solver, i: int, t: float, t_next: float, what: str) -> SolverError:
    return SolverError(
        f"solver {solver.name!r} {what} at step {i} (t = {t!r} -> {t_next!r})"
    )


def _check_step(solver, x_new, x, i, t, t_next):
    if getattr(x_new, "shape", None) is None or tuple(x_new.shape) != tuple(x.shape):
        raise _fail(
            solver, i, t, t_next,
            f"returned shape {tuple(getattr(x_new, 'shape', ()))}, expected {tuple(x.shape)}",
        )
    if is_torch(x_new) != is_torch(x):
        raise _fail(
            solver, i, t, t_next,
            f"returned a {type(x_new).__name__} for a {type(x).__name__}",
        )
    if not all_finite(x_new):
        raise _fail(solver, i, t, t_next, "returned non-finite values (nan or inf)")


def integrate_ode(solver, problem, x, grid, *, return_path: bool = False):
    """Run a fixed-step ODE solver along ``grid`` (``solver.advance(problem, x, t, dt)``).

    Returns
    -------
    x : ndarray or Tensor, shape (N, d)
        State at ``grid[-1]``.
    path : list or None
        The states at every grid time (``steps + 1`` of them) when ``return_path``.
    """
    g = _grid_steps(grid)
    path = [x] if return_path else None
    for i in range(g.size - 1):
        t, t_next = float(g[i]), float(g[i + 1])
        try:
            x_new = solver.advance(problem, x, t, t_next - t)
        except Exception as exc:
            raise _fail(solver, i, t, t_next, f"raised {type(exc).__name__}: {exc}") from exc
        _check_step(solver, x_new, x, i, t, t_next)
        x = x_new
        if return_path:
            path.append(x)
    return x, path


def integrate_sde(solver, problem, x, grid, *, dw=None, rng=None, return_path: bool = False):
    """Run a fixed-step SDE solver along ``grid`` with framework-owned Brownian increments.

    Parameters
    ----------
    solver : SDESolver
    problem : ReverseProblem
    x : ndarray or Tensor, shape (N, d)
    grid : array_like, shape (steps + 1,)
    dw : array_like or Tensor, shape (steps, N, d), optional
        Pre-drawn increments (e.g. sums of a finer path's); drawn from ``rng`` otherwise.
    rng : numpy.random.Generator or torch.Generator, optional
        Source of the increments when ``dw`` is None; also passed to ``advance`` (correctors).
    return_path : bool

    Returns
    -------
    x, path
        As for :func:`integrate_ode`.
    """
    g = _grid_steps(grid)
    n, d = x.shape
    steps = g.size - 1
    if dw is None:
        if rng is None:
            raise ValueError("rng: required to draw Brownian increments when dw is not given")
        stream = _increment_stream(rng, n, d, g, x)
    else:
        if tuple(getattr(dw, "shape", np.shape(dw))) != (steps, n, d):
            raise ValueError(
                f"dw: expected shape ({steps}, {n}, {d}), got {tuple(np.shape(dw))}"
            )
        if not all_finite(dw):
            raise ValueError("dw: contains non-finite entries (nan or inf)")
        stream = (_as_state_like(dw[i], x) for i in range(steps))
    path = [x] if return_path else None
    for i, dw_i in enumerate(stream):
        t, t_next = float(g[i]), float(g[i + 1])
        try:
            x_new = solver.advance(problem, x, t, t_next - t, dw_i, rng)
        except Exception as exc:
            raise _fail(solver, i, t, t_next, f"raised {type(exc).__name__}: {exc}") from exc
        _check_step(solver, x_new, x, i, t, t_next)
        x = x_new
        if return_path:
            path.append(x)
    return x, path


def _as_state_like(a, x):
    if is_torch(x):
        import torch

        return torch.as_tensor(a, dtype=x.dtype, device=x.device)
    if is_torch(a):
        a = a.detach().to("cpu").numpy()
    return np.asarray(a, dtype=x.dtype)
