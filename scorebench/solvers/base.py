r"""Plug-in base classes: what a solver must declare and implement to run in scorebench.

A fixed-step probability-flow solver subclasses :class:`ODESolver`, declares ``name`` and
``order`` and implements ``step(f, x, t, dt)``, returning the state at ``t + dt`` of
:math:`dx/dt = f(x, t)`, :math:`f = v(x, t) = f(t) x - \tfrac12 g(t)^2 \nabla\log p_t(x)`.
Sampling runs from ``T`` down to ``eps``, so ``dt < 0``.

A reverse-SDE solver subclasses :class:`SDESolver`, declares ``name``, ``strong_order`` and
``weak_order`` and implements ``step(drift, g, x, t, dt, dw)`` for
:math:`dx = [f(t) x - g(t)^2 \nabla\log p_t(x)]\, dt + g(t)\, d\bar W`, where
``dw ~ N(0, |dt| I)`` is drawn by the framework (so strong errors can be measured on one
Brownian path at several resolutions).

Schemes that need more than the velocity or the drift (exponential integrators that use the score
and the SDE's coefficients, Langevin correctors that draw extra noise) override the richer hook
``advance``, whose default implementation routes to ``step``. Adaptive solvers subclass
:class:`AdaptiveODESolver`; its public :meth:`AdaptiveODESolver.solve` validates and counts, and
the method lives in the private ``_solve`` (scipy's ``step``/``_step_impl`` split).

The contract is checked when a class is defined (and again when it is registered or loaded):
a missing ``name``, a missing or invalid declared order, or no ``step``/``advance``
implementation raises ``TypeError`` naming what is missing. Intermediate base classes that are
not solvers themselves are declared with ``class Base(ODESolver, abstract=True)``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .adaptive_solution import AdaptiveSolution, CountingFunction, check_solve_args
from .errors import SolverError

__all__ = [
    "SolverError",
    "ODESolver",
    "SDESolver",
    "AdaptiveODESolver",
    "AdaptiveSolution",
    "validate_solver_class",
    "solver_kind",
]


# ----------------------------------------------------------------------------------------------
# contract checks
# ----------------------------------------------------------------------------------------------
def _check_name(cls) -> None:
    name = getattr(cls, "name", None)
    if name is None:
        raise TypeError(f"{cls.__qualname__}: missing class attribute 'name' (a non-empty str)")
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{cls.__qualname__}: 'name' must be a non-empty str, got {name!r}")
    if name != name.strip() or any(ch.isspace() for ch in name) or ":" in name:
        raise TypeError(
            f"{cls.__qualname__}: 'name' must contain no whitespace and no ':', got {name!r}"
        )


def _check_int_order(cls, attr: str) -> None:
    if not hasattr(cls, attr):
        raise TypeError(f"{cls.__qualname__}: missing class attribute '{attr}' (an int >= 1)")
    value = getattr(cls, attr)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise TypeError(f"{cls.__qualname__}: '{attr}' must be an int >= 1, got {value!r}")


def _check_real_order(cls, attr: str) -> None:
    if not hasattr(cls, attr):
        raise TypeError(
            f"{cls.__qualname__}: missing class attribute '{attr}' "
            "(a finite number > 0, or None for a scheme without a convergence order)"
        )
    value = getattr(cls, attr)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise TypeError(
            f"{cls.__qualname__}: '{attr}' must be a finite number > 0 or None, got {value!r}"
        )


def _overrides(cls, base, method: str) -> bool:
    return getattr(cls, method, None) is not getattr(base, method)


def solver_kind(cls) -> str:
    """``"ode"``, ``"sde"`` or ``"adaptive"`` for a solver class; TypeError for anything else."""
    if isinstance(cls, type):
        if issubclass(cls, AdaptiveODESolver):
            return "adaptive"
        if issubclass(cls, ODESolver):
            return "ode"
        if issubclass(cls, SDESolver):
            return "sde"
    what = cls.__qualname__ if isinstance(cls, type) else repr(cls)
    raise TypeError(
        f"{what}: a solver must be a subclass of scorebench.solvers.ODESolver, SDESolver or "
        "AdaptiveODESolver"
    )


def validate_solver_class(cls) -> type:
    """Check that ``cls`` satisfies the plug-in contract; return it, or raise ``TypeError``.

    Checks: ``cls`` is a class derived from one of the three bases, is not declared abstract,
    has a ``name`` (non-empty, no whitespace or ':'), declares its orders (``order`` for ODE
    solvers, ``strong_order`` and ``weak_order`` for SDE solvers, ``order`` and ``error_order``
    for adaptive ones) and implements ``step`` (or ``advance``; ``_solve`` or ``solve`` for
    adaptive solvers).
    """
    kind = solver_kind(cls)
    if cls.__dict__.get("_abstract", False):
        raise TypeError(
            f"{cls.__qualname__}: declared abstract=True; it cannot be used as a solver"
        )
    _check_name(cls)
    if kind == "ode":
        _check_int_order(cls, "order")
        if not (_overrides(cls, ODESolver, "step") or _overrides(cls, ODESolver, "advance")):
            raise TypeError(
                f"{cls.__qualname__}: missing method 'step(self, f, x, t, dt)' "
                "(or the richer hook 'advance(self, problem, x, t, dt)')"
            )
    elif kind == "sde":
        _check_real_order(cls, "strong_order")
        _check_real_order(cls, "weak_order")
        if not (_overrides(cls, SDESolver, "step") or _overrides(cls, SDESolver, "advance")):
            raise TypeError(
                f"{cls.__qualname__}: missing method 'step(self, drift, g, x, t, dt, dw)' "
                "(or the richer hook 'advance(self, problem, x, t, dt, dw, rng)')"
            )
    else:
        _check_int_order(cls, "order")
        _check_int_order(cls, "error_order")
        if not (
            _overrides(cls, AdaptiveODESolver, "_solve")
            or _overrides(cls, AdaptiveODESolver, "solve")
        ):
            raise TypeError(
                f"{cls.__qualname__}: missing method '_solve(self, f, x, t0, t1, rtol, atol, "
                "first_step, max_steps)'"
            )
    return cls


class _SolverBase:
    """Shared machinery: contract check at class definition unless ``abstract=True``."""

    kind = "base"

    def __init_subclass__(cls, abstract: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._abstract = bool(abstract)
        if not abstract:
            validate_solver_class(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={getattr(self, 'name', '?')!r})"


# ----------------------------------------------------------------------------------------------
# fixed-step probability-flow ODE solvers
# ----------------------------------------------------------------------------------------------
class ODESolver(_SolverBase, abstract=True):
    """Base class of fixed-step probability-flow ODE solvers.

    Attributes
    ----------
    name : str
        Registry name (no whitespace, no ':').
    order : int
        Declared order of the global error, ``O(h^order)``; the verification suite measures it.

    Notes
    -----
    Subclasses implement :meth:`step`. Schemes that need the score or the SDE itself override
    :meth:`advance`, which receives a :class:`~scorebench.solvers.problem.ReverseProblem`.
    """

    name: str
    order: int
    kind = "ode"

    def step(self, f, x, t, dt):
        """Return the state at ``t + dt`` of ``dx/dt = f(x, t)``.

        Parameters
        ----------
        f : callable
            ``f(x, t)``, the probability-flow velocity; ``x`` of shape (N, d), ``t`` a float or a
            float64 array of shape (N,).
        x : ndarray or Tensor, shape (N, d)
        t : float
            Current time.
        dt : float
            Step, negative when integrating from ``T`` down to ``eps``.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement step")

    def advance(self, problem, x, t, dt):
        """Richer hook: one step with access to the whole problem (score, SDE, NFE counter).

        The default calls ``self.step(problem.velocity, x, t, dt)``.
        """
        return self.step(problem.velocity, x, t, dt)


# ----------------------------------------------------------------------------------------------
# reverse-SDE solvers
# ----------------------------------------------------------------------------------------------
class SDESolver(_SolverBase, abstract=True):
    """Base class of fixed-step reverse-SDE solvers.

    Attributes
    ----------
    name : str
    strong_order, weak_order : float or None
        Declared strong and weak orders (``None`` for a scheme without an order in h, such as a
        predictor-corrector sampler whose Langevin step does not shrink with ``dt``).

    Notes
    -----
    Subclasses implement :meth:`step`; correctors that draw extra noise override :meth:`advance`
    and use its ``rng`` (a ``numpy.random.Generator`` for numpy states, a ``torch.Generator`` or
    ``None`` for torch states).
    """

    name: str
    strong_order: float | None
    weak_order: float | None
    kind = "sde"

    def step(self, drift, g, x, t, dt, dw):
        """Return the state at ``t + dt`` of the reverse SDE ``dx = drift dt + g dW``.

        Parameters
        ----------
        drift : callable
            ``drift(x, t) = f(t) x - g(t)^2 score(x, t)``, the reverse-SDE drift.
        g : callable
            ``g(t)``, the diffusion coefficient (a float for a float ``t``).
        x : ndarray or Tensor, shape (N, d)
        t, dt : float
            Current time and (negative) step.
        dw : ndarray or Tensor, shape (N, d)
            Brownian increment, ``N(0, |dt| I)``, supplied by the framework.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement step")

    def advance(self, problem, x, t, dt, dw, rng):
        """Richer hook; the default calls ``self.step(problem.reverse_drift, problem.g, ...)``."""
        return self.step(problem.reverse_drift, problem.g, x, t, dt, dw)


# ----------------------------------------------------------------------------------------------
# adaptive ODE solvers
# ----------------------------------------------------------------------------------------------
class AdaptiveODESolver(_SolverBase, abstract=True):
    """Base class of adaptive (error-controlled) ODE solvers.

    Attributes
    ----------
    name : str
    order : int
        Order of the propagated solution.
    error_order : int
        Order of the embedded solution used for the error estimate.

    Notes
    -----
    :meth:`solve` validates the arguments, wraps ``f`` to count (batched) evaluations and check
    their shape, and calls ``self._solve(f, x, t0, t1, rtol, atol, first_step, max_steps)``,
    which subclasses implement and which returns ``(x1, n_accepted, n_rejected, n_evals)``.
    """

    name: str
    order: int
    error_order: int
    kind = "adaptive"

    def solve(self, f, x, t0, t1, rtol=1e-5, atol=1e-5, *, first_step=None, max_steps=10_000):
        """Integrate ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with per-sample error control.

        Parameters
        ----------
        f : callable or ReverseProblem
            ``f(x, t)`` mapping an (n, m) state and an (n,) float64 time array to (n, m); a
            :class:`~scorebench.solvers.problem.ReverseProblem` stands for its ``velocity``.
        x : ndarray or Tensor, shape (N, m)
            Initial state at ``t0`` (finite).
        t0, t1 : float
            Start and end times (``t1 < t0`` integrates backwards).
        rtol, atol : float or array_like, shape (m,)
            Relative and absolute tolerances, meaning what they mean in scipy: the error of each
            sample is the RMS over its m components of
            ``err / (atol + rtol max(|y_old|, |y_new|))``.
        first_step : float or array_like, shape (N,), optional
            Initial step magnitude; by default Hairer's initial-step selection.
        max_steps : int
            Most attempted steps per sample before :class:`SolverError` is raised.

        Returns
        -------
        AdaptiveSolution
        """
        f, t0, t1, rtol, atol, first_step, max_steps = check_solve_args(
            f, x, t0, t1, rtol, atol, first_step, max_steps
        )
        counter = CountingFunction(f)
        n = x.shape[0]
        if t0 == t1 or n == 0:
            zeros = np.zeros(n, dtype=np.int64)
            return AdaptiveSolution(x, 0, zeros, zeros.copy(), zeros.copy())
        x1, n_acc, n_rej, n_evals = self._solve(
            counter, x, t0, t1, rtol, atol, first_step, max_steps
        )
        return AdaptiveSolution(x1, counter.nfe, n_acc, n_rej, n_evals)

    def _solve(self, f, x, t0, t1, rtol, atol, first_step, max_steps):
        raise NotImplementedError(f"{type(self).__qualname__} does not implement _solve")
