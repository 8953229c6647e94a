r"""The verification suite runner: plan, run on an executor, write the report.

:func:`run_suite` runs the tasks of :func:`~scorebench.verification.suite_plan.plan_suite` through
:func:`~scorebench.verification.executors.run_tasks` with a progress bar (the longest first, the
results put back in plan order), turns a task that raised into a row with verdict ``"error"``,
builds the :class:`~scorebench.verification.report.Report` and writes it (``report.json`` first,
then the figures, ``report.md`` and ``report.html``, each atomically). On Ctrl-C it keeps what
finished, writes that with ``Report.interrupted = True`` and returns. For a fixed seed the
report's numbers do not depend on the executor or the number of jobs (see
:mod:`~scorebench.verification.suite_plan`).
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from scorebench.verification.executors import SerialExecutor, make_executor, run_tasks
from scorebench.verification.profiles import get_profile
from scorebench.verification.progress import ProgressBar
from scorebench.verification.report import Report, ResultRow, _atomic_write, environment_info, write_report
from scorebench.verification.report_render import FigureSet, render_figures, render_html_text, render_markdown
from scorebench.verification.suite_measurements import DIVERGENCE_ESTIMATORS, MEASUREMENTS, Measurement
from scorebench.verification.suite_plan import SuiteTask, plan_suite, solver_spec

__all__ = ["run_suite", "write_outputs", "plan_suite", "SuiteTask", "Measurement", "MEASUREMENTS",
           "DIVERGENCE_ESTIMATORS", "solver_spec"]


_KIND_OF = {"SerialExecutor": "serial", "ProcessPoolExecutor": "local", "DaskExecutor": "dask"}


def _result_row(task: SuiteTask, result) -> ResultRow:
    if result.ok:
        return result.value
    return task.error_row(result.error or "the task failed without a message")


def run_suite(
    solvers=None,
    scenarios=None,
    profile="quick",
    seed: int = 0,
    *,
    out=None,
    executor="local",
    jobs: int | None = None,
    scheduler=None,
    progress="auto",
    html: bool = True,
    tasks: Sequence | None = None,
) -> Report:
    """Run a verification suite and (when ``out`` is given) write its report.

    Parameters
    ----------
    solvers, scenarios, profile, seed
        As for :func:`plan_suite`.
    out : path, optional
        Directory for ``report.json``, ``report.md``, the figures and ``report.html``.
    executor : {"local", "serial", "dask"} or concurrent.futures.Executor
        A kind for :func:`~scorebench.verification.executors.make_executor` (``jobs`` workers,
        default ``os.cpu_count()``; ``scheduler`` a Dask address, client or cluster), or an
        executor the caller made and shuts down itself.
    progress : {"auto", "bar", "lines", "off"}
        Progress on stderr; ``"auto"``: a bar on a terminal, one line per task otherwise.
    html : bool
        Also write the self-contained ``report.html``.
    tasks : sequence of callables, optional
        Run these (picklable callables returning a ResultRow, with ``label``, ``error_row``)
        instead of :func:`plan_suite`'s.

    Returns
    -------
    Report
        ``interrupted=True`` when Ctrl-C stopped the run (only finished tasks have rows).
    """
    prof = get_profile(profile)
    todo = list(tasks) if tasks is not None else plan_suite(solvers, scenarios, prof, seed)
    owned = isinstance(executor, str)
    ex = make_executor(executor, jobs, scheduler) if owned else executor
    start = time.perf_counter()
    mode = None if progress == "auto" else progress
    bar = ProgressBar(len(todo), mode=mode, label="verify")
    interrupted = False
    # on a pool the longest tasks go first (no worker idles at the end); inline, plan order
    # (so an interrupted run has finished a prefix of the plan); results come back in plan order
    order = list(range(len(todo)))
    if not isinstance(ex, SerialExecutor):
        order.sort(key=lambda i: -float(getattr(todo[i], "cost", 1.0)))

    def on_done(result, n_done, n_total):
        row = result.value if result.ok else None
        bar.update(f"{result.label} {row.verdict if isinstance(row, ResultRow) else result.status}")

    try:
        shuffled = run_tasks(ex, [todo[i] for i in order], on_done=on_done)
        results = [None] * len(todo)
        for i, r in zip(order, shuffled):
            results[i] = r
    except KeyboardInterrupt:  # raised outside run_tasks' own handling (e.g. while submitting)
        results, interrupted = [], True
    finally:
        bar.close()
    interrupted = interrupted or any(r.status == "cancelled" for r in results)
    if owned:  # a caller's executor stays open (run_tasks has cancelled its queued futures)
        ex.shutdown(wait=not interrupted, cancel_futures=interrupted)
    rows = [_result_row(t, r) for t, r in zip(todo, results) if r.status != "cancelled"]
    cancelled = [t.label for t, r in zip(todo, results) if r.status == "cancelled"] if results else \
        [t.label for t in todo]
    kind = executor if owned else _KIND_OF.get(type(ex).__name__, type(ex).__name__)
    versions, platform = environment_info()
    report = Report(
        rows=rows, seed=seed, profile=prof.name, versions=versions, platform=platform,
        wall_s=time.perf_counter() - start, interrupted=interrupted,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        extra={"executor": kind, "jobs": jobs, "tasks": len(todo), "cancelled": cancelled},
    )
    if out is not None:
        write_outputs(report, out, html=html)
    return report


def write_outputs(report: Report, out, *, html: bool = True) -> Path:
    """Write ``report.json`` (first), the figures, ``report.md`` and ``report.html``; each atomically.

    The figures are drawn once and shared by the Markdown and the HTML (``write_report`` followed
    by ``render_html`` would draw them twice). Returns the directory.
    """
    out = Path(out)
    write_report(report, out, figures=False)  # report.json is safe on disk before the slow part
    try:
        figs = render_figures(report, out)
    except Exception as exc:  # a figure that cannot be drawn must not cost the text reports
        print(f"scorebench: warning: figures not drawn ({type(exc).__name__}: {exc}); report.md and "
              "report.html are written without them", file=sys.stderr)
        figs = FigureSet()
    _atomic_write(out / "report.md", [render_markdown(report, figs)])
    if html:
        _atomic_write(out / "report.html", [render_html_text(report, figs, out)])
    return out
