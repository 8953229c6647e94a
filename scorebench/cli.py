"""The ``scorebench`` command line: ``verify``, ``report``, ``list`` (and ``bench`` when installed).

``scorebench verify [--solver SPEC]... [--scenario NAME]... [--profile quick|full] [--out DIR]
[--jobs N] [--executor local|serial|dask] [--scheduler ADDRESS] [--seed S]`` runs the verification
suite (default: every registered solver), shows a progress bar on stderr, prints a summary table
and writes ``report.md``, ``report.json``, PNG figures and ``report.html`` into ``--out``.
``scorebench report DIR`` re-renders ``report.md``, the figures and a self-contained
``report.html`` from ``DIR/report.json``. ``scorebench list`` shows the solvers (kind, declared
orders), the divergence estimators and the scenarios. ``scorebench precompile [--processes N]``
compiles the fused numba kernels now, in parallel worker processes, instead of on first use
(:mod:`scorebench.solvers.precompile`).

Exit status: 0 when every verdict passes ("info" rows are not verdicts), 1 when any row failed or
errored, 2 for a usage error (unknown solver or scenario, unwritable ``--out``, a missing report:
one line on stderr), 130 after Ctrl-C (the finished rows are written first).

The ``bench`` subcommand lives in ``scorebench.bench.cli``; when that module exists its
``add_parser(subparsers)`` adds the subcommand, which sets ``func`` (``args -> exit status``) as
its parser default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A problem with the command line or the environment: one line on stderr, exit status 2."""


def _int_at_least(text: str, minimum: int, expected: str) -> int:
    """``int(text)`` when it is >= ``minimum``, else an argparse error naming ``expected``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _seed(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def _check_writable(out: Path) -> None:
    """Create ``out`` if needed and prove a file can be written there (before any work is done)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".scorebench-write-test-"):
            pass
    except OSError as exc:
        raise _UsageError(f"--out: cannot write to {str(out)!r}: {exc.strerror or exc}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(c) for c in r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _summary(report) -> str:
    from scorebench.verification.report_render import SUMMARY_HEADER, _summary_cells

    counts: dict[str, int] = {}
    for r in report.rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    tally = ", ".join(f"{counts[v]} {v}" for v in ("pass", "fail", "error", "info") if v in counts) or "no rows"
    body = _table(SUMMARY_HEADER, [_summary_cells(r) for r in report.rows]) if report.rows else ""
    wall = f"{report.wall_s:.1f} s" if report.wall_s is not None else "-"
    lines = [body, "", f"{len(report.rows)} rows: {tally}; wall time {wall}"]
    errors = [r for r in report.rows if r.verdict == "error"]
    for r in errors:
        lines.append(f"error: {r.solver} | {r.scenario} | {r.metric}: {_one_line(r.reason)}")
    return "\n".join(lines).lstrip("\n")


def _cmd_verify(args) -> int:
    from scorebench.verification.executors import make_executor
    from scorebench.verification.suite import plan_suite, run_suite

    out = Path(args.out)
    try:
        tasks = plan_suite(args.solver or None, args.scenario or None, args.profile, args.seed)
    except (ValueError, TypeError) as exc:
        raise _UsageError(_one_line(exc)) from None
    if args.scheduler is not None and args.executor != "dask":
        raise _UsageError("--scheduler: only meaningful with --executor dask")
    _check_writable(out)
    try:
        executor = make_executor(args.executor, args.jobs, args.scheduler)
    except ImportError as exc:  # --executor dask without the optional dependency
        raise _UsageError(f"--executor: {_one_line(exc)}") from None
    except (OSError, TimeoutError) as exc:  # no Dask scheduler at that address
        raise _UsageError(f"--scheduler: cannot connect to {args.scheduler!r}: {_one_line(exc)}") from None
    report = None
    try:
        report = run_suite(profile=args.profile, seed=args.seed, out=out, executor=executor, jobs=args.jobs,
                           tasks=tasks)
    finally:  # after Ctrl-C do not wait for the tasks still running in the workers
        clean = report is not None and not report.interrupted
        executor.shutdown(wait=clean, cancel_futures=not clean)
    print(_summary(report))
    print(f"report: {out / 'report.md'} (also report.json, report.html, figures/)")
    if report.interrupted:
        print(f"interrupted: {len(report.extra.get('cancelled', []))} tasks did not finish; "
              "the finished rows were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if report.rows and report.all_passed() else EXIT_FAIL


def _cmd_report(args) -> int:
    from scorebench.verification.report import load_report
    from scorebench.verification.suite import write_outputs

    directory = Path(args.dir)
    try:
        report = load_report(directory)
    except FileNotFoundError:
        raise _UsageError(f"dir: no report.json in {str(directory)!r}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise _UsageError(f"dir: cannot read the report in {str(directory)!r}: {_one_line(exc)}") from None
    target = directory if directory.is_dir() else directory.parent
    _check_writable(target)
    write_outputs(report, target)
    print(_summary(report))
    print(f"report: {target / 'report.md'}, {target / 'report.html'}")
    return EXIT_OK if report.rows and report.all_passed() else EXIT_FAIL


def _orders(info) -> str:
    if info.kind == "sde":
        return f"strong {info.strong_order if info.strong_order is not None else '-'}, " \
               f"weak {info.weak_order if info.weak_order is not None else '-'}"
    if info.kind == "adaptive":
        return f"order {info.order} (error estimate {info.error_order})"
    return f"order {info.order}"


def _cmd_list(args) -> int:
    from scorebench.solvers.registry import list_solvers
    from scorebench.verification.scenarios import list_scenarios
    from scorebench.verification.suite import DIVERGENCE_ESTIMATORS

    solvers = [[i.name, i.kind, _orders(i), f"{i.cls.__module__}.{i.cls.__qualname__}"] for i in list_solvers()]
    print("Solvers")
    print(_table(["name", "kind", "declared orders", "class"], solvers))
    print()
    print("Divergence estimators")
    print(_table(["name", "verified against"], [[n, "variance theory (exact Hessian)"] for n in DIVERGENCE_ESTIMATORS]))
    print()
    print("Scenarios")
    scen = [[s.name, s.dim, s.n_components, s.description] for s in list_scenarios()]
    print(_table(["name", "d", "K", "description"], scen))
    return EXIT_OK


def _cmd_precompile(args) -> int:
    from scorebench.solvers.precompile import precompile

    start = time.perf_counter()
    result = precompile(args.processes)
    for group, value in result.items():
        print(f"{group}: {value:.1f} s" if isinstance(value, float) else f"{group}: {value}")
    print(f"precompile: {time.perf_counter() - start:.1f} s in all")
    return EXIT_OK if all(isinstance(v, float) for v in result.values()) else EXIT_FAIL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``verify``, ``report``, ``list``, and ``bench`` if installed)."""
    parser = argparse.ArgumentParser(prog="scorebench", description="Verify and benchmark diffusion solvers "
                                     "against exact Gaussian-mixture oracles.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("verify", help="run the verification suite and write a report")
    v.add_argument("--solver", action="append", metavar="SPEC",
                   help="registered name, package.module:Class or path/file.py:Class (repeatable; "
                        "default: every registered solver)")
    v.add_argument("--scenario", action="append", metavar="NAME", help="scenario name (repeatable; default: "
                   "the profile's scenarios for each measurement)")
    v.add_argument("--profile", choices=("quick", "full"), default="quick")
    v.add_argument("--out", default="scorebench-report", metavar="DIR", help="report directory")
    v.add_argument("--jobs", type=_positive_int, default=None, metavar="N", help="workers (default: CPU count)")
    v.add_argument("--executor", choices=("local", "serial", "dask"), default="local")
    v.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address")
    v.add_argument("--seed", type=_seed, default=0, metavar="S")
    v.set_defaults(func=_cmd_verify)

    r = sub.add_parser("report", help="re-render report.md, figures and report.html from report.json")
    r.add_argument("dir", metavar="DIR")
    r.set_defaults(func=_cmd_report)

    ls = sub.add_parser("list", help="list solvers and scenarios")
    ls.set_defaults(func=_cmd_list)

    pc = sub.add_parser("precompile", help="compile the fused numba kernels now, in parallel "
                        "processes (otherwise they compile on first use)")
    pc.add_argument("--processes", type=_positive_int, default=None, metavar="N",
                    help="worker processes (default: CPU count)")
    pc.set_defaults(func=_cmd_precompile)

    try:
        from scorebench.bench.cli import add_parser
    except ModuleNotFoundError as exc:
        if exc.name not in ("scorebench.bench", "scorebench.bench.cli"):
            raise
    else:
        add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _UsageError as exc:
        print(f"scorebench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("scorebench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
