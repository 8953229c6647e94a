"""The solver registry: register by name, look up by name or spec, discover plug-ins.

A solver is found by

* its registered ``name`` (built-ins, classes decorated with :func:`register_solver`, and
  classes advertised by installed packages in the entry-point group ``scorebench.solvers``,
  loaded lazily on the first lookup);
* a class or an instance (checked against the contract, not registered);
* ``"package.module:Class"`` or ``"path/to/file.py:Class"`` (imported, checked; the class is
  registered only if its module decorates it with :func:`register_solver`).

Every class is checked with :func:`~scorebench.solvers.base.validate_solver_class`: a class that
breaks the contract raises ``TypeError`` naming what is missing; an unknown name raises
``ValueError`` listing the known names. The lookup is open (a dictionary, not an ``if/elif``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .base import AdaptiveODESolver, ODESolver, SDESolver, solver_kind, validate_solver_class

__all__ = [
    "ENTRY_POINT_GROUP",
    "SolverInfo",
    "register_solver",
    "unregister_solver",
    "get_solver",
    "load_solver_class",
    "list_solvers",
    "solver_names",
    "load_entry_points",
]

ENTRY_POINT_GROUP = "scorebench.solvers"

# Modules whose import registers the built-in solvers. ``scorebench.solvers`` (the package) is
# imported too, so every module its ``__init__`` imports is registered as well.
_BUILTIN_MODULES = (
    "scorebench.solvers.runge_kutta",
    "scorebench.solvers.dormand_prince",
    "scorebench.solvers.scipy_reference",
    "scorebench.solvers.euler_maruyama",
    "scorebench.solvers.ancestral",
    "scorebench.solvers.predictor_corrector",
    "scorebench.solvers.exponential",
    "scorebench.solvers",
)

_REGISTRY: dict[str, type] = {}
_LOADED = {"builtins": False, "entry_points": False}
_ENTRY_POINT_ERRORS: dict[str, str] = {}


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver and its declared orders (``None`` where the kind has none)."""

    name: str
    kind: str
    cls: type
    order: int | None = None
    strong_order: float | None = None
    weak_order: float | None = None
    error_order: int | None = None

    @classmethod
    def of(cls, solver_cls: type) -> SolverInfo:
        return cls(
            name=solver_cls.name,
            kind=solver_kind(solver_cls),
            cls=solver_cls,
            order=getattr(solver_cls, "order", None),
            strong_order=getattr(solver_cls, "strong_order", None),
            weak_order=getattr(solver_cls, "weak_order", None),
            error_order=getattr(solver_cls, "error_order", None),
        )


def _same_definition(a: type, b: type) -> bool:
    # a module executed again (importlib.reload, a plug-in file loaded twice) redefines its
    # classes; such a redefinition replaces the old entry instead of clashing with it
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def register_solver(cls):
    """Class decorator: check ``cls`` against the plug-in contract and register it by ``name``.

    Returns ``cls`` unchanged. Raises ``TypeError`` when the contract is broken and
    ``ValueError`` when another class is already registered under the same name.

    Examples
    --------
    >>> from scorebench.solvers.base import ODESolver
    >>> @register_solver
    ... class MyEuler(ODESolver):
    ...     name = "my-euler"
    ...     order = 1
    ...     def step(self, f, x, t, dt):
    ...         return x + dt * f(x, t)
    >>> get_solver("my-euler").order
    1
    >>> _ = unregister_solver("my-euler")
    """
    validate_solver_class(cls)
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and not _same_definition(existing, cls):
        raise ValueError(
            f"name: solver name {cls.name!r} is already registered to "
            f"{existing.__module__}.{existing.__qualname__}; choose another name"
        )
    _REGISTRY[cls.name] = cls
    return cls


def unregister_solver(name: str) -> type:
    """Remove and return the class registered under ``name`` (ValueError if there is none)."""
    if name not in _REGISTRY:
        raise ValueError(f"name: no solver registered as {name!r}")
    return _REGISTRY.pop(name)


def load_entry_points() -> dict[str, str]:
    """(Re)scan the ``scorebench.solvers`` entry points and register what they advertise.

    An entry point that fails to load, or names a class breaking the contract or clashing with a
    registered name, is recorded instead of aborting the scan; the errors are returned (entry
    point name -> message) and quoted when a lookup by name fails.
    """
    _LOADED["entry_points"] = True
    _ENTRY_POINT_ERRORS.clear()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if _REGISTRY.get(getattr(obj, "name", None)) is not obj:
                register_solver(obj)
        except Exception as exc:  # a broken third-party plug-in must not break every lookup
            _ENTRY_POINT_ERRORS[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
    return dict(_ENTRY_POINT_ERRORS)


def _ensure_loaded() -> None:
    if not _LOADED["builtins"]:
        _LOADED["builtins"] = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    if not _LOADED["entry_points"]:
        load_entry_points()


def _import_file(path: str, param: str):
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ValueError(f"{param}: no such file {path!r}")
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:12]
    mod_name = f"scorebench_plugin_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"{param}: cannot import {path!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        sys.modules.pop(mod_name, None)
        raise ValueError(f"{param}: importing {path!r} failed: {exc}") from exc
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def load_solver_class(spec: str, *, param: str = "solver") -> type:
    """Import the class named by ``"package.module:Class"`` or ``"path/to/file.py:Class"``.

    The class is checked against the contract (``TypeError`` naming what is missing).
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(
            f"{param}: expected 'package.module:Class' or 'path/to/file.py:Class', got {spec!r}"
        )
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(where, param)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ValueError(f"{param}: cannot import module {where!r}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{param}: {where!r} has no attribute {attr!r}") from None
    return validate_solver_class(obj)


def get_solver(spec, *, param: str = "solver"):
    """Return a solver instance for ``spec``.

    Parameters
    ----------
    spec : str, type or solver instance
        A registered name, ``"package.module:Class"``, ``"path/to/file.py:Class"``, a solver
        class (instantiated without arguments) or an instance (returned as is).
    param : str
        Parameter name used in error messages (``sample`` passes ``"method"``).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known names) or a spec that cannot be imported.
    TypeError
        A class or instance that breaks the plug-in contract.
    """
    if isinstance(spec, (ODESolver, SDESolver, AdaptiveODESolver)):
        validate_solver_class(type(spec))
        return spec
    if isinstance(spec, type):
        return validate_solver_class(spec)()
    if not isinstance(spec, str):
        raise TypeError(
            f"{param}: expected a solver name, 'module:Class', 'file.py:Class', a solver class "
            f"or instance, got {type(spec).__name__}"
        )
    if ":" in spec:
        return load_solver_class(spec, param=param)()
    _ensure_loaded()
    cls = _REGISTRY.get(spec)
    if cls is None:
        msg = f"{param}: unknown solver {spec!r}; registered: {', '.join(sorted(_REGISTRY))}"
        if _ENTRY_POINT_ERRORS:
            broken = "; ".join(f"{k} ({v})" for k, v in sorted(_ENTRY_POINT_ERRORS.items()))
            msg += f". Entry points that failed to load: {broken}"
        raise ValueError(msg)
    return cls()


def list_solvers(kind: str | None = None) -> list[SolverInfo]:
    """Registered solvers (built-ins, decorated plug-ins, entry points), sorted by name.

    Parameters
    ----------
    kind : {"ode", "sde", "adaptive"}, optional
        Keep only solvers of this kind.
    """
    if kind is not None and kind not in ("ode", "sde", "adaptive"):
        raise ValueError(f"kind: expected 'ode', 'sde', 'adaptive' or None, got {kind!r}")
    _ensure_loaded()
    infos = [SolverInfo.of(cls) for _, cls in sorted(_REGISTRY.items())]
    return [i for i in infos if kind is None or i.kind == kind]


def solver_names(kind: str | None = None) -> list[str]:
    """Sorted registered names (optionally of one kind)."""
    return [info.name for info in list_solvers(kind)]
