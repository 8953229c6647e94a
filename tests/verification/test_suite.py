"""The suite runner: planning, identical numbers on every executor, error rows, Ctrl-C.

Measurements run on the quickest scenario (gauss2d-vp: exact flow map, 2-D) with a reduced step
list, inline (serial executor) except where the executor is the point.
"""

import json
import pickle
from pathlib import Path

import pytest

from scorebench.solvers.registry import list_solvers
from scorebench.verification.profiles import QUICK
from scorebench.verification.report import load_report
from scorebench.verification.suite import DIVERGENCE_ESTIMATORS, SuiteTask, plan_suite, run_suite

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
RK3 = f"{EXAMPLES / 'rk3_solver.py'}:RK3"
INTERRUPT = f"{HERE / 'suite_toys.py'}:InterruptingSolver"
SMALL = QUICK.replace(name="small", ode_steps=(8, 16, 32, 64, 128, 256), ode_batch=8, sde_steps=(8, 16, 32, 64),
                      strong_samples=50)


def numbers(report):
    """Every row without its timings (wall_s, elapsed_s): what must not depend on the executor."""
    rows = []
    for row in report.rows:
        d = row.to_dict()
        d.pop("wall_s")
        d["extra"] = {k: v for k, v in d["extra"].items() if k != "elapsed_s"}
        rows.append(d)
    return rows


def test_plan_default_covers_every_registered_solver_with_its_measurements():
    tasks = plan_suite(profile="quick", seed=3)
    by_solver = {}
    for t in tasks:
        by_solver.setdefault(t.solver_name, []).append(t)
        assert t.seed == 3 and t.profile is QUICK
    for info in list_solvers():
        metrics = {(t.metric, t.scenario) for t in by_solver.get(info.name, [])}
        if info.kind == "ode":
            assert {("global_error", s) for s in QUICK.ode_scenarios} <= metrics
            assert {("exactness", s) for s in QUICK.exactness_scenarios} <= metrics
        elif info.kind == "adaptive":
            assert {("tolerance_proportionality", s) for s in QUICK.adaptive_scenarios} <= metrics
            assert all(m != "global_error" for m, _ in metrics)
        else:
            assert all(m not in ("global_error", "tolerance_proportionality") for m, _ in metrics)
            strong = {("strong_error", s) for s in QUICK.strong_scenarios}
            weak = {("weak_error", s) for s in QUICK.weak_scenarios}
            assert (strong <= metrics) == (info.strong_order is not None)
            assert (weak <= metrics) == (info.weak_order is not None)
    # tasks are picklable value objects: they travel to spawn workers and Dask unchanged
    assert pickle.loads(pickle.dumps(tasks)) == tasks
    assert len({t.label for t in tasks}) == len(tasks)
    assert not set(DIVERGENCE_ESTIMATORS) & {t.solver for t in tasks if t.kind != "divergence"}


def test_plan_explicit_solvers_and_scenarios(monkeypatch, tmp_path):
    monkeypatch.chdir(EXAMPLES.parent)
    tasks = plan_suite(["euler", "examples/rk3_solver.py:RK3"], ["gauss2d-vp", "point2d-ve"], "quick", 0)
    got = [t.label for t in tasks]
    assert got == [
        "euler | gauss2d-vp | global_error", "euler | point2d-ve | global_error",
        "euler | gauss2d-vp | weak_error (exact law)", "euler | point2d-ve | weak_error (exact law)",
        "euler | point2d-ve | exactness",  # exactness only on the point mass
        "euler | gauss2d-vp | loglik_error",  # the likelihood needs a density at eps
        "kutta-rk3 | gauss2d-vp | global_error", "kutta-rk3 | point2d-ve | global_error",
        "kutta-rk3 | gauss2d-vp | weak_error (exact law)", "kutta-rk3 | point2d-ve | weak_error (exact law)",
        "kutta-rk3 | point2d-ve | exactness", "kutta-rk3 | gauss2d-vp | loglik_error",
    ]
    # a file spec is made absolute, so workers with another working directory still find it
    assert tasks[6].solver == RK3 and Path(tasks[6].solver.rpartition(":")[0]).is_absolute()
    assert tasks[0].solver == "euler"
    with pytest.raises(ValueError, match="unknown solver 'no-such-solver'"):
        plan_suite(["no-such-solver"])
    with pytest.raises(ValueError, match="unknown scenario 'nowhere-vp'"):
        plan_suite(["euler"], ["nowhere-vp"])
    with pytest.raises(ValueError, match="no such file"):
        plan_suite(["missing_file.py:Class"])
    with pytest.raises(ValueError, match="seed"):
        plan_suite(["euler"], seed=-1)
    with pytest.raises(ValueError, match="no measurement applies"):
        plan_suite(["euler"], [])
    with pytest.raises(TypeError, match="sequences"):
        plan_suite("euler")
    assert plan_suite(["euler", "euler"], ["gauss2d-vp"]) == plan_suite(["euler"], ["gauss2d-vp"])
    with pytest.raises(ValueError, match="two different solvers are named 'euler'"):
        plan_suite(["euler", "scorebench.solvers.runge_kutta:Euler"], ["gauss2d-vp"])


def test_serial_local_and_dask_give_identical_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")  # the 'dask' extra; installed in CI
    # an ODE solver (random starting points), a plug-in loaded from its file in every worker, and an
    # SDE solver (Brownian paths): every random stream is keyed by the task, not by where it runs
    def tasks(seed):
        planned = plan_suite(["euler", RK3, "em"], ["gauss2d-vp"], SMALL, seed)
        return [t for t in planned if t.metric in ("global_error", "strong_error")]

    serial = run_suite(tasks=tasks(7), seed=7, executor="serial", progress="off")
    local = run_suite(tasks=tasks(7), seed=7, executor="local", jobs=2, progress="off")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        dask = run_suite(tasks=tasks(7), seed=7, executor="dask", scheduler=cluster, progress="off")
    assert [(r.solver, r.metric) for r in serial.rows] == [
        ("euler", "global_error"), ("kutta-rk3", "global_error"), ("em", "strong_error")]
    assert [r.verdict for r in serial.rows[:2]] == ["pass", "pass"]
    assert serial.rows[2].verdict in ("pass", "fail") and len(serial.rows[2].errors) == 4
    assert numbers(local) == numbers(serial)
    assert numbers(dask) == numbers(serial)
    # the comparison is not vacuous: another seed draws other starting points and paths
    other = run_suite(tasks=tasks(8), seed=8, executor="serial", progress="off")
    for a, b in zip(other.rows, serial.rows):
        assert a.errors != b.errors


def test_a_task_that_raises_becomes_an_error_row_and_the_run_goes_on(tmp_path):
    good = plan_suite(["euler"], ["gauss2d-vp"], SMALL, 0)[0]
    # asking a fixed-step solver for tolerance proportionality is refused by the measurement itself
    bad = SuiteTask("scorebench.verification.measure_ode:measure_tolerance_proportionality",
                    "tolerance_proportionality", "euler", "euler", "ode", "gauss2d-vp", "vp", SMALL, 0)
    report = run_suite(tasks=[bad, good], seed=0, executor="serial", progress="off", out=tmp_path, html=False)
    assert [r.verdict for r in report.rows] == ["error", "pass"]
    assert report.rows[0].reason.startswith("ValueError: solver: 'euler' is a ode solver")
    assert (report.rows[0].solver, report.rows[0].metric) == ("euler", "tolerance_proportionality")
    assert not report.interrupted and not report.all_passed()
    assert load_report(tmp_path).rows == report.rows


def test_ctrl_c_inside_a_task_writes_the_finished_rows(tmp_path):
    tasks = [t for t in plan_suite(["euler", INTERRUPT, RK3], ["gauss2d-vp"], SMALL, 0) if t.metric == "global_error"]
    report = run_suite(tasks=tasks, seed=0, executor="serial", progress="off", out=tmp_path)
    assert report.interrupted
    assert [r.solver for r in report.rows] == ["euler"]
    assert report.extra["cancelled"] == ["interrupting-solver | gauss2d-vp | global_error",
                                         "kutta-rk3 | gauss2d-vp | global_error"]
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["metadata"]["interrupted"] is True
    assert [r["solver"] for r in doc["rows"]] == ["euler"] and doc["rows"][0]["verdict"] == "pass"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files behind
