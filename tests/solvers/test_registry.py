"""Solver registry: built-ins, decorator, specs (module:Class, file.py:Class), entry points,
and the plug-in contract checked at class definition and at load time."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from scorebench.solvers import registry
from scorebench.solvers.base import AdaptiveODESolver, ODESolver, SDESolver
from scorebench.solvers.registry import (
    get_solver,
    list_solvers,
    load_entry_points,
    register_solver,
    solver_names,
    unregister_solver,
)


@pytest.fixture
def cleanup():
    """Names registered by a test are removed afterwards."""
    before = set(registry._REGISTRY)
    yield
    for name in set(registry._REGISTRY) - before:
        unregister_solver(name)


def test_builtins_are_registered_with_their_declared_orders():
    info = {i.name: i for i in list_solvers()}
    expected = {
        "euler": ("ode", 1),
        "midpoint": ("ode", 2),
        "heun": ("ode", 2),
        "rk4": ("ode", 4),
        "rk45": ("adaptive", 5),
        "scipy-dop853": ("adaptive", 8),
        "scipy-rk45": ("adaptive", 5),
    }
    for name, (kind, order) in expected.items():
        assert info[name].kind == kind and info[name].order == order
    assert info["rk45"].error_order == 4
    assert info["em"].kind == "sde"
    assert (info["em"].strong_order, info["em"].weak_order) == (1.0, 1.0)
    assert set(solver_names("ode")) >= {"euler", "midpoint", "heun", "rk4"}
    assert all(i.kind == "sde" for i in list_solvers("sde"))
    with pytest.raises(ValueError, match="kind: expected 'ode', 'sde', 'adaptive' or None"):
        list_solvers("pde")


def test_get_solver_by_name_class_and_instance():
    s = get_solver("heun")
    assert s.name == "heun" and isinstance(s, ODESolver)
    assert type(get_solver(type(s))) is type(s)
    assert get_solver(s) is s


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"solver: unknown solver 'hune'; registered: .*euler.*heun"):
        get_solver("hune")
    with pytest.raises(ValueError, match=r"method: unknown solver 'x'"):
        get_solver("x", param="method")
    with pytest.raises(TypeError, match="solver: expected a solver name"):
        get_solver(3)


def test_register_decorator_and_duplicates(cleanup):
    @register_solver
    class MyEuler(ODESolver):
        name = "test-my-euler"
        order = 1

        def step(self, f, x, t, dt):
            return x + dt * f(x, t)

    assert get_solver("test-my-euler").__class__ is MyEuler
    assert register_solver(MyEuler) is MyEuler  # idempotent for the same class

    class Other(ODESolver):
        name = "test-my-euler"
        order = 1

        def step(self, f, x, t, dt):
            return x

    with pytest.raises(ValueError, match="name: solver name 'test-my-euler' is already registered"):
        register_solver(Other)
    with pytest.raises(ValueError, match="name: solver name 'euler' is already registered"):
        register_solver(type("Euler2", (ODESolver,), {"name": "euler", "order": 1,
                                                      "step": lambda self, f, x, t, dt: x}))


# ---------------------------------------------------------------------------------------------
# the contract, checked when the class statement runs
# ---------------------------------------------------------------------------------------------
def _step(self, f, x, t, dt):
    return x


def _sde_step(self, drift, g, x, t, dt, dw):
    return x


@pytest.mark.parametrize(
    "base, attrs, match",
    [
        (ODESolver, {"order": 1, "step": _step}, r"missing class attribute 'name'"),
        (ODESolver, {"name": "", "order": 1, "step": _step}, r"'name' must be a non-empty str"),
        (ODESolver, {"name": "a b", "order": 1, "step": _step}, r"no whitespace and no ':'"),
        (ODESolver, {"name": "a:b", "order": 1, "step": _step}, r"no whitespace and no ':'"),
        (ODESolver, {"name": 3, "order": 1, "step": _step}, r"'name' must be a non-empty str"),
        (ODESolver, {"name": "x", "step": _step}, r"missing class attribute 'order'"),
        (ODESolver, {"name": "x", "order": 0, "step": _step}, r"'order' must be an int >= 1"),
        (ODESolver, {"name": "x", "order": 1.5, "step": _step}, r"'order' must be an int >= 1"),
        (ODESolver, {"name": "x", "order": True, "step": _step}, r"'order' must be an int >= 1"),
        (ODESolver, {"name": "x", "order": 2}, r"missing method 'step\(self, f, x, t, dt\)'"),
        (SDESolver, {"name": "x", "weak_order": 1.0, "step": _sde_step},
         r"missing class attribute 'strong_order'"),
        (SDESolver, {"name": "x", "strong_order": 0.5, "step": _sde_step},
         r"missing class attribute 'weak_order'"),
        (SDESolver, {"name": "x", "strong_order": -1.0, "weak_order": 1.0, "step": _sde_step},
         r"'strong_order' must be a finite number > 0 or None"),
        (SDESolver, {"name": "x", "strong_order": 0.5, "weak_order": float("inf"),
                     "step": _sde_step}, r"'weak_order' must be a finite number > 0"),
        (SDESolver, {"name": "x", "strong_order": 0.5, "weak_order": 1.0},
         r"missing method 'step\(self, drift, g, x, t, dt, dw\)'"),
        (AdaptiveODESolver, {"name": "x", "order": 5}, r"missing class attribute 'error_order'"),
        (AdaptiveODESolver, {"name": "x", "order": 5, "error_order": 4}, r"missing method '_solve"),
    ],
)
def test_contract_violations_raise_type_error_at_definition(base, attrs, match):
    with pytest.raises(TypeError, match=match):
        type("Broken", (base,), attrs)


def test_contract_allows_advance_only_none_orders_and_abstract_bases(cleanup):
    class ExpIntegrator(ODESolver):  # overrides the richer hook only
        name = "test-exp"
        order = 1

        def advance(self, problem, x, t, dt):
            return x

    class Corrector(SDESolver):  # no order in h
        name = "test-pc"
        strong_order = None
        weak_order = None

        def advance(self, problem, x, t, dt, dw, rng):
            return x

    class Base(ODESolver, abstract=True):  # no name, no order: fine when abstract
        def step(self, f, x, t, dt):
            return x

    class Concrete(Base):
        name = "test-concrete"
        order = 3

    assert get_solver(ExpIntegrator).order == 1
    assert get_solver(Corrector).strong_order is None
    assert get_solver(Concrete).name == "test-concrete"
    with pytest.raises(TypeError, match="declared abstract=True"):
        register_solver(Base)
    with pytest.raises(TypeError, match="must be a subclass of scorebench.solvers.ODESolver"):
        register_solver(int)


# ---------------------------------------------------------------------------------------------
# loading by spec
# ---------------------------------------------------------------------------------------------
PLUGIN = textwrap.dedent(
    """
    from scorebench.solvers.base import ODESolver
    from scorebench.solvers.registry import register_solver

    class PlainHeun(ODESolver):  # not decorated: loadable, but not registered
        name = "test-file-heun"
        order = 2

        def step(self, f, x, t, dt):
            k1 = f(x, t)
            k2 = f(x + dt * k1, t + dt)
            return x + 0.5 * dt * (k1 + k2)

    @register_solver
    class Registered(PlainHeun):
        name = "test-file-registered"
    """
)

BROKEN = textwrap.dedent(
    """
    class NotASolver:
        name = "nope"
    """
)


def test_load_from_file_spec(tmp_path, cleanup):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN)
    s = get_solver(f"{path}:PlainHeun")
    assert s.name == "test-file-heun" and s.order == 2
    assert "test-file-heun" not in solver_names()
    assert "test-file-registered" in solver_names()  # the file's decorator ran
    # the loaded step is Heun: one step of x' = x from 1 by h gives 1 + h + h^2/2
    x = s.step(lambda x, t: x, np.ones((1, 1)), 0.0, 0.1)
    assert x[0, 0] == pytest.approx(1.105, abs=1e-15)
    # loading again redefines the class; the registered name is replaced, not a clash
    get_solver(f"{path}:Registered")


def test_load_from_module_spec(tmp_path, monkeypatch, cleanup):
    (tmp_path / "sb_test_plugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sb_test_plugin_mod", raising=False)
    s = get_solver("sb_test_plugin_mod:PlainHeun")
    assert s.name == "test-file-heun"
    sys.modules.pop("sb_test_plugin_mod", None)


def test_spec_errors(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "bad_order.py").write_text(
        "from scorebench.solvers.base import ODESolver\n"
        "class C(ODESolver):\n    name = 'test-bad'\n    def step(self, f, x, t, dt):\n"
        "        return x\n"
    )
    with pytest.raises(TypeError, match="must be a subclass of scorebench.solvers.ODESolver"):
        get_solver(f"{tmp_path / 'broken.py'}:NotASolver")
    with pytest.raises(TypeError, match="C: missing class attribute 'order'"):
        get_solver(f"{tmp_path / 'bad_order.py'}:C")
    with pytest.raises(ValueError, match="has no attribute 'Missing'"):
        get_solver(f"{tmp_path / 'broken.py'}:Missing")
    with pytest.raises(ValueError, match="solver: no such file"):
        get_solver(f"{tmp_path / 'absent.py'}:X")
    with pytest.raises(ValueError, match="solver: cannot import module 'no_such_module_sb'"):
        get_solver("no_such_module_sb:X")
    with pytest.raises(ValueError, match="expected 'package.module:Class'"):
        get_solver("scorebench.solvers.runge_kutta:")
    assert get_solver("scorebench.solvers.runge_kutta:Heun").name == "heun"


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------
def test_entry_points_are_loaded_lazily(tmp_path, monkeypatch, cleanup):
    (tmp_path / "sb_ep_plugin.py").write_text(PLUGIN.replace("test-file", "test-ep"))
    dist = tmp_path / "sb_ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sb-ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[scorebench.solvers]\n"
        "heun2 = sb_ep_plugin:PlainHeun\n"
        "broken = sb_ep_plugin:DoesNotExist\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._LOADED, "entry_points", False)
    try:
        assert "test-ep-heun" not in registry._REGISTRY
        s = get_solver("test-ep-heun")  # first lookup scans the entry points
        assert s.order == 2
        with pytest.raises(ValueError, match=r"Entry points that failed to load: broken"):
            get_solver("not-there")
    finally:
        sys.modules.pop("sb_ep_plugin", None)
        monkeypatch.undo()
        registry._LOADED["entry_points"] = False
        for name in ("test-ep-heun", "test-ep-registered"):
            registry._REGISTRY.pop(name, None)
    assert "broken" not in load_entry_points()
