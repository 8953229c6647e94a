"""Rendering of a report: its PNG figures, ``report.md`` text and self-contained ``report.html`` text.

Used by :mod:`scorebench.verification.report`; works on any object with the ``Report`` /
``ResultRow`` attributes. Figure names are derived from the rows in order, so re-rendering the same
report gives the same files.
"""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from scorebench.verification.figures import plot_row, plot_work_precision

__all__ = ["FigureSet", "render_figures", "render_markdown", "render_html_text"]

FIGURE_DIR = "figures"
#: Metrics whose rows are also drawn together as work–precision diagrams (error vs NFE, wall time).
WORK_PRECISION_METRICS = ("global_error", "strong_error", "weak_error", "loglik_error", "tolerance_proportionality")


@dataclass
class FigureSet:
    """Relative paths (from the report directory) of the rendered figures."""

    rows: dict = field(default_factory=dict)  # row index -> "figures/....png"
    work_precision: list = field(default_factory=list)  # [(title, "figures/....png")]


def _slug(*parts: str) -> str:
    s = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9._]+", "-", s).strip("-").lower() or "figure"


def render_figures(report, out_dir) -> FigureSet:
    """Draw one figure per plottable row and one work–precision diagram per (scenario, sde, metric)."""
    out = Path(out_dir)
    figs = FigureSet()
    seen: dict[str, int] = defaultdict(int)

    def name(*parts: str) -> str:
        base = _slug(*parts)
        seen[base] += 1
        return f"{FIGURE_DIR}/{base}{'' if seen[base] == 1 else '-' + str(seen[base])}.png"

    groups: dict[tuple, list] = defaultdict(list)
    for i, row in enumerate(report.rows):
        rel = name(row.solver, row.scenario, row.sde, row.metric)
        if plot_row(row, out / rel) is not None:
            figs.rows[i] = rel
        has_work = len(row.nfe) == len(row.errors) > 1 or len(row.wall_s) == len(row.errors) > 1
        if row.metric in WORK_PRECISION_METRICS and has_work and row.verdict != "error":
            groups[(row.scenario, row.sde, row.metric)].append(row)
    for (scenario, sde, metric), rows in groups.items():
        rel = name("work-precision", scenario, sde, metric)
        title = f"work-precision | {scenario} | {sde} | {metric}"
        plot_work_precision(rows, out / rel, title=title, ylabel=metric.replace("_", " "))
        figs.work_precision.append((title, rel))
    return figs


def _fmt(v, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def _estimate(row) -> str:
    if row.estimated_order is None:
        return "–"
    ci = row.order_ci or [None, None]
    if ci[0] is None and ci[1] is None:
        return f"{row.estimated_order:.3f}"
    return f"{row.estimated_order:.3f} [{_fmt(ci[0], '.3f')}, {_fmt(ci[1], '.3f')}]"


def _summary_cells(row) -> list[str]:
    return [row.solver, row.scenario, row.sde, row.metric, _fmt(row.declared_order, "g"), _estimate(row),
            _fmt(row.tolerance), row.verdict.upper()]


SUMMARY_HEADER = ["solver", "scenario", "sde", "metric", "declared", "estimated [CI]", "tolerance", "verdict"]


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return lines


def _point_rows(row) -> list[list[str]]:
    left_out = {p.index for p in row.excluded}
    out = []
    for i, h in enumerate(row.step_sizes):
        def at(vals, spec=".3g"):
            return _fmt(vals[i], spec) if vals and i < len(vals) else "–"
        out.append([_fmt(h, ".4g"), at(row.errors, ".4g"), at(row.error_bars or []), at(row.nfe, "g"),
                    at(row.wall_s), "no" if i in left_out else "yes"])
    return out


def _counts(report) -> str:
    counts = defaultdict(int)
    for r in report.rows:
        counts[r.verdict] += 1
    parts = ", ".join(f"{counts[v]} {v}" for v in ("pass", "fail", "error", "info") if counts[v])
    return f"{len(report.rows)} rows: {parts or 'none'}"


def _meta_lines(report) -> list[str]:
    first = (f"created {report.created or '–'}; seed {_fmt(report.seed, 'd')}; profile {report.profile or '–'}; "
             f"wall time {_fmt(report.wall_s, '.1f')} s")
    lines = [first + ("; INTERRUPTED (partial results)" if report.interrupted else "")]
    if report.versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in report.versions.items()))
    if report.platform:
        lines.append("platform: " + ", ".join(f"{k} {v}" for k, v in report.platform.items()))
    return lines


def _by_solver(report) -> dict:
    groups = defaultdict(list)
    for i, row in enumerate(report.rows):
        groups[row.solver].append((i, row))
    return groups


def _excluded_text(row, p) -> str:
    return f"{row.abscissa} {_fmt(p.step_size, '.4g')}, error {_fmt(p.error, '.4g')}: {p.reason}"


POINT_HEADER = ["abscissa", "error", "± (s.e.)", "NFE", "wall [s]", "in fit"]


def render_markdown(report, figs: FigureSet | None = None) -> str:
    """``report.md``: metadata, summary table of every row, then one section per solver."""
    figs = figs or FigureSet()
    lines = ["# scorebench verification report", ""] + [f"- {m}" for m in _meta_lines(report)]
    lines += ["", f"**{_counts(report)}**", "", "## Summary", ""]
    lines += _md_table(SUMMARY_HEADER, [_summary_cells(r) for r in report.rows])
    for solver, items in _by_solver(report).items():
        lines += ["", f"## Solver `{solver}`"]
        for i, row in items:
            lines += ["", f"### {row.scenario} / {row.sde} / {row.metric}: {row.verdict.upper()}", ""]
            lines += [_md_cell(row.reason or "(no reason recorded)"), ""]
            if row.step_sizes:
                lines += _md_table([row.abscissa] + POINT_HEADER[1:], _point_rows(row)) + [""]
            if i in figs.rows:
                lines += [f"![{row.solver} {row.scenario} {row.sde} {row.metric}]({figs.rows[i]})", ""]
            if row.excluded:
                lines += ["Left out of the fit:"]
                lines += [f"- {_md_cell(_excluded_text(row, p))}" for p in row.excluded]
    if figs.work_precision:
        lines += ["", "## Work–precision", ""]
        for title, rel in figs.work_precision:
            lines += [f"![{title}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(header: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for j, c in enumerate(r):
            cls = f' class="{c.lower()}"' if j == verdict_col else ""
            cells.append(f"<td{cls}>{html.escape(str(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(out: Path, rel: str, alt: str) -> str:
    data = base64.b64encode((out / rel).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = ("body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}table{border-collapse:collapse;"
        "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}.pass{background:#cfc}"
        ".fail{background:#fcc}.error{background:#f99}img{max-width:100%}")


def render_html_text(report, figs: FigureSet, out_dir) -> str:
    """One self-contained HTML page: the Markdown's content with the PNGs inlined as data URIs."""
    out = Path(out_dir)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>scorebench report</title>"
             f"<style>{_CSS}</style></head><body><h1>scorebench verification report</h1><ul>"]
    parts += [f"<li>{html.escape(m)}</li>" for m in _meta_lines(report)]
    parts += [f"</ul><p><b>{html.escape(_counts(report))}</b></p><h2>Summary</h2>"]
    parts.append(_html_table(SUMMARY_HEADER, [_summary_cells(r) for r in report.rows], verdict_col=7))
    for solver, items in _by_solver(report).items():
        parts.append(f"<h2>Solver <code>{html.escape(solver)}</code></h2>")
        for i, row in items:
            parts.append(f"<h3>{html.escape(f'{row.scenario} / {row.sde} / {row.metric}')}: "
                         f"<span class='{row.verdict}'>{row.verdict.upper()}</span></h3>")
            parts.append(f"<p>{html.escape(row.reason or '(no reason recorded)')}</p>")
            if row.step_sizes:
                parts.append(_html_table([row.abscissa] + POINT_HEADER[1:], _point_rows(row)))
            if i in figs.rows:
                parts.append(_img(out, figs.rows[i], f"{row.solver} {row.metric}"))
            if row.excluded:
                items_html = "".join(f"<li>{html.escape(_excluded_text(row, p))}</li>" for p in row.excluded)
                parts.append(f"<p>Left out of the fit:</p><ul>{items_html}</ul>")
    if figs.work_precision:
        parts.append("<h2>Work–precision</h2>")
        parts += [_img(out, rel, title) for title, rel in figs.work_precision]
    parts.append("</body></html>\n")
    return "\n".join(parts)
