"""The summary row shared by the generic-against-generated benchmarks."""

from __future__ import annotations

import pytest


def summarize(benchmark, results: dict, unit: str, check) -> None:
    """Print the time per ``unit`` of both implementations and the speed-up for every group.

    ``results`` maps a group to ``{"generic": (ns, out), "generated": (ns, out)}``;
    ``check(generic_out, generated_out)`` asserts that both computed the same numbers. A
    benchmark itself only so that ``--benchmark-only`` runs it; it times nothing.
    """
    if not results:
        pytest.skip("run together with the benchmarks above")
    benchmark.group = "summary"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    table = {}
    print()
    print(f"{'group':<40} {'generic':>9} {'generated':>10} {'speed-up':>9}   (ns per {unit})")
    for group, rows in results.items():
        if {"generic", "generated"} <= rows.keys():
            (g, out_g), (u, out_u) = rows["generic"], rows["generated"]
            check(out_g, out_u)
            print(f"{group:<40} {g:>9.2f} {u:>10.2f} {g / u:>8.2f}x")
            table[group] = {"generic_ns": g, "generated_ns": u, "speedup": g / u}
    benchmark.extra_info["table"] = table
