"""``scorebench bench [--quick] [--peers] [--out DIR] [--seed S]``: the side-by-side benchmark.

Runs the workloads of :mod:`.workloads` (likelihood, sampling, kernels, scaling) with
scorebench's implementations and the peers of :mod:`.peers`, measures this machine's limit in
the same run, prints one table (implementation, wall median [min-max], NFE, throughput, peak
memory, max and mean error against the exact oracle, speed-ups against the best peer and the
seed-style baseline, fraction of the bound) and writes ``bench.json``, ``bench.md`` and PNG
scaling plots into ``--out``.

``--quick`` uses smaller N and fewer repeats (minutes); the default is the issue's full sizes.
``--peers`` adds the seed-style scipy + torch-autograd baseline, torchdiffeq and torchsde (the
latter two from the ``peers`` extra; rows are skipped with a note when it is not installed).
The hidden ``--tiny`` shrinks everything to a few hundred points for tests.

Exit status: 0 when every row ran (or was skipped with a note), 1 when an implementation
raised (its row carries the message), 2 for an unwritable ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scorebench.cli import _check_writable, _seed, _UsageError

__all__ = ["add_parser", "cmd_bench"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers``; it sets ``func`` (args -> exit status)."""
    p = subparsers.add_parser("bench", help="benchmark against peers and this machine's limit",
                              description="Run the likelihood, sampling, kernel and scaling "
                              "workloads with scorebench and its peers, measure this machine's "
                              "limit in the same run, print the table (wall time, NFE, throughput, "
                              "peak memory, max/mean error against the exact oracle, speed-ups, "
                              "fraction of the bound) and write bench.json, bench.md and PNG plots.")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--peers", action="store_true",
                   help="add the seed-style baseline, torchdiffeq and torchsde (the peers extra)")
    p.add_argument("--out", default="scorebench-bench", metavar="DIR", help="report directory")
    p.add_argument("--seed", type=_seed, default=0, metavar="S")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)
    return p


def _progress(row) -> None:
    if row["status"] == "ok":
        what = f"{row['wall_median_s']:.3g} s"
    else:
        what = f"{row['status']}: {row.get('note', '')}"
    print(f"  {row['case']} | {row['implementation']}: {what}", file=sys.stderr, flush=True)


def _precompile_if_cold(tiny: bool):
    """Compile the fused kernels in parallel first when this installation never did (not for
    ``--tiny``, which tests run beside other compiling processes); returns the timings or None."""
    from scorebench.solvers.precompile import BENCH_GROUPS, is_precompiled, precompile

    if tiny or is_precompiled(BENCH_GROUPS, "bench"):
        return None
    print("compiling the fused numba kernels (first run after an install) ...", file=sys.stderr,
          flush=True)
    t0 = time.perf_counter()
    result = precompile(groups=BENCH_GROUPS, scope="bench")
    print(f"  compiled in {time.perf_counter() - t0:.1f} s: {result}", file=sys.stderr, flush=True)
    return result


def cmd_bench(args) -> int:
    """Run the bench for parsed ``args``; print the table; write the report."""
    from .report import format_table, write_report
    from .runner import run_bench

    out = Path(args.out)
    try:
        _check_writable(out)
    except _UsageError as exc:
        print(f"scorebench bench: error: {exc}", file=sys.stderr)
        return 2
    profile = "tiny" if args.tiny else "quick" if args.quick else "full"
    start = time.perf_counter()
    compiled = _precompile_if_cold(args.tiny)
    report = run_bench(profile, with_peers=args.peers, seed=args.seed, progress=_progress)
    report["wall_s"] = time.perf_counter() - start
    report["precompile"] = compiled
    flags = [f for f, on in (("--tiny", args.tiny), ("--quick", args.quick), ("--peers", args.peers)) if on]
    report["command"] = " ".join(["scorebench bench", *flags, "--out", str(args.out),
                                  *(["--seed", str(args.seed)] if args.seed else [])])
    report = write_report(report, out)
    print(format_table(report["rows"]))
    print()
    for t in report["targets"]:
        met = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        far = "" if t["how_far"] is None or t["met"] else f" ({t['how_far']:.2g}x away)"
        print(f"target {t['target']}: {met}{far}")
    for c in report["curves"]:
        if c["status"] == "ok":
            print(f"scaling {c['name']}: exponent {c['fit']['exponent']:.2f}")
    for note in report["notes"]:
        print(f"note: {note}")
    env = report["environment"]
    print(f"wall time {report['wall_s']:.1f} s; load average {env['loadavg_start']} -> "
          f"{env['loadavg_end']}")
    print(f"report: {out / 'bench.md'} (also bench.json and PNG plots)")
    return 1 if any(r["status"] == "error" for r in report["rows"]) or any(
        c["status"] == "error" for c in report["curves"]) else 0
