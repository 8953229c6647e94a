r"""Planning a verification run: solvers and scenarios -> picklable :class:`SuiteTask` objects.

:func:`plan_suite` makes one task per (solver, scenario, measurement) from the table
:data:`~scorebench.verification.suite_measurements.MEASUREMENTS`. A task holds only strings, the
profile and the seed: the solver travels as a spec (a built-in name, ``"package.module:Class"`` or
an absolute ``"path/file.py:Class"``) and is re-resolved where the task runs, so a plug-in loaded
from a file works in a spawned process pool or a Dask worker on the same file system.

**Seeds.** Every task gets the run's root seed; each measurement draws from
``np.random.default_rng(SeedSequence(seed, spawn_key=(crc32(scenario), crc32(purpose))))``
(:func:`~scorebench.verification._measure.rng_for`), i.e. a ``SeedSequence(seed).spawn`` child
keyed by the task's identity and the purpose of the stream, never by submission order, job count
or process. Solvers on the same scenario share starting points and Brownian paths (common random
numbers), and a fixed seed gives the same numbers on every executor.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

from scorebench.solvers.base import solver_kind
from scorebench.solvers.registry import get_solver, list_solvers
from scorebench.verification.profiles import Profile, get_profile
from scorebench.verification.report import ResultRow
from scorebench.verification.scenarios import get_scenario
from scorebench.verification.suite_measurements import DIVERGENCE_ESTIMATORS, MEASUREMENTS, Measurement

__all__ = ["SuiteTask", "plan_suite", "solver_spec"]


def _resolve(function: str):
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


def solver_spec(cls: type) -> str:
    """A spec string that re-creates ``cls`` in another process (``module:Class`` or ``file.py:Class``)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__.startswith("scorebench_plugin_") or cls.__module__ in ("__main__", "__mp_main__"):
        if path is None:
            raise ValueError(f"solver: {cls.__qualname__} is defined in {cls.__module__!r}, which has no "
                             "file; define it in a module or a file so worker processes can load it")
        return f"{os.path.abspath(path)}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def _absolute_spec(spec: str) -> str:
    where, sep, attr = spec.rpartition(":")
    if sep and (where.endswith(".py") or "/" in where or os.sep in where):
        return f"{os.path.abspath(os.path.expanduser(where))}:{attr}"
    return spec


@dataclass(frozen=True)
class SuiteTask:
    """One measurement to run: picklable, re-resolves its solver and function where it runs.

    Calling it returns the measurement's :class:`~scorebench.verification.report.ResultRow`.
    ``solver`` is a spec string (``None`` for measurements of a scenario alone); ``solver_name``
    and ``kind`` label the row written if the task raises.
    """

    function: str
    metric: str
    solver: str | None
    solver_name: str
    kind: str
    scenario: str
    sde: str
    profile: Profile
    seed: int
    cost: float = 1.0
    measurement: str = ""

    @property
    def label(self) -> str:
        return f"{self.solver_name} | {self.scenario} | {self.measurement or self.metric}"

    def __call__(self) -> ResultRow:
        fn = _resolve(self.function)
        if self.solver is None:
            row = fn(self.scenario, self.profile, self.seed)
        else:
            row = fn(self.solver, self.scenario, self.profile, self.seed)
        if not isinstance(row, ResultRow):
            raise TypeError(f"{self.function} returned {type(row).__name__}, expected a ResultRow")
        return row

    def error_row(self, message: str) -> ResultRow:
        """The row reported when the task itself raised (the measurement could not even report)."""
        return ResultRow(solver=self.solver_name, kind=self.kind, scenario=self.scenario, sde=self.sde,
                         metric=self.metric, verdict="error", reason=message)


@dataclass(frozen=True)
class _Subject:
    spec: str | None
    name: str
    kind: str  # "ode" | "adaptive" | "sde" | "divergence" | "none"
    strong: bool = False
    weak: bool = False
    snr: bool = False  # an order-less SDE solver with an ``snr`` (a predictor-corrector sampler)


def _solver_subject(spec) -> _Subject:
    if isinstance(spec, str) and spec in DIVERGENCE_ESTIMATORS:
        return _Subject(spec, spec, "divergence")
    inst = get_solver(spec)  # ValueError for an unknown name, TypeError for a broken class
    cls = type(inst)
    if isinstance(spec, str) and ":" in spec:
        spec = _absolute_spec(spec)
    if isinstance(spec, str) and (":" in spec or cls.__module__.startswith("scorebench.")):
        text = spec  # a spec, or a built-in name (registered in every process on import)
    else:
        text = solver_spec(cls)  # a plug-in registered here only: workers load it by module or file
    return _Subject(text, inst.name, solver_kind(cls), getattr(cls, "strong_order", None) is not None,
                    getattr(cls, "weak_order", None) is not None, hasattr(inst, "snr"))


def _applies(m: Measurement, s: _Subject, profile: Profile) -> bool:
    if m.profiles is not None and profile.name not in m.profiles:
        return False
    if m.subject == "hutchinson-held":
        return s.kind == "divergence" and s.name == "hutchinson"
    if m.subject in ("ode", "adaptive", "divergence", "none"):
        return s.kind == m.subject
    if s.kind != "sde":
        return False
    return {"sde-strong": s.strong, "sde-weak": s.weak, "sde-floor": s.snr and not (s.strong or s.weak)}[m.subject]


_ROW_KIND = {"ode": "ode", "adaptive": "ode", "sde": "sde", "divergence": "divergence", "none": "sde"}


def plan_suite(solvers=None, scenarios=None, profile="quick", seed: int = 0) -> list[SuiteTask]:
    """The tasks of a verification run, in report order (solver by solver, then per measurement).

    Parameters
    ----------
    solvers : sequence, optional
        Registered names, ``"package.module:Class"``, ``"path/file.py:Class"``, solver classes, or
        ``"hutchinson"``/``"hutch++"``. Default: every registered solver, both divergence
        estimators and the prior-mismatch measurement.
    scenarios : sequence of str, optional
        Scenario names. Default: each measurement's scenarios in ``profile``.
    profile : {"quick", "full"} or Profile
    seed : int
        Root seed (>= 0).

    Raises
    ------
    ValueError
        Unknown solver or scenario, a bad seed, or nothing to run.
    """
    prof = get_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    if isinstance(solvers, (str, type)) or isinstance(scenarios, str):
        raise TypeError("solvers, scenarios: expected sequences (lists) of names, not a single value")
    explicit = None if scenarios is None else [get_scenario(s) for s in scenarios]
    if solvers is None:
        subjects = [_solver_subject(info.name) for info in list_solvers()]
        subjects += [_Subject(name, name, "divergence") for name in DIVERGENCE_ESTIMATORS]
        subjects.append(_Subject(None, "exact-flow", "none"))  # the row name measure_prior_mismatch uses
    else:
        subjects = []
        for spec in solvers:
            subj = _solver_subject(spec)
            same = [s for s in subjects if s.name == subj.name]
            if same and same[0].spec != subj.spec:
                raise ValueError(f"solver: two different solvers are named {subj.name!r} "
                                 f"({same[0].spec} and {subj.spec}); rows are identified by name")
            if not same:
                subjects.append(subj)
    tasks: list[SuiteTask] = []
    for subj in subjects:
        for m in MEASUREMENTS:
            if not _applies(m, subj, prof):
                continue
            if explicit is None:
                scens = [get_scenario(n) for n in getattr(prof, m.scenarios_field)]
            else:
                scens = [s for s in explicit if m.scenario_ok(s)]
            spec = None if m.subject == "hutchinson-held" else subj.spec
            for scen in scens:
                tasks.append(SuiteTask(m.function, m.metric, spec, subj.name, _ROW_KIND[subj.kind],
                                       scen.name, scen.sde_name, prof, seed, m.cost, m.name))
    if not tasks:
        raise ValueError("scenario: no measurement applies to the requested solvers on the requested scenarios")
    return tasks
