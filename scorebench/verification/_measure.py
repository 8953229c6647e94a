r"""Shared machinery of the measurement functions: solver resolution, seeding, error rows, fits.

Every measurement is a picklable top-level function ``measure_*(solver, scenario, profile, seed)``
returning a :class:`~scorebench.verification.report.ResultRow`. :func:`run_measurement` resolves
the solver and the scenario, calls the body and turns anything the solver raises (or a
non-finite result, which the integration loops report as
:class:`~scorebench.solvers.base.SolverError`) into a row with verdict ``"error"`` and the message,
so a suite goes on past a broken solver.

Randomness: every stream is ``np.random.default_rng(SeedSequence(seed, spawn_key=(crc32(scenario),
crc32(purpose))))``. It depends on the seed, the scenario and the purpose ("x_T", "brownian", ...)
but not on the solver or the executor, so all solvers see the same starting points and Brownian
paths (common random numbers) and results are identical in any process.

Asymptotic range. For a Gaussian component :math:`N(a\mu, C(t))`, :math:`C = a^2\Sigma + s^2 I`,
the probability-flow velocity :math:`v = f x - \tfrac12 g^2 \nabla\log p_t` has Jacobian
:math:`f + \tfrac12 g^2 C^{-1}` and the reverse drift :math:`f + g^2 C^{-1}`, with eigenvalues
:math:`f + c\, g^2/\lambda_i(t)`, :math:`\lambda_i = a^2 \Lambda_i + s^2` over the eigenvalues
:math:`\Lambda_i` of every component (``c = 1/2`` ODE, ``1`` SDE). Their largest size over
``[eps, T]`` is the (component-wise) Lipschitz constant L(t). A grid whose step-local product
:math:`\max_i |\Delta t_i|\, L(t_i)` exceeds 1 is outside the asymptotic range (DESIGN.md:
:math:`h g^2/s^2` not small near ``eps``); :func:`stiffness_products` computes the products,
:func:`grid_max_step` turns them into the ``max_step`` of the fit, which leaves such points out and
lists them. (On a uniform grid this is :math:`hL_{max} \le 1`; on a log-SNR grid the large steps sit
where L is small, and the step-local product says so.)
"""

from __future__ import annotations

import math
import numbers
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from scorebench.solvers.base import solver_kind
from scorebench.solvers.problem import ReverseProblem
from scorebench.solvers.registry import get_solver
from scorebench.verification.orders import OrderVerdict, fit_order, order_verdict
from scorebench.verification.profiles import Profile, get_profile
from scorebench.verification.report import ResultRow
from scorebench.verification.scenarios import Scenario, get_scenario

__all__ = [
    "Context", "run_measurement", "rng_for", "asymptotic_max_step", "stiffness_products", "grid_max_step",
    "fit_row", "info_row", "mean_norm",
]

ROW_KIND = {"ode": "ode", "adaptive": "ode", "sde": "sde"}


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    return int(seed)


def rng_for(seed: int, scenario: str, purpose: str) -> np.random.Generator:
    """Generator for one (seed, scenario, purpose): independent streams, same in every process."""
    key = (zlib.crc32(scenario.encode()), zlib.crc32(purpose.encode()))
    return np.random.default_rng(np.random.SeedSequence(_check_seed(seed), spawn_key=key))


def mean_norm(x, y) -> float:
    """Mean over samples of the Euclidean norm ``|x_i - y_i|``."""
    return float(np.mean(np.linalg.norm(np.asarray(x) - np.asarray(y), axis=1)))


def _jacobian_bound(scenario: Scenario, t: np.ndarray, which: str) -> np.ndarray:
    """L(t) = max_i |f + c g^2 / lambda_i(t)| over every component eigenvalue (c = 1/2 ODE, 1 SDE)."""
    if which not in ("ode", "sde"):
        raise ValueError(f"which: expected 'ode' or 'sde', got {which!r}")
    sde, mix = scenario.sde(), scenario.mixture()
    eig = np.unique(mix.eigvals)
    lam = sde.mean_coeff(t)[:, None] ** 2 * eig[None, :] + sde.marginal_var(t)[:, None]
    c = 0.5 if which == "ode" else 1.0
    jac = sde.drift_coeff(t)[:, None] + c * sde.diffusion_sq(t)[:, None] / lam
    return np.max(np.abs(jac), axis=1)


def asymptotic_max_step(scenario: Scenario, eps: float, which: str = "ode") -> float:
    """``1/L`` with ``L`` the largest Jacobian size of the velocity (``"ode"``) or drift (``"sde"``)."""
    sde = scenario.sde()
    t = np.unique(np.concatenate([np.geomspace(eps, sde.T, 400), np.linspace(eps, sde.T, 400)]))
    return float(1.0 / np.max(_jacobian_bound(scenario, t, which)))


def stiffness_products(scenario: Scenario, grids, which: str = "ode") -> list[float]:
    """``max_i |dt_i| L(t_i)`` of each grid (the step-local form of ``h L``; L at both step ends)."""
    out = []
    for grid in grids:
        g = np.asarray(grid, dtype=np.float64)
        lip = _jacobian_bound(scenario, g, which)
        out.append(float(np.max(np.abs(np.diff(g)) * np.maximum(lip[:-1], lip[1:]))))
    return out


def grid_max_step(step_sizes, products, limit: float = 1.0) -> float | None:
    """Largest step size whose grid has ``max_i |dt_i| L(t_i) <= limit`` (None: no grid qualifies).

    Passed to :func:`~scorebench.verification.orders.fit_order` as ``max_step``, it leaves out the
    grids outside the asymptotic range (for nested refinements the product falls with the step).
    """
    ok = [h for h, k in zip(step_sizes, products) if k <= limit]
    return max(ok) if ok else min(step_sizes) * 0.5


@dataclass
class Context:
    """What a measurement body needs: the solver, the scenario and its oracle, the profile, the seed."""

    solver: object
    solver_name: str
    solver_kind: str
    scenario: Scenario
    profile: Profile
    seed: int
    metric: str
    row_kind: str = "ode"
    oracle: object = field(init=False)
    sde: object = field(init=False)

    def __post_init__(self):
        self.oracle = self.scenario.oracle()
        self.sde = self.oracle.sde

    @property
    def T(self) -> float:
        return float(self.sde.T)

    @property
    def eps(self) -> float:
        return float(self.profile.eps)

    def rng(self, purpose: str) -> np.random.Generator:
        return rng_for(self.seed, self.scenario.name, purpose)

    def problem(self, model=None) -> ReverseProblem:
        return ReverseProblem(self.oracle if model is None else model, self.sde)

    def identity(self) -> dict:
        return {"solver": self.solver_name, "kind": self.row_kind, "scenario": self.scenario.name,
                "sde": self.scenario.sde_name, "metric": self.metric}


def run_measurement(body, solver, scenario, profile, seed, metric: str, kinds=None, label=None,
                    row_kind="ode", **kwargs) -> ResultRow:
    """Resolve ``solver``/``scenario``/``profile``, run ``body(ctx, **kwargs)``; errors become rows.

    ``kinds`` lists the solver kinds the measurement applies to (a ValueError otherwise, which is
    raised, not reported: asking for an inapplicable measurement is the caller's mistake).
    ``solver=None`` runs a solver-independent measurement (row solver ``label`` or "exact-flow",
    row kind ``row_kind``).
    """
    scen = get_scenario(scenario)
    prof = get_profile(profile)
    seed = _check_seed(seed)
    start = time.perf_counter()
    name, kind, inst = getattr(solver, "name", None) or str(solver), "ode", None
    if solver is None:  # a solver-independent measurement (the exact flow's, an estimator's)
        name = label or "exact-flow"
    else:
        try:
            inst = get_solver(solver)
            name, kind = inst.name, solver_kind(type(inst))
        except Exception as exc:  # an unloadable plug-in is reported like a broken one
            return _error_row(name, "ode", scen, metric, exc, start)
    if kinds is not None and kind not in kinds:
        raise ValueError(f"solver: {name!r} is a {kind} solver; {metric} measures {', '.join(kinds)} solvers")
    out_kind = row_kind if solver is None else ROW_KIND[kind]
    try:
        ctx = Context(inst, name, kind, scen, prof, seed, metric, out_kind)
        return body(ctx, **kwargs)
    except Exception as exc:
        return _error_row(name, out_kind, scen, metric, exc, start)


def _error_row(name, kind, scen, metric, exc, start) -> ResultRow:
    return ResultRow(
        solver=name, kind=kind, scenario=scen.name, sde=scen.sde_name, metric=metric, verdict="error",
        reason=f"{type(exc).__name__}: {exc}", extra={"elapsed_s": time.perf_counter() - start},
    )


def fit_row(ctx: Context, step_sizes, errors, declared, *, nfe=(), wall_s=(), error_bars=None,
            abscissa="step_size", extra=None, kind=None, **fit_kwargs) -> ResultRow:
    """Fit the order of ``errors`` against ``step_sizes`` and judge it against ``declared``.

    ``declared=None`` (a scheme without an order) gives verdict ``"info"`` with the fit reported.
    """
    fit = fit_order(step_sizes, errors, error_se=error_bars, **fit_kwargs)
    vkind = kind or ("sde" if ctx.row_kind == "sde" else "ode")
    if declared is None:
        text = f"estimated order {fit.order:.3f}" if fit.ok else fit.reason
        verdict = OrderVerdict("info", math.nan, f"no declared order (reported, not judged); {text}")
    else:
        verdict = order_verdict(fit, declared, kind=vkind)
    return ResultRow.from_fit(
        fit, verdict, **ctx.identity(), declared_order=declared, step_sizes=list(step_sizes),
        errors=list(errors), nfe=list(nfe), wall_s=list(wall_s), error_bars=error_bars,
        abscissa=abscissa, extra=extra or {},
    )


def info_row(ctx: Context, reason: str, *, step_sizes=(), errors=(), extra=None, verdict="info",
             **fields) -> ResultRow:
    """A row that reports numbers without an order verdict (or with an explicit pass/fail)."""
    return ResultRow(**ctx.identity(), verdict=verdict, reason=reason, step_sizes=list(step_sizes),
                     errors=list(errors), extra=extra or {}, **fields)
