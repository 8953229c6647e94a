"""Report figures as PNG files: error vs step, work–precision, likelihood vs rtol, Hutchinson, PC floor.

Figures are drawn on standalone :class:`matplotlib.figure.Figure` objects, which render through the
Agg canvas; pyplot is never imported, so no global backend is switched, no window can open and
drawing is safe from worker threads. Every function takes plain data (sequences, or a
:class:`~scorebench.verification.report.ResultRow` for :func:`plot_row`) and a path, writes one PNG
and returns the path. Points that cannot go on a log axis (None, NaN, inf, <= 0) are skipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = [
    "plot_error_vs_step",
    "plot_work_precision",
    "plot_loglik_vs_rtol",
    "plot_hutchinson_variance",
    "plot_pc_floor",
    "plot_row",
]

_DPI = 100
_SIZE = (6.0, 4.2)


def _arr(values) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _positive(*cols):
    """Mask of rows where every column is finite and > 0."""
    mask = np.ones(len(cols[0]), dtype=bool)
    for c in cols:
        mask &= np.isfinite(c) & (c > 0)
    return mask


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _loglog_axes(fig: Figure, xlabel: str, ylabel: str, title: str, position=111):
    ax = fig.add_subplot(position)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    # Minor tick labels on short log ranges ("2x10^1 3x10^1 ...") overlap; keep only major ones.
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    return ax


def _points(ax, x, y, bars, mask, **kw):
    if bars is not None:
        b = _arr(bars)
        ok = mask & np.isfinite(b)
        ax.errorbar(x[ok], y[ok], yerr=np.minimum(b[ok], 0.999 * y[ok]), fmt="none", ecolor="0.5", capsize=2)
    ax.plot(x[mask], y[mask], **kw)


def plot_error_vs_step(
    step_sizes: Sequence[float],
    errors: Sequence[float],
    path,
    *,
    used: Sequence[int] | None = None,
    error_bars: Sequence[float] | None = None,
    order: float | None = None,
    intercept: float | None = None,
    declared_order: float | None = None,
    title: str = "",
    xlabel: str = "step size h",
    ylabel: str = "error",
) -> Path:
    """Log-log error against step: points used in the fit (filled) and left out (open), the fitted
    line ``exp(intercept) h^order`` over the used range, and a reference slope of the declared order
    through the finest used point."""
    h, e = _arr(step_sizes), _arr(errors)
    ok = _positive(h, e)
    in_fit = np.zeros_like(ok) if used is not None else ok.copy()
    if used is not None:
        in_fit[list(used)] = True
        in_fit &= ok
    fig = Figure(figsize=_SIZE)
    ax = _loglog_axes(fig, xlabel, ylabel, title)
    _points(ax, h, e, error_bars, in_fit, marker="o", ls="", color="C0", label="used in fit")
    if np.any(ok & ~in_fit):
        ax.plot(h[ok & ~in_fit], e[ok & ~in_fit], marker="o", ls="", mfc="none", color="C3", label="left out")
    if np.any(in_fit):
        hu = np.sort(h[in_fit])
        if order is not None and intercept is not None and math.isfinite(order) and math.isfinite(intercept):
            ax.plot(hu, np.exp(intercept) * hu**order, "-", color="C0", label=f"fit: slope {order:.2f}")
        if declared_order is not None and math.isfinite(declared_order):
            i0 = np.flatnonzero(in_fit)[np.argmin(h[in_fit])]
            ref = e[i0] * (hu / h[i0]) ** declared_order
            ax.plot(hu, ref, "--", color="0.4", label=f"reference slope {declared_order:g}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_work_precision(series, path, *, title: str = "", ylabel: str = "error") -> Path:
    """Work–precision: error against NFE (left) and against wall time (right), one line per series.

    ``series`` holds ``(label, errors, nfe, wall_s)`` tuples or objects with ``solver``, ``errors``,
    ``nfe`` and ``wall_s`` attributes (ResultRow); an empty ``nfe`` or ``wall_s`` skips that panel.
    """
    fig = Figure(figsize=(10.0, 4.2))
    axes = [_loglog_axes(fig, "function evaluations (NFE)", ylabel, title, 121),
            _loglog_axes(fig, "wall time [s]", ylabel, "", 122)]
    for i, s in enumerate(series):
        label, errors, nfe, wall = (s.solver, s.errors, s.nfe, s.wall_s) if hasattr(s, "errors") else s
        e = _arr(errors)
        for ax, work in zip(axes, (nfe, wall)):
            if work is None or len(work) != len(e):
                continue
            w = _arr(work)
            ok = _positive(w, e)
            order = np.argsort(w[ok])
            ax.plot(w[ok][order], e[ok][order], marker="os^vD<>"[i % 7], label=label, color=f"C{i % 10}")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_loglik_vs_rtol(
    rtols: Sequence[float],
    errors: Sequence[float],
    path,
    *,
    nfe: Sequence[float] | None = None,
    error_bars: Sequence[float] | None = None,
    title: str = "",
) -> Path:
    """Likelihood error ``|log p_ODE − log p_ε|`` against rtol, with the slope-1 line of tolerance
    proportionality through the finest point, and NFE on a second axis when given."""
    r, e = _arr(rtols), _arr(errors)
    ok = _positive(r, e)
    fig = Figure(figsize=_SIZE)
    ax = _loglog_axes(fig, "rtol", "log-likelihood error", title)
    _points(ax, r, e, error_bars, ok, marker="o", ls="-", color="C0", label="error")
    if np.any(ok):
        i0 = np.flatnonzero(ok)[np.argmin(r[ok])]
        rs = np.sort(r[ok])
        ax.plot(rs, e[i0] * rs / r[i0], "--", color="0.4", label="slope 1")
    handles, labels = ax.get_legend_handles_labels()
    if nfe is not None and len(nfe) == len(r):
        n = _arr(nfe)
        okn = _positive(r, n)
        ax2 = ax.twinx()
        ax2.set_yscale("log")
        ax2.plot(r[okn], n[okn], "s:", color="C1", label="NFE (right axis)")
        ax2.set_ylabel("NFE", color="C1")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    fig.subplots_adjust(bottom=0.22)  # the legend goes below the axes, clear of both curves
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels))
    return _save(fig, path)


def plot_hutchinson_variance(
    probes: Sequence[float],
    variances: Sequence[float],
    path,
    *,
    theory=None,
    error_bars: Sequence[float] | None = None,
    title: str = "",
) -> Path:
    """Estimator variance against the number of probes m, with the theoretical ``c/m`` line.

    ``theory`` is either the coefficient ``c`` (variance ``c/m``) or one theoretical value per m.
    """
    m, v = _arr(probes), _arr(variances)
    ok = _positive(m, v)
    fig = Figure(figsize=_SIZE)
    ax = _loglog_axes(fig, "probes m", "variance", title)
    _points(ax, m, v, error_bars, ok, marker="o", ls="", color="C0", label="measured")
    if theory is not None:
        ms = np.sort(m[np.isfinite(m) & (m > 0)])
        if np.ndim(theory) == 0:
            ax.plot(ms, float(theory) / ms, "--", color="0.3", label="theory c/m")
        else:
            t = _arr(theory)
            okt = _positive(m, t)
            idx = np.argsort(m[okt])
            ax.plot(m[okt][idx], t[okt][idx], "--", color="0.3", label="theory")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_pc_floor(
    snrs: Sequence[float],
    errors: Sequence[float],
    path,
    *,
    predicted_floor=None,
    error_bars: Sequence[float] | None = None,
    title: str = "",
) -> Path:
    """Predictor–corrector weak error against snr with the predicted floor (scalar or one per snr)."""
    s, e = _arr(snrs), _arr(errors)
    ok = _positive(s, e)
    fig = Figure(figsize=_SIZE)
    ax = _loglog_axes(fig, "snr", "weak error", title)
    _points(ax, s, e, error_bars, ok, marker="o", ls="-", color="C0", label="measured")
    if predicted_floor is not None:
        if np.ndim(predicted_floor) == 0:
            ax.axhline(float(predicted_floor), ls="--", color="0.3", label="predicted floor")
        else:
            p = _arr(predicted_floor)
            okp = _positive(s, p)
            idx = np.argsort(s[okp])
            ax.plot(s[okp][idx], p[okp][idx], "--", color="0.3", label="predicted floor")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_row(row, path) -> Path | None:
    """The figure that suits one ResultRow, by metric; None when it has fewer than two plottable points.

    ``hutchinson_variance`` rows read ``extra["theory"]`` (coefficient or per-point values),
    ``pc_floor`` rows ``extra["predicted_floor"]``; ``abscissa == "rtol"`` rows are drawn against rtol.
    """
    if int(np.sum(_positive(_arr(row.step_sizes), _arr(row.errors)))) < 2:
        return None
    title = f"{row.solver} | {row.scenario} | {row.sde} | {row.metric}"
    bars = row.error_bars
    if row.metric == "hutchinson_variance":
        return plot_hutchinson_variance(row.step_sizes, row.errors, path, theory=row.extra.get("theory"),
                                        error_bars=bars, title=title)
    if row.metric == "pc_floor":
        return plot_pc_floor(row.step_sizes, row.errors, path, predicted_floor=row.extra.get("predicted_floor"),
                             error_bars=bars, title=title)
    if row.abscissa == "rtol" and row.metric == "loglik_error":
        return plot_loglik_vs_rtol(row.step_sizes, row.errors, path, nfe=row.nfe or None, error_bars=bars,
                                   title=title)
    used = [i for i in range(len(row.step_sizes)) if i not in {p.index for p in row.excluded}]
    xlabel = "step size h" if row.abscissa == "step_size" else row.abscissa
    return plot_error_vs_step(row.step_sizes, row.errors, path, used=used, error_bars=bars,
                              order=row.estimated_order, intercept=row.intercept,
                              declared_order=row.declared_order, title=title, xlabel=xlabel,
                              ylabel=row.metric.replace("_", " "))
