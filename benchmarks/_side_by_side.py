"""The summary row shared by the generic-against-generated benchmarks."""

from __future__ import annotations

import pytest


def summarize(benchmark, results: dict, unit: str, check,
              pairs=(("generic", "generated"),)) -> None:
    """Print the time per ``unit`` of two implementations and the speed-up for every group.

    ``results`` maps a group to ``{implementation: (ns, out)}``; for each ``(before, after)``
    of ``pairs`` (default: ``generic`` against ``generated``) present in a group,
    ``check(before_out, after_out)`` asserts that both computed the same numbers. A benchmark
    itself only so that ``--benchmark-only`` runs it; it times nothing.
    """
    if not results:
        pytest.skip("run together with the benchmarks above")
    benchmark.group = "summary"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    table = {}
    for before, after in pairs:
        print()
        print(f"{'group':<40} {before:>10} {after:>10} {'speed-up':>9}   (ns per {unit})")
        for group, rows in results.items():
            if {before, after} <= rows.keys():
                (g, out_g), (u, out_u) = rows[before], rows[after]
                check(out_g, out_u)
                print(f"{group:<40} {g:>10.2f} {u:>10.2f} {g / u:>8.2f}x")
                table.setdefault(group, {}).update(
                    {f"{before}_ns": g, f"{after}_ns": u, f"speedup_{after}_vs_{before}": g / u})
    benchmark.extra_info["table"] = table
