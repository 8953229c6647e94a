"""The ``scorebench`` command line: list, verify (pass, fail, error, Ctrl-C, usage errors), report.

``main(argv)`` runs in-process (serial executor: the quickest path) except one subprocess run
of the installed console entry point.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scorebench.cli import main
from scorebench.solvers.registry import solver_names
from scorebench.verification.scenarios import scenario_names

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
RK3 = f"{EXAMPLES / 'rk3_solver.py'}:RK3"
WRONG = f"{EXAMPLES / 'wrong_order_solver.py'}:WrongOrderHeun"
NAN = f"{EXAMPLES / 'nan_solver.py'}:NaNSolver"
INTERRUPT = f"{HERE / 'suite_toys.py'}:InterruptingSolver"

# DESIGN.md "Reports": the keys every row has at least
ROW_KEYS = {"solver", "kind", "scenario", "sde", "metric", "declared_order", "estimated_order", "order_ci",
            "verdict", "step_sizes", "errors", "nfe", "wall_s"}


def verify(out, *args):
    return main(["verify", "--executor", "serial", "--out", str(out), *args])


def rows_of(out):
    return json.loads((Path(out) / "report.json").read_text())["rows"]


def test_list_shows_builtin_solvers_with_orders_and_scenarios(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in solver_names():
        assert re.search(rf"^{re.escape(name)}\s", text, re.M), name
    assert re.search(r"^rk4\s+ode\s+order 4\s", text, re.M)
    assert re.search(r"^euler\s+ode\s+order 1\s", text, re.M)
    for name in scenario_names():
        assert re.search(rf"^{re.escape(name)}\s", text, re.M), name
    assert {"gauss2d-vp", "mix1d3-ve", "ring8-subvp"} <= set(scenario_names())


def test_console_entry_point_runs_as_a_program():
    proc = subprocess.run([sys.executable, "-m", "scorebench.cli", "list"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "gauss2d-vp" in proc.stdout and "rk4" in proc.stdout


@pytest.fixture(scope="module")
def rk3_report(tmp_path_factory):
    """One quick verification of the RK3 plug-in, shared by the tests that read its report."""
    out = tmp_path_factory.mktemp("rk3")
    code = main(["verify", "--executor", "serial", "--out", str(out), "--solver", RK3, "--scenario", "gauss2d-vp",
                 "--profile", "quick", "--seed", "5"])
    return code, out


def test_verify_plugin_rk3_passes_with_order_three(rk3_report):
    code, out = rk3_report
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["seed"] == 5 and doc["metadata"]["profile"] == "quick"
    rows = {r["metric"]: r for r in doc["rows"]}
    # ODE global error, the exact law's weak error, the log-likelihood error against step
    assert sorted(rows) == ["global_error", "loglik_error", "weak_error"]
    for row in rows.values():
        assert ROW_KEYS <= set(row)
        assert (row["solver"], row["kind"], row["scenario"], row["sde"], row["verdict"]) == (
            "kutta-rk3", "ode", "gauss2d-vp", "vp", "pass")
        assert row["declared_order"] == 3
        # the tolerance is at least 0.2 and at most 0.45 (orders.py); a third-order scheme lands inside
        assert abs(row["estimated_order"] - 3) <= row["tolerance"] <= 0.45
        assert row["order_ci"][0] < row["estimated_order"] < row["order_ci"][1]
        assert len(row["step_sizes"]) == len(row["errors"]) == len(row["nfe"]) >= 5
    row = rows["global_error"]
    assert len(row["wall_s"]) == len(row["errors"])
    assert row["nfe"] == [3 * n for n in sorted(row["extra"]["steps"])]  # three evaluations per step
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert len(list((out / "figures").glob("*.png"))) >= 1


def test_wrong_order_solver_fails(tmp_path, capsys):
    assert verify(tmp_path, "--solver", WRONG, "--scenario", "gauss2d-vp") == 1
    row = next(r for r in rows_of(tmp_path) if r["metric"] == "global_error")
    assert row["verdict"] == "fail" and row["declared_order"] == 2
    assert row["estimated_order"] < 1.5 and "declared 2" in row["reason"]
    assert "FAIL" in capsys.readouterr().out


def test_nan_solver_is_an_error_and_the_run_goes_on(tmp_path, capsys):
    assert verify(tmp_path, "--solver", NAN, "--solver", RK3, "--scenario", "gauss2d-vp") == 1
    rows = rows_of(tmp_path)
    assert [(r["solver"], r["verdict"]) for r in rows] == [("nan-solver", "error")] * 3 + [("kutta-rk3", "pass")] * 3
    assert all("non-finite" in r["reason"] for r in rows[:3])
    out = capsys.readouterr().out
    assert re.search(r"^error: nan-solver \| gauss2d-vp \| global_error: .*non-finite", out, re.M)
    # the summary table: solver, scenario, sde, metric, declared, estimated [CI], tolerance, verdict
    assert re.search(r"^kutta-rk3\s+gauss2d-vp\s+vp\s+global_error\s+3\s+[23]\.\d+ \[[\d.]+, [\d.]+\]\s+0\.\d+\s+PASS$",
                     out, re.M)
    assert re.search(r"^6 rows: 3 pass, 3 error", out, re.M)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--solver", "no-such-solver"], r"solver: unknown solver 'no-such-solver'"),
        (["--solver", "rk4", "--scenario", "nowhere-vp"], r"scenario: unknown scenario 'nowhere-vp'"),
        (["--solver", "missing_file.py:Cls"], r"solver: no such file 'missing_file.py'"),
        (["--solver", "rk4", "--scheduler", "tcp://127.0.0.1:8786"], r"--scheduler: only meaningful with"),
    ],
)
def test_unknown_solver_or_scenario_exits_2_with_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "never-created"
    assert verify(out, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)
    assert not out.exists()  # checked before anything is written


def test_unwritable_out_exits_2_before_running(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # a path below a regular file can never be created, whoever runs the test (root included)
    assert verify(blocker / "report", "--solver", "rk4", "--scenario", "gauss2d-vp") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--out: cannot write to" in captured.err
    assert "verify [" not in captured.err  # no task ran


def test_ctrl_c_exits_130_and_writes_the_finished_rows(tmp_path, capsys):
    code = verify(tmp_path, "--solver", NAN, "--solver", INTERRUPT, "--solver", RK3, "--scenario", "gauss2d-vp")
    assert code == 130
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["metadata"]["interrupted"] is True
    # the three finished (error) rows of the first solver are kept; nothing after the interrupt ran
    assert [(r["solver"], r["verdict"]) for r in doc["rows"]] == [("nan-solver", "error")] * 3
    assert len(doc["metadata"]["extra"]["cancelled"]) == 6
    assert "interrupted" in capsys.readouterr().err


def test_report_rerenders_markdown_and_self_contained_html(rk3_report, tmp_path, capsys):
    shutil.copytree(rk3_report[1], tmp_path, dirs_exist_ok=True)
    before = (tmp_path / "report.md").read_text()
    for name in ("report.md", "report.html"):
        (tmp_path / name).unlink()
    for png in (tmp_path / "figures").glob("*.png"):
        png.unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == before
    html = (tmp_path / "report.html").read_text()
    srcs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in html and "kutta-rk3" in html
    # a directory without a report is a usage error
    capsys.readouterr()
    assert main(["report", str(tmp_path / "figures")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bench_subcommand_is_picked_up_from_scorebench_bench_cli(monkeypatch, capsys):
    import types

    def add_parser(subparsers):
        p = subparsers.add_parser("bench", help="benchmarks")
        p.add_argument("--suite", default="speed")
        p.set_defaults(func=lambda args: print(f"bench {args.suite}") or 7)

    module = types.ModuleType("scorebench.bench.cli")
    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "scorebench.bench", types.ModuleType("scorebench.bench"))
    monkeypatch.setitem(sys.modules, "scorebench.bench.cli", module)
    assert main(["bench", "--suite", "ratios"]) == 7
    assert capsys.readouterr().out == "bench ratios\n"


def test_precompile_subcommand_reports_each_group(monkeypatch, capsys):
    from scorebench.solvers import precompile as pre

    calls = []

    def fake(processes):
        calls.append(processes)
        return {"pc": 1.5, "em": "exit status 1: boom"}

    monkeypatch.setattr(pre, "precompile", fake)
    assert main(["precompile", "--processes", "3"]) == 1  # a failed group fails the command
    out = capsys.readouterr().out
    assert calls == [3] and "pc: 1.5 s" in out and "em: exit status 1: boom" in out
    with pytest.raises(SystemExit) as exc:
        main(["precompile", "--processes", "0"])
    assert exc.value.code == 2
