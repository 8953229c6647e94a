"""Print the oracle benchmark's speed-ups as a Markdown table.

    python benchmarks/ratios.py out.json [--stat min|median]

``out.json`` is pytest-benchmark's ``--benchmark-json`` output of ``bench_oracle.py``. For each
(op, d, K) group: the time per 1e5 points of every implementation (rows record their
``n_points``; times are scaled per point), the speed-ups of numba and torch over the plain-numpy
baseline and over the numpy reference, and, when the run includes the machine-limit rows, the
numba times (float64 and float32 points) as multiples of the float64 bound
:math:`N K t_{exp} + \\mathrm{flops}/R_{mm}` (best measured
time per exponential on all threads, measured matrix-multiply rate).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

IMPLS = ["baseline", "numpy", "numba", "numba32", "torch64", "torch32"]
PER = 1e5  # report times per this many points


def machine_limits(rows, stat):
    """(seconds per exponential on all threads, matrix-multiply flops per second), or Nones.

    numpy's SIMD ``np.exp`` runs on one thread: its all-thread time is taken as the one-thread
    time divided by the thread count (perfect scaling, an optimistic bound); the numba
    exponential is measured on all threads directly. The smaller of the two is the bound.
    """
    t_exp, r_mm = None, None
    threads = max((r["extra_info"].get("threads", 1) for r in rows), default=1)
    for row in rows:
        info, t = row["extra_info"], row["stats"][stat]
        name = info.get("impl", "")
        if name.startswith("exp"):
            per = t / info["exps"] / (threads if info["threads"] == 1 else 1)
            t_exp = per if t_exp is None else min(t_exp, per)
        elif name.startswith("matmul"):
            r_mm = info["flops"] / t
    return t_exp, r_mm


def table(data, stat="min"):
    rows = data["benchmarks"]
    t_exp, r_mm = machine_limits(rows, stat)
    groups = defaultdict(dict)
    for row in rows:
        info = row["extra_info"]
        if info.get("impl") in IMPLS:
            groups[(info["op"], info["d"], info["K"])][info["impl"]] = (row["stats"][stat], info)
    out = []
    if t_exp is not None and r_mm is not None:
        out.append(f"Machine limits ({stat}): {t_exp * 1e9:.3f} ns per exponential on all threads, "
                   f"matrix multiply {r_mm / 1e9:.1f} GFlop/s.\n")
    head = ["op", "d", "K"] + [f"{i} ms" for i in IMPLS] + [
        "numba vs baseline", "numba32 vs baseline", "torch64 vs baseline", "torch32 vs baseline",
        "numba vs numpy", "torch64 vs numpy", "bound ms", "numba / bound", "numba32 / bound"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for (op, d, K), impls in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        per = {i: impls[i][0] / impls[i][1]["n_points"] * PER for i in impls}
        cell = lambda i: f"{per[i] * 1e3:.1f}" if i in per else "-"
        speed = lambda i, ref: f"{per[ref] / per[i]:.1f}x" if i in per and ref in per else "-"
        bound = "-"
        ratio = ratio32 = "-"
        if t_exp is not None and r_mm is not None:
            # the flops the rows record per point (bench_oracle._kernel_flops: 2 d^2 per pair,
            # one product with C_k^-1, as scorebench.bench.workloads.pair_flops)
            row = next(iter(impls.values()))[1]
            flops = row["flops"] / row["n_points"] * PER
            b = PER * K * t_exp + flops / r_mm
            bound = f"{b * 1e3:.2f}"
            ratio = f"{per['numba'] / b:.1f}" if "numba" in per else "-"
            ratio32 = f"{per['numba32'] / b:.1f}" if "numba32" in per else "-"
        out.append("| " + " | ".join([op, str(d), str(K)] + [cell(i) for i in IMPLS] + [
            speed("numba", "baseline"), speed("numba32", "baseline"), speed("torch64", "baseline"),
            speed("torch32", "baseline"), speed("numba", "numpy"), speed("torch64", "numpy"), bound,
            ratio, ratio32]) + " |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("json", help="pytest-benchmark JSON file (--benchmark-json)")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean"],
                        help="which timing statistic to compare (default: min)")
    args = parser.parse_args(argv)
    with open(args.json) as fh:
        print(table(json.load(fh), args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
