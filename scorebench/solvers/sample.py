r"""The sampling driver: draw from ``p_eps`` by solving the reverse SDE or the probability-flow ODE.

``sample`` validates every argument, builds the :class:`ReverseProblem`, starts from
``x_T ~`` the SDE's default prior (or the given ``x_T``) and runs the chosen solver from ``T``
down to ``eps``:

* an :class:`ODESolver` along a fixed time grid (:func:`~scorebench.solvers.grids.time_grid`),
* an :class:`SDESolver` along the same grid with framework-owned Brownian increments
  (drawn from ``rng`` step by step after the prior draw, or passed in as ``dw``),
* an :class:`AdaptiveODESolver` with ``rtol``/``atol`` and per-sample step control.

Randomness comes only from ``rng`` (a ``numpy.random.Generator``, a ``torch.Generator`` or an
int seed), so a fixed seed gives identical samples on a given backend.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

import numpy as np

from ._arrays import all_finite, is_torch
from .base import SolverError, solver_kind
from .grids import check_eps, check_grid, check_steps, time_grid
from .integrate import brownian_increments, integrate_ode, integrate_sde
from .problem import ReverseProblem, as_score_model
from .registry import get_solver

__all__ = ["SampleResult", "sample", "brownian_increments", "DEFAULT_STEPS", "BACKENDS"]

DEFAULT_STEPS = {"ode": 100, "sde": 1000}
BACKENDS = ("auto", "numpy", "torch", "numba")
#: Batches at least this large take the fused numba sampler under ``backend="auto"``.
NUMBA_MIN_SAMPLES = 4096


@dataclass
class SampleResult:
    """Samples and how they were made.

    Attributes
    ----------
    x : ndarray or Tensor, shape (N, d)
        Samples at ``eps``.
    nfe : int
        Batched score evaluations.
    steps : int
        Grid steps (fixed-step methods) or the largest per-sample accepted step count (adaptive).
    times : ndarray, shape (steps + 1,)
        The time grid (``[T, eps]`` for adaptive methods).
    wall_s : float
        Wall-clock seconds of the solve.
    method : str
        Registered name of the solver used.
    backend : str
        ``"numpy"`` or ``"torch"``.
    path : list or None
        States at every grid time when ``return_path`` (fixed-step methods).
    n_accepted, n_rejected : ndarray of int, shape (N,), or None
        Per-sample step statistics of adaptive methods.
    """

    x: object
    nfe: int
    steps: int
    times: np.ndarray
    wall_s: float
    method: str
    backend: str
    path: list | None = None
    n_accepted: np.ndarray | None = None
    n_rejected: np.ndarray | None = None


def _is_torch_model(model) -> bool:
    inner = getattr(model, "model", model)
    return any(c.__module__.startswith("torch") for c in type(inner).__mro__)


def _select_backend(backend: str, model, x_T, solver, fused: bool = False) -> str:
    """Choose the array backend for one ``sample`` call.

    The single place where ``backend="auto"`` is resolved: torch when the model is a torch
    module or ``x_T`` is a tensor, numpy otherwise. A fused fast path (e.g. numba kernels for the
    oracle) registers here by returning its own backend name for the models and solvers it
    supports; ``sample`` dispatches on the returned name.
    """
    if backend == "auto":
        if is_torch(x_T) or _is_torch_model(model):
            return "torch"
        n = None if x_T is None else x_T.shape[0]
        if fused and n is not None and n >= NUMBA_MIN_SAMPLES:
            return "numba"
        return "numpy"
    if backend == "numpy" and is_torch(x_T):
        raise ValueError("backend: 'numpy' was requested but x_T is a torch tensor")
    if backend == "numba" and not fused:
        raise ValueError(
            "backend: 'numba' is available for a MixtureOracle on its own SDE with the built-in "
            "'em' or 'pc' (EM predictor) methods, numpy x_T, no dw and return_path=False"
        )
    return backend


def _fused_applies(model, sde, solver, x_T, dw, return_path, rng) -> bool:
    """True when the fused numba sampler can run this call (same maths, its own noise stream)."""
    from scorebench.analytic.oracle import MixtureOracle

    from .euler_maruyama import EulerMaruyama
    from .predictor_corrector import PredictorCorrector

    if type(model) is not MixtureOracle or model.sde != sde or dw is not None or return_path:
        return False
    if is_torch(x_T) or (rng is not None and not isinstance(rng, np.random.Generator)):
        return False
    if type(solver) is EulerMaruyama:
        return True
    return type(solver) is PredictorCorrector and solver.predictor == "em"


def _sample_fused(solver, model, x_T, times, rng):
    """Run the fused numba EM / PC sampler; its noise stream is seeded from ``rng``.

    The kernels run in the dtype of ``x_T``: float32 starts are sampled in float32 (time and
    step sizes in float64), as the torch backend does; any other floating dtype in float64.
    """
    from . import fused_sampling_numba as fused
    from .euler_maruyama import EulerMaruyama

    seed = int(rng.integers(2**62))
    dtype = np.float32 if x_T.dtype == np.float32 else np.float64
    x0 = np.asarray(x_T, dtype=dtype)
    if type(solver) is EulerMaruyama:
        x, nfe = fused.em_sample_numba(model, x0, times, seed=seed), times.size - 1
    else:
        x = fused.pc_sample_numba(model, x0, times, snr=solver.snr,
                                  n_corrector=solver.n_corrector, norm=solver.norm,
                                  alpha_factor=solver.alpha_factor, seed=seed)
        nfe = (times.size - 1) * (1 + solver.n_corrector)
    return x.astype(x_T.dtype, copy=False), nfe


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def _check_tol(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number > 0, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return float(value)


def _check_rng(rng):
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if type(rng).__module__.startswith("torch") and type(rng).__name__ == "Generator":
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: expected numpy.random.Generator, torch.Generator or an int seed, "
        f"got {type(rng).__name__}"
    )


def _check_x_T(x_T, n, d):
    shape = tuple(getattr(x_T, "shape", np.shape(x_T)))
    if not is_torch(x_T):
        x_T = np.asarray(x_T)
    floating = x_T.dtype.is_floating_point if is_torch(x_T) else x_T.dtype.kind == "f"
    if not floating:
        raise TypeError(f"x_T: expected a floating-point array, got dtype {x_T.dtype}")
    if len(shape) != 2:
        raise ValueError(f"x_T: expected shape (N, d), got {shape}")
    if n is not None and shape[0] != n:
        raise ValueError(f"x_T: expected shape ({n}, d) to match n = {n}, got {shape}")
    if d is not None and shape[1] != d:
        raise ValueError(f"x_T: expected shape (N, {d}) to match d = {d}, got {shape}")
    if not all_finite(x_T):
        raise ValueError("x_T: contains non-finite entries (nan or inf)")
    return x_T


def _prior(sde, n: int, d: int, rng):
    if rng is None:
        raise ValueError("rng: required to draw x_T from the prior (or pass x_T)")
    if isinstance(rng, np.random.Generator):
        return np.asarray(sde.prior_sample(n, d, rng), dtype=np.float64)
    import torch

    z = torch.randn((n, d), generator=rng, dtype=torch.float64, device=rng.device)
    return z * float(sde.prior_std)


def sample(
    model,
    sde,
    n=None,
    method="euler",
    steps=None,
    rtol=1e-5,
    atol=1e-5,
    eps=1e-3,
    x_T=None,
    rng=None,
    backend="auto",
    grid="uniform",
    d=None,
    return_path=False,
    dw=None,
) -> SampleResult:
    """Draw samples at time ``eps`` by solving the reverse SDE or probability-flow ODE.

    Parameters
    ----------
    model : callable
        Score model ``score(x, t)`` (the oracle, a function, a torch module).
    sde : SDE
        Forward SDE; integration runs from ``sde.T`` down to ``eps``.
    n : int, optional
        Number of samples (from ``x_T`` when it is given).
    method : str, type or solver instance
        A registered name (``"euler"``, ``"heun"``, ``"rk4"``, ``"rk45"``, ``"em"``, ...),
        ``"module:Class"``, ``"file.py:Class"``, a solver class or instance.
    steps : int, optional
        Fixed-step methods only; default :data:`DEFAULT_STEPS` (100 ODE, 1000 SDE steps).
    rtol, atol : float
        Adaptive methods' tolerances (scipy's meaning, per sample).
    eps : float
        Final time, ``0 < eps < T``.
    x_T : ndarray or Tensor, shape (N, d), optional
        Starting points; by default ``sde.prior_sample(n, d, rng)``.
    rng : numpy.random.Generator, torch.Generator or int, optional
        Source of the prior draw and the Brownian increments (required when they are needed).
    backend : {"auto", "numpy", "torch", "numba"}
        ``"numba"``: the fused numba EM / PC samplers (a MixtureOracle on its own SDE, built-in
        ``em`` or ``pc``, numpy ``x_T``, no ``dw``); their noise comes from an in-kernel stream
        seeded from ``rng``, so a fixed seed gives identical samples on that backend, but not
        the same samples as ``"numpy"``. ``"auto"`` takes it for batches of at least
        :data:`NUMBA_MIN_SAMPLES` points, torch for torch inputs, numpy otherwise.
    grid : {"uniform", "quadratic", "karras", "logsnr"} or array_like
        Time grid of fixed-step methods, or an explicit strictly decreasing grid from ``T`` to
        ``eps``; adaptive methods choose their own steps and accept only the default.
    d : int, optional
        Dimension (from ``x_T`` or ``model.d`` when not given).
    return_path : bool
        Keep the state at every grid time (fixed-step methods).
    dw : array_like or Tensor, shape (steps, N, d), optional
        Pre-drawn Brownian increments for SDE methods.

    Returns
    -------
    SampleResult

    Raises
    ------
    ValueError, TypeError
        Invalid arguments (the message names the parameter).
    SolverError
        The solver raised or returned non-finite values (the message names it and the step).

    Examples
    --------
    >>> import numpy as np
    >>> from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle
    >>> oracle = MixtureOracle(GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)]), VPSDE())
    >>> res = sample(oracle, oracle.sde, n=100, method="heun", steps=50, rng=0)
    >>> res.x.shape, res.nfe, float(res.times[-1])
    ((100, 2), 100, 0.001)
    """
    solver = get_solver(method, param="method")
    kind = solver_kind(type(solver))
    problem = ReverseProblem(model, sde)
    T = float(sde.T)
    eps = check_eps(eps, T)
    rtol = _check_tol(rtol, "rtol")
    atol = _check_tol(atol, "atol")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(return_path, bool):
        raise ValueError(f"return_path: expected a bool, got {return_path!r}")
    rng = _check_rng(rng)
    n = None if n is None else _check_int(n, "n")
    d = None if d is None else _check_int(d, "d")
    model_d = as_score_model(model).d
    if d is not None and model_d is not None and d != model_d:
        raise ValueError(f"d: {d} does not match the model's dimension {model_d}")
    if x_T is not None:
        x_T = _check_x_T(x_T, n, d if d is not None else model_d)
        n, d = (int(s) for s in x_T.shape)
    else:
        if n is None:
            raise ValueError("n: required when x_T is not given")
        d = d if d is not None else model_d
        if d is None:
            raise ValueError("d: required when x_T is not given and the model has no .d")

    if kind == "adaptive":
        if steps is not None:
            raise ValueError(
                f"steps: not used by the adaptive method {solver.name!r}; use rtol/atol"
            )
        if not (isinstance(grid, str) and grid == "uniform"):
            raise ValueError(f"grid: not used by the adaptive method {solver.name!r}")
        if return_path:
            raise ValueError(f"return_path: not available for the adaptive method {solver.name!r}")
        times = np.array([T, eps])
    else:
        steps = DEFAULT_STEPS[kind] if steps is None else check_steps(steps)
        if isinstance(grid, str):
            times = time_grid(grid, steps, T, eps, sde=sde)
        else:
            times = check_grid(grid, T, eps)
            if times.size - 1 != steps:
                raise ValueError(f"grid: has {times.size - 1} steps but steps = {steps}")
    if dw is not None and kind != "sde":
        raise ValueError(f"dw: only SDE methods take Brownian increments, not {solver.name!r}")

    fused = kind == "sde" and _fused_applies(model, sde, solver, x_T, dw, return_path, rng)
    start = time.perf_counter()
    if x_T is None and (fused or backend == "numba"):
        x_T = _prior(sde, n, d, rng)
    backend = _select_backend(backend, model, x_T, solver, fused)
    if x_T is None:
        x_T = _prior(sde, n, d, rng)
    if backend == "torch" and not is_torch(x_T):
        import torch

        x_T = torch.from_numpy(np.array(x_T))

    n_acc = n_rej = None
    path = None
    fused_nfe = None
    if backend == "numba":
        if rng is None:
            raise ValueError("rng: required for the Brownian increments")
        x, fused_nfe = _sample_fused(solver, model, x_T, times, rng)
        if not all_finite(x):
            raise SolverError(f"solver {solver.name!r} (fused numba) returned non-finite values")
    elif kind == "ode":
        x, path = integrate_ode(solver, problem, x_T, times, return_path=return_path)
    elif kind == "sde":
        x, path = integrate_sde(
            solver, problem, x_T, times, dw=dw, rng=rng, return_path=return_path
        )
    else:
        try:
            sol = solver.solve(problem, x_T, T, eps, rtol, atol)
        except Exception as exc:
            raise SolverError(
                f"solver {solver.name!r} raised {type(exc).__name__} between t = {T} and "
                f"eps = {eps}: {exc}"
            ) from exc
        if not all_finite(sol.x):
            raise SolverError(f"solver {solver.name!r} returned non-finite values at t = {eps}")
        x, n_acc, n_rej = sol.x, sol.n_accepted, sol.n_rejected
        steps = int(n_acc.max()) if n_acc.size else 0
    wall = time.perf_counter() - start
    return SampleResult(
        x=x,
        nfe=problem.nfe if fused_nfe is None else fused_nfe,
        steps=int(steps),
        times=times,
        wall_s=wall,
        method=solver.name,
        backend=backend,
        path=path,
        n_accepted=n_acc,
        n_rejected=n_rej,
    )
