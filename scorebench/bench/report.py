"""Write the bench report: ``bench.json``, ``bench.md`` and PNG scaling plots, all atomically.

Every file is written to a temporary name in the target directory and moved into place with
``os.replace``, so a reader never sees half a report. Non-finite numbers become JSON ``null``.
:func:`format_table` is the table the command line prints (also the body of ``bench.md``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .workloads import RING_LABEL

__all__ = ["write_report", "format_table", "TABLE_HEADER", "clean_json"]

TABLE_HEADER = ["wl", "implementation", "wall median [min-max]", "NFE", "throughput", "peak MB",
                "max err", "mean err", "x best peer", "x baseline", "frac bound"]


def clean_json(obj):
    """JSON-ready copy: numpy scalars/arrays to Python, nan/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _s(v) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"


def _e(v) -> str:
    return "-" if v is None else f"{v:.2e}"


def _x(v) -> str:
    return "-" if v is None else f"{v:.3g}x"


def table_cells(r) -> list:
    """One printed row: the header's columns (skipped/error rows carry their note)."""
    head = [r["workload"], r["implementation"]]
    if r["status"] != "ok":
        return head + [f"{r['status']}: {r['note']}"] + [""] * (len(TABLE_HEADER) - 3)
    wall = f"{_s(r['wall_median_s'])} [{_s(r['wall_min_s'])}-{_s(r['wall_max_s'])}]"
    unit = r["unit"].split("/")[0]
    return head + [wall, "-" if r["nfe"] is None else str(r["nfe"]),
                   f"{r['throughput']:.3g} {unit}/s",
                   "-" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}",
                   _e(r["max_err"]), _e(r["mean_err"]), _x(r["speedup_vs_best_peer"]),
                   _x(r["speedup_vs_baseline"]),
                   _fraction(r)]


def _fraction(r) -> str:
    """The fraction of the (float64) bound; float32 rows add their fraction of the float32
    bound."""
    if r["fraction_of_bound"] is None:
        return "-"
    f32 = r.get("fraction_of_float32_bound")
    return f"{r['fraction_of_bound']:.2g}" + ("" if f32 is None else f" (f32 {f32:.2g})")


def _plain(header, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(c) for c in row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _md(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_table(rows, markdown: bool = False) -> str:
    """Every row under a line naming its case (plain text for the terminal, or Markdown)."""
    out, case = [], None
    for r in rows:
        if r["case"] != case:
            case = r["case"]
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "rtol" or
                               not case.startswith("work-precision"))
            out.append((case, params, []))
        out[-1][2].append(table_cells(r))
    render = _md if markdown else _plain
    parts = []
    for case, params, cells in out:
        title = f"### ({cells[0][0]}) {case}" if markdown else f"== {case} =="
        parts.append(f"{title}\n{params}\n\n{render(TABLE_HEADER, cells)}")
    return "\n\n".join(parts)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    _atomic_write(path, write)


def _figures(report, out: Path) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for i, c in enumerate(report["curves"]):
        if c["status"] != "ok" or not c["sizes"]:
            continue
        ncol = 2 if c.get("memory_fit") else 1
        fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 3.8), squeeze=False)
        ax = axes[0, 0]
        s, t = np.asarray(c["sizes"], float), np.asarray(c["wall_min_s"], float)
        fit = c["fit"]
        out_mask = np.isin(c["sizes"], fit.get("left_out", []))
        ax.loglog(s[~out_mask], t[~out_mask], "o", label="min wall time")
        if out_mask.any():
            ax.loglog(s[out_mask], t[out_mask], "o", mfc="none", label="left out (< 50 ms)")
        ref = t[-1] * (s / s[-1]) ** fit["exponent"]
        ax.loglog(s, ref, "-", label=f"fit: exponent {fit['exponent']:.2f}")
        ax.set_xlabel(c["param"])
        ax.set_ylabel("seconds")
        ax.set_title(c["name"], fontsize=9)
        ax.legend(fontsize=8)
        if ncol == 2:
            ax = axes[0, 1]
            ax.plot(s, c["peak_mb"], "o-")
            mf = c["memory_fit"]
            ax.set_title(f"peak memory growth: {mf['bytes_per_unit']:.0f} bytes per {c['param']}",
                         fontsize=9)
            ax.set_xscale("log")
            ax.set_xlabel(c["param"])
            ax.set_ylabel(f"MB ({mf['method']})")
        fig.tight_layout()
        name = f"scaling_{i}_{c['param']}.png"
        _atomic_write(out / name, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)
        names.append((c["name"], name))
    fams = report["work_precision"]["families"]
    if fams:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for fam, v in fams.items():
            pts = v["points"]
            ax.loglog([p["wall_median_s"] for p in pts], [max(p["max_err"], 1e-16) for p in pts],
                      "o-", label=fam)
        ax.axhline(report["work_precision"]["target_max_err"], color="k", ls=":", lw=1)
        ax.set_xlabel("wall seconds (median)")
        ax.set_ylabel("max |log p - log p_eps|")
        ax.set_title(f"work-precision, {RING_LABEL}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        _atomic_write(out / "work_precision.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)
        names.append(("work-precision", "work_precision.png"))
    return names


def _precompile_note(result) -> str:
    """How the wall time splits when the run began by compiling the kernels (cold install)."""
    if not result:
        return ""
    parts = ", ".join(f"{g} {v:.0f} s" if isinstance(v, float) else f"{g} failed ({v})"
                      for g, v in result.items())
    return f" (first run after an install: it includes compiling the kernels in parallel: {parts})"


def _markdown(report, figures) -> str:
    env, b = report["environment"], report["bounds"]
    lines = [f"# scorebench bench ({report['profile']}{', peers' if report['peers'] else ''})", "",
             f"Command: `{report['command']}`; wall time {report['wall_s']:.1f} s"
             f"{_precompile_note(report.get('precompile'))}; "
             f"{env['cpus']} CPUs ({env.get('cpu')}: {', '.join(env.get('simd', []))}; numba "
             f"vectors {env.get('vector_bits')}-bit, arrays aligned to "
             f"{env.get('array_alignment')} bytes), "
             f"numba threads {env['numba_threads']}, torch threads "
             f"{env['torch_threads']['threads']}, OMP_WAIT_POLICY="
             f"{env.get('openmp', {}).get('OMP_WAIT_POLICY')}, GOMP_SPINCOUNT="
             f"{env.get('openmp', {}).get('GOMP_SPINCOUNT')}, OPENBLAS_THREAD_TIMEOUT="
             f"{env.get('openmp', {}).get('OPENBLAS_THREAD_TIMEOUT')}; "
             f"load average at start {env['loadavg_start']}, "
             f"at end {env.get('loadavg_end')} (the machine may be shared: ratios within the run "
             "are the figures to trust).", "",
             "## The limit of this machine (measured in this run)", "",
             f"exp {b['t_exp'] * 1e9:.3g} ns, normal draw {b['t_normal'] * 1e9:.3g} ns, "
             f"matrix multiply {b['r_mm'] / 1e9:.3g} GFLOP/s (best on {b['threads']} threads; "
             f"each rate the best of {b.get('measurements', 1)} measurements spread over the "
             "run).", "",
             _md(["measurement", "value"], [[k, f"{v:.3g}"] for k, v in b["detail"].items()]), "",
             "## Targets", "",
             _md(["target", "measured", "goal", "met", "how far", "detail"],
                 [[t["target"], "-" if t["measured"] is None else f"{t['measured']:.3g}",
                   f"{t['goal']:.3g}", {True: "yes", False: "no", None: "-"}[t["met"]],
                   "-" if t["how_far"] is None else f"{t['how_far']:.2g}x", t["detail"]]
                  for t in report["targets"]]), "",
             "## Results", "", "Ratios are speed-ups (> 1: faster than the best peer / the "
             "seed-style baseline); `frac bound` is the bound over the wall time (1 = at the limit; "
             "float32 rows add, as `f32`, their fraction of the float32 bound). "
             "Wall times are per call; a call under 10 ms is timed in bursts of back-to-back calls "
             "lasting ~10 ms (timeit's way), so that thread wake-up and cold caches are averaged "
             "over the burst instead of dominating a single sub-millisecond call.",
             "", format_table(report["rows"], markdown=True), "", "## Scaling", ""]
    for c in report["curves"]:
        if c["status"] != "ok":
            lines.append(f"- {c['name']}: {c['status']}: {c['note']}")
            continue
        fit = c["fit"]
        ci = "" if fit["ci"] is None else f" (95 % CI {fit['ci'][0]:.2f} to {fit['ci'][1]:.2f})"
        mem = c.get("memory_fit")
        mem_s = "" if not mem else f"; peak memory {mem['bytes_per_unit']:.0f} bytes per {c['param']}"
        left = fit.get("left_out") or []
        left_s = f" (left out of the fit, under 50 ms: {c['param']} = {left})" if left else ""
        work = c.get("work_fit")
        work_s = f"; operation-count exponent {work['exponent']:.2f}" if work else ""
        lines.append(f"- {c['name']}: time exponent {fit['exponent']:.2f}{ci}{left_s}{work_s}"
                     f"{mem_s}; max error {max(e for e in c['max_err'] if e is not None):.2e}")
    lines.append("")
    lines += [f"![{title}]({name})" for title, name in figures]
    row_notes = sorted({f"{r['implementation']}: {r['note']}" for r in report["rows"]
                        if r["status"] == "ok" and r["note"]})
    if report["notes"] or row_notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"] + row_notes]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out) -> dict:
    """Write bench.json, the PNG figures and bench.md into ``out``; returns the cleaned report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = clean_json(report)
    figures = _figures(report, out)
    report["figures"] = [name for _, name in figures]
    _write_text(out / "bench.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
    _write_text(out / "bench.md", _markdown(report, figures))
    return report
