"""Result rows and reports: ``report.json`` (machine-readable), ``report.md``, PNG figures, ``report.html``.

One :class:`ResultRow` per measurement (a solver on a scenario under an SDE, one metric); a
:class:`Report` is the rows plus run metadata. ``step_sizes`` holds the abscissa named by
``abscissa`` ("step_size", or e.g. "rtol", "probes", "snr"); ``errors``, ``nfe``, ``wall_s`` and
``error_bars`` are aligned with it (``nfe``/``wall_s`` may be empty, ``error_bars`` None).

**Non-finite numbers.** JSON has no NaN or infinity, so every NaN/±inf is stored as ``None`` (JSON
``null``) when a row is built: in scalars (``estimated_order``...) ``None`` means "no value", in lists
it marks a point whose value was not finite (the row's ``reason`` says why). Numbers are kept as
Python ``int``/``float`` (numpy scalars and arrays converted), so ``load_report`` of a written
report compares equal to the original. ``extra`` may hold JSON values (str, bool, int, float,
None, lists, str-keyed dicts, numpy arrays); anything else makes ``write_report`` raise TypeError.

**Atomic writes.** ``report.json`` is written first, streamed into a temporary file in the same
directory and moved over the old one with :func:`os.replace` only when complete; on any failure the
temporary file is removed and the previous ``report.json`` is left as it was. Figures, ``report.md``
and ``report.html`` are replaced the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform as _platform
import sys
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from scorebench.verification.orders import ExcludedPoint, OrderFit, OrderVerdict
from scorebench.verification.report_render import render_figures, render_html_text, render_markdown

__all__ = ["ResultRow", "Report", "write_report", "load_report", "render_html", "environment_info"]

SCHEMA = "scorebench.report"
SCHEMA_VERSION = 1
KINDS = ("ode", "sde", "divergence")
VERDICTS = ("pass", "fail", "error", "info")  # "info": measured and reported, not judged
KNOWN_METRICS = (
    "global_error", "strong_error", "weak_error", "loglik_error", "tolerance_proportionality",
    "pc_floor", "hutchinson_variance", "prior_mismatch", "exactness",
)


def _scalar(name: str, v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number or None, got {type(v).__name__}")
    f = float(v)
    return f if math.isfinite(f) else None


def _numbers(name: str, values) -> list:
    if values is None:
        return []
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D sequence, got shape {values.shape}")
        values = values.tolist()
    if isinstance(values, (str, bytes, dict)):
        raise TypeError(f"{name}: expected a sequence of numbers, got {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out.append(int(v))
        else:
            out.append(_scalar(name, v))
    return out


def _json_value(v):
    """Plain JSON form of v (numpy converted, non-finite floats -> None); unknown objects pass through."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise TypeError(f"extra: dict keys must be strings, got {bad[:3]!r}")
        return {k: _json_value(x) for k, x in v.items()}
    return v


@dataclass
class ResultRow:
    """One measurement and its verdict (keys per DESIGN.md "Reports", plus diagnostics).

    Attributes
    ----------
    solver, scenario, sde, metric : str
        What was measured; ``metric`` is free text, the usual names are in ``KNOWN_METRICS``.
    kind : {"ode", "sde", "divergence"}
    verdict : {"pass", "fail", "error", "info"}
        "error": the solver raised or returned non-finite values (``reason`` holds the message);
        "info": reported, not judged.
    declared_order, estimated_order, last_pair_order : float or None
        Declared order, least-squares slope, finest-pair slope.
    order_ci : [lo, hi] or None
        Confidence interval of ``estimated_order``.
    intercept : float or None
        Natural-log intercept ``log C`` of the fitted ``e = C h^p`` (for drawing the fitted line).
    tolerance : float or None
        Tolerance behind the verdict; ``reason`` says how it was derived.
    step_sizes, errors, nfe, wall_s, error_bars : list
        Per-point data aligned with ``step_sizes`` (the abscissa named by ``abscissa``);
        ``nfe``/``wall_s`` may be empty, ``error_bars`` (Monte Carlo standard errors) None.
    excluded : list of ExcludedPoint
        Points left out of the fit (index into ``step_sizes``, values, reason).
    extra : dict
        Metric-specific data: ``"theory"`` for hutchinson_variance rows (coefficient c of c/m, or one
        value per point), ``"predicted_floor"`` for pc_floor rows (scalar or one value per point).
    """

    solver: str
    kind: str
    scenario: str
    sde: str
    metric: str
    verdict: str
    declared_order: float | None = None
    estimated_order: float | None = None
    order_ci: list | None = None
    step_sizes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    nfe: list = field(default_factory=list)
    wall_s: list = field(default_factory=list)
    last_pair_order: float | None = None
    intercept: float | None = None
    tolerance: float | None = None
    reason: str = ""
    excluded: list = field(default_factory=list)
    error_bars: list | None = None
    abscissa: str = "step_size"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("solver", "kind", "scenario", "sde", "metric", "verdict", "reason", "abscissa"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name}: expected a str, got {type(getattr(self, name)).__name__}")
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")
        if not self.metric:
            raise ValueError("metric: expected a non-empty name")
        for name in ("declared_order", "estimated_order", "last_pair_order", "intercept", "tolerance"):
            setattr(self, name, _scalar(name, getattr(self, name)))
        if self.order_ci is not None:
            self.order_ci = _numbers("order_ci", self.order_ci)
            if len(self.order_ci) != 2:
                raise ValueError(f"order_ci: expected [lo, hi], got {self.order_ci!r}")
        for name in ("step_sizes", "errors", "nfe", "wall_s"):
            setattr(self, name, _numbers(name, getattr(self, name)))
        if self.error_bars is not None:
            self.error_bars = _numbers("error_bars", self.error_bars)
        n = len(self.step_sizes)
        for name in ("errors", "nfe", "wall_s", "error_bars"):
            vals = getattr(self, name)
            if vals is not None and len(vals) not in ((n,) if name == "errors" else (0, n)):
                raise ValueError(f"{name}: expected {n} values (one per step size), got {len(vals)}")
        self.excluded = [p if isinstance(p, ExcludedPoint) else ExcludedPoint(**p) for p in self.excluded]
        self.excluded = [
            ExcludedPoint(int(p.index), _scalar("excluded.step_size", p.step_size),
                          _scalar("excluded.error", p.error), str(p.reason))
            for p in self.excluded
        ]
        if not isinstance(self.extra, dict):
            raise TypeError(f"extra: expected a dict, got {type(self.extra).__name__}")
        self.extra = _json_value(self.extra)

    @classmethod
    def from_fit(cls, fit: OrderFit, verdict: OrderVerdict, **fields) -> ResultRow:
        """A row from an order fit and its verdict; ``fields`` give the identity and the data."""
        return cls(
            verdict=verdict.verdict, tolerance=verdict.tolerance, reason=verdict.reason,
            estimated_order=fit.order, order_ci=list(fit.ci), last_pair_order=fit.last_pair_order,
            intercept=fit.intercept, excluded=list(fit.excluded), **fields,
        )

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["excluded"] = [dataclasses.asdict(p) for p in self.excluded]
        return d


@dataclass
class Report:
    """Rows plus run metadata (seed, profile, package versions, wall time, platform)."""

    rows: list = field(default_factory=list)
    seed: int | None = None
    profile: str | None = None
    versions: dict = field(default_factory=dict)
    wall_s: float | None = None
    platform: dict = field(default_factory=dict)
    created: str | None = None
    interrupted: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rows = [r if isinstance(r, ResultRow) else ResultRow(**r) for r in self.rows]
        self.wall_s = _scalar("wall_s", self.wall_s)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise TypeError(f"seed: expected an int or None, got {type(self.seed).__name__}")
        self.seed = None if self.seed is None else int(self.seed)
        self.versions, self.platform, self.extra = (_json_value(x) for x in (self.versions, self.platform, self.extra))

    def all_passed(self) -> bool:
        """True when no row failed or errored ("info" rows are not verdicts)."""
        return all(r.verdict in ("pass", "info") for r in self.rows)

    def metadata(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rows"}


def environment_info() -> tuple[dict, dict]:
    """(versions of scorebench and its dependencies, platform description); imports nothing heavy."""
    versions = {"python": _platform.python_version()}
    for pkg in ("scorebench", "numpy", "scipy", "numba", "torch", "matplotlib", "dask", "distributed"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    plat = {"system": _platform.platform(), "machine": _platform.machine(),
            "processor": _platform.processor(), "cpu_count": os.cpu_count(), "executable": sys.executable}
    return versions, plat


def _atomic_write(path: Path, chunks) -> None:
    """Write the text chunks to a temporary file beside ``path`` and ``os.replace`` it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_chunks(report: Report):
    head = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "metadata": report.metadata()}
    yield json.JSONEncoder(allow_nan=False, indent=1).encode(head)[:-2] + ',\n "rows": ['
    enc = json.JSONEncoder(allow_nan=False)  # one row per line
    for i, row in enumerate(report.rows):
        yield "\n  " if i == 0 else ",\n  "
        try:
            yield from enc.iterencode(row.to_dict())
        except (TypeError, ValueError) as exc:
            raise TypeError(f"report: row {i} ({row.solver} / {row.scenario} / {row.metric}) "
                            f"cannot be written as JSON: {exc}") from exc
    yield "\n ]\n}\n"


def write_report(report: Report, out_dir, *, figures: bool = True) -> Path:
    """Write ``report.json``, the PNG figures and ``report.md`` into ``out_dir``; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    _atomic_write(json_path, _json_chunks(report))
    figs = render_figures(report, out) if figures else None
    _atomic_write(out / "report.md", [render_markdown(report, figs)])
    return json_path


def load_report(path) -> Report:
    """Read a report from ``report.json`` or from the directory holding it."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    with open(p, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"path: {p} is not a scorebench report (schema {SCHEMA!r} missing)")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"path: {p} has schema_version {doc.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return Report(rows=[ResultRow(**r) for r in doc["rows"]], **doc["metadata"])


def render_html(report: Report, out_dir) -> Path:
    """Write one self-contained ``report.html`` (figures embedded as base64 data URIs); return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = render_figures(report, out)
    path = out / "report.html"
    _atomic_write(path, [render_html_text(report, figs, out)])
    return path
