r"""``assert_order``: measure a solver's convergence order in a test and fail loudly when it is wrong.

A fixed-step ODE solver is run on the probability-flow ODE of a scenario at several step counts
and its global error at ``eps`` is measured against the exact flow map (one-component scenarios)
or a tight reference solve; an SDE solver's strong error is measured on one Brownian path at
every resolution. The slope of :math:`\log e` against :math:`\log h` is fitted over the
asymptotic range (:func:`~scorebench.verification.orders.fit_order`: points at the round-off or
Monte Carlo floor and pre-asymptotic points are left out) and compared with the declared order
(or ``order``) within a tolerance derived from the fit's confidence interval (at least 0.2 for
ODEs, 0.3 for SDEs) unless ``tolerance`` is given. This is the same measurement and verdict that
``scorebench verify`` reports.
"""

from __future__ import annotations

import math

import numpy as np

from scorebench.solvers.base import solver_kind
from scorebench.solvers.registry import get_solver
from scorebench.verification.orders import fit_order, order_verdict
from scorebench.verification.profiles import get_profile

__all__ = ["assert_order"]


def _steps(steps, name: str) -> tuple:
    arr = np.asarray(steps)
    if arr.ndim != 1 or arr.size < 3:
        raise ValueError(f"steps: expected at least 3 step counts, got {steps!r}")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in steps):
        raise ValueError(f"steps: expected positive integer step counts, got {steps!r}")
    if len(set(int(s) for s in steps)) != len(steps):
        raise ValueError(f"steps: expected distinct step counts, got {steps!r}")
    return tuple(sorted(int(s) for s in steps))


def _measure(solver, kind: str, scenario, steps, seed: int, profile):
    prof = get_profile(profile)
    if kind == "ode":
        from scorebench.verification.measure_ode import measure_ode_global_error

        if steps is not None:
            prof = prof.replace(ode_steps=_steps(steps, "steps"))
        return measure_ode_global_error(solver, scenario, prof, seed)
    if kind == "sde":
        from scorebench.verification.measure_sde import measure_sde_strong_error

        if steps is not None:
            prof = prof.replace(sde_steps=_steps(steps, "steps"))
        return measure_sde_strong_error(solver, scenario, prof, seed)
    raise ValueError(f"solver: expected a fixed-step ODE or SDE solver, got kind {kind!r}")


def assert_order(solver, scenario="gauss2d-vp", steps=None, order=None, tolerance=None, seed=0, *,
                 profile="quick"):
    """Assert that ``solver`` converges with its declared order (or ``order``) on ``scenario``.

    Parameters
    ----------
    solver : str, type or solver instance
        A registered name, ``"package.module:Class"``, ``"path/file.py:Class"``, an
        :class:`~scorebench.solvers.ODESolver` / :class:`~scorebench.solvers.SDESolver` subclass
        or an instance.
    scenario : str
        A scenario name (``scorebench list``); one-component scenarios have an exact reference.
    steps : sequence of int, optional
        Step counts over ``[eps, T]`` (at least 3); default the profile's (``ode_steps`` for ODE
        solvers, ``sde_steps`` for SDE solvers).
    order : float, optional
        Expected order; default the solver's declared ``order`` (ODE) or ``strong_order`` (SDE).
    tolerance : float, optional
        Largest accepted ``|estimated - expected|``; default derived from the fit's 95% CI.
    seed : int
        Seed of the starting points and Brownian paths.
    profile : {"quick", "full"} or Profile
        Batch sizes and the other settings of the measurement.

    Returns
    -------
    ResultRow
        The measurement (estimated order, CI, errors, points left out) when the assertion holds.

    Raises
    ------
    AssertionError
        The estimated order disagrees with the expected one, the fit is inconclusive, or the
        solver raised or returned non-finite values; the message holds the fit and the reason.
    ValueError
        Bad arguments (unknown scenario, adaptive solver, fewer than 3 steps, no order to compare).
    """
    inst = get_solver(solver)
    kind = solver_kind(type(inst))
    if kind not in ("ode", "sde"):
        raise ValueError(f"solver: {inst.name!r} is an adaptive solver; assert_order measures fixed-step ODE "
                         "and SDE solvers (scorebench verify measures tolerance proportionality)")
    declared = getattr(inst, "order", None) if kind == "ode" else getattr(inst, "strong_order", None)
    expected = declared if order is None else order
    if expected is None:
        raise ValueError(f"order: {inst.name!r} declares no order; pass order= explicitly")
    if isinstance(expected, bool) or not math.isfinite(float(expected)) or float(expected) <= 0:
        raise ValueError(f"order: expected a finite positive number, got {expected!r}")
    if tolerance is not None and not (math.isfinite(float(tolerance)) and float(tolerance) > 0):
        raise ValueError(f"tolerance: expected a finite positive number, got {tolerance!r}")
    row = _measure(inst, kind, scenario, steps, seed, profile)
    where = f"{inst.name} on {row.scenario} ({row.metric})"
    if row.verdict == "error":
        raise AssertionError(f"{where}: the solver failed: {row.reason}")
    if order is None and tolerance is None and row.verdict in ("pass", "fail"):
        verdict, reason = row.verdict, row.reason
    else:  # re-judge the same fit against the requested order / tolerance
        verdict, reason = _rejudge(row, float(expected), tolerance, "sde" if kind == "sde" else "ode")
    if verdict != "pass":
        points = ", ".join(f"h={h:.4g}: {e:.4g}" for h, e in zip(row.step_sizes, row.errors))
        left_out = "; ".join(f"h={p.step_size:.4g} ({p.reason})" for p in row.excluded) or "none"
        raise AssertionError(f"{where}: order check failed: {reason}\n  errors: {points}\n  left out: {left_out}")
    return row


def _rejudge(row, expected: float, tolerance, kind: str):
    """Refit the points the measurement kept (same OLS slope and CI) and judge against ``expected``."""
    left_out = {p.index for p in row.excluded}
    used = [i for i in range(len(row.step_sizes)) if i not in left_out]
    h = [row.step_sizes[i] for i in used]
    e = [row.errors[i] for i in used]
    if len(used) < 3:
        return "fail", f"no order estimate: fewer than 3 usable points ({len(used)})"
    # floor 0 and an infinite agreement band: nothing more is left out, so the fit is the row's
    fit = fit_order(h, e, floor=0.0, agreement_abs=math.inf)
    verdict = order_verdict(fit, expected, tolerance, kind=kind)
    return verdict.verdict, verdict.reason
