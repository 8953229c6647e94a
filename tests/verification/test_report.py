"""Reports: JSON round trip, NaN policy, atomic writes, Markdown and self-contained HTML."""

import base64
import json
import os
import re

import numpy as np
import pytest

from scorebench.verification.orders import fit_order, order_verdict
from scorebench.verification.report import ResultRow, Report, environment_info, load_report, render_html, write_report

H = 0.5 ** np.arange(2, 9)


def make_report() -> Report:
    rows = []
    for solver, p in (("euler", 1), ("heun", 2)):
        e = 0.7 * H**p
        e[-1] = 0.0  # at the round-off floor: excluded and listed
        fit = fit_order(H, e)
        rows.append(ResultRow.from_fit(
            fit, order_verdict(fit, p), solver=solver, kind="ode", scenario="gauss-2d", sde="vp",
            metric="global_error", declared_order=p, step_sizes=H, errors=e, nfe=np.round(p / H).astype(int),
            wall_s=1e-4 / H, extra={"batch": np.int64(64), "x_T_mean": np.array([0.1, np.nan])}))
    rows.append(ResultRow(solver="em", kind="sde", scenario="mix-1d", sde="ve", metric="weak_error", verdict="fail",
                          declared_order=1.0, estimated_order=0.4, order_ci=[0.1, np.inf],
                          step_sizes=[0.1, 0.05, 0.025],
                          errors=[0.3, 0.2, 0.15], error_bars=[0.01, 0.01, np.nan], tolerance=0.3,
                          reason="estimated order 0.4 vs declared 1 | tolerance 0.3"))
    rows.append(ResultRow(solver="hutchinson", kind="divergence", scenario="mix-16d", sde="vp",
                          metric="hutchinson_variance", verdict="pass", step_sizes=[1, 2, 4, 8],
                          errors=[2.1, 0.98, 0.52, 0.24], abscissa="probes", extra={"theory": 2.0}))
    rows.append(ResultRow(solver="broken", kind="ode", scenario="gauss-2d", sde="vp", metric="global_error",
                          verdict="error", reason="ValueError: solver returned NaN"))
    versions, plat = environment_info()
    return Report(rows=rows, seed=np.int64(7), profile="quick", versions=versions, platform=plat, wall_s=12.5,
                  created="2026-11-23T12:00:00+00:00")


def test_json_round_trip_and_nan_policy(tmp_path):
    rep = make_report()
    # non-finite values become None on construction, numpy values plain Python
    assert rep.rows[0].extra["x_T_mean"] == [0.1, None] and type(rep.rows[0].extra["batch"]) is int
    assert rep.rows[2].order_ci == [0.1, None] and rep.rows[2].error_bars[-1] is None
    assert all(type(v) is int for v in rep.rows[0].nfe) and type(rep.seed) is int
    path = write_report(rep, tmp_path, figures=False)
    assert path == tmp_path / "report.json"
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert not re.search(r"[:\[,] *-?(NaN|Infinity)", text)  # no bare NaN/Infinity tokens
    loaded = load_report(tmp_path)
    assert loaded == rep
    assert load_report(path) == rep
    assert loaded.rows[0].excluded == rep.rows[0].excluded and len(loaded.rows[0].excluded) == 1
    assert not loaded.all_passed() and Report(rows=rep.rows[:2]).all_passed()


def test_atomic_write_keeps_previous_report_when_serialisation_fails(tmp_path, monkeypatch):
    good = make_report()
    write_report(good, tmp_path, figures=False)
    before_json = (tmp_path / "report.json").read_bytes()
    before_md = (tmp_path / "report.md").read_bytes()
    bad = make_report()
    bad.rows[1].extra["unserialisable"] = object()  # fails while streaming row 1, after row 0 was written
    partial = []
    real_unlink = os.unlink

    def spy_unlink(p):
        with open(p) as fh:
            partial.append(fh.read())
        real_unlink(p)

    monkeypatch.setattr(os, "unlink", spy_unlink)
    with pytest.raises(TypeError, match="row 1"):
        write_report(bad, tmp_path, figures=False)
    monkeypatch.undo()
    assert len(partial) == 1 and '"solver": "euler"' in partial[0]  # it did fail mid-way...
    assert (tmp_path / "report.json").read_bytes() == before_json  # ...and the old report is intact
    assert (tmp_path / "report.md").read_bytes() == before_md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]  # no temp file left
    assert load_report(tmp_path) == good


def test_markdown_lists_every_row_figures_and_excluded_points(tmp_path):
    rep = make_report()
    write_report(rep, tmp_path)
    md = (tmp_path / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    for row in rep.rows:
        cells = f"| {row.solver} | {row.scenario} | {row.sde} | {row.metric} |"
        assert any(line.startswith(cells) and line.endswith(f"| {row.verdict.upper()} |") for line in table)
    assert "| 1 | 1.000 [1.000, 1.000] | 0.2 | PASS |" in md  # declared, estimate [CI], tolerance
    assert "\\| tolerance 0.3" in md  # a '|' inside a reason is escaped in the tables
    assert "at the round-off floor" in md and "## Solver `heun`" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    # one figure per row with >= 2 points (4) + one work-precision diagram (euler and heun have nfe)
    assert len(links) == 5 and all((tmp_path / link).is_file() for link in links)
    for link in links:
        assert (tmp_path / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(tmp_path):
    rep = make_report()
    path = render_html(rep, tmp_path / "html")
    text = path.read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)">', text)
    assert len(images) == 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="figures/' not in text and "<link" not in text and "<script" not in text
    for row in rep.rows:
        assert row.solver in text
    assert text.count("<tr>") >= len(rep.rows) + 1


@pytest.mark.parametrize(
    "change, exc, match",
    [
        ({"kind": "pde"}, ValueError, "kind"),
        ({"verdict": "ok"}, ValueError, "verdict"),
        ({"errors": [1.0]}, ValueError, "errors"),
        ({"nfe": [1, 2]}, ValueError, "nfe"),
        ({"order_ci": [1.0]}, ValueError, "order_ci"),
        ({"declared_order": "2"}, TypeError, "declared_order"),
        ({"step_sizes": np.ones((3, 1)), "errors": [1, 2, 3]}, ValueError, "step_sizes"),
        ({"extra": {1: 2}}, TypeError, "extra"),
    ],
)
def test_row_validation(change, exc, match):
    fields = dict(solver="s", kind="ode", scenario="c", sde="vp", metric="global_error", verdict="pass",
                  step_sizes=[0.1, 0.05, 0.025], errors=[1e-2, 2.5e-3, 6e-4])
    fields.update(change)
    with pytest.raises(exc, match=match):
        ResultRow(**fields)


def test_load_rejects_foreign_json(tmp_path):
    (tmp_path / "report.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a scorebench report"):
        load_report(tmp_path)
