"""``run_case``: repeats interleaved across implementations, failures kept as rows, ratios."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from scorebench.bench.case import Case, Impl, Outcome
from scorebench.bench.measure import PeakMemory
from scorebench.bench.runner import run_case


def _case(calls, fail_on_call=None, seconds=0.011):
    """Implementations a, b (and c, absent); each run takes ``seconds`` (from 10 ms on, one call
    per timing; shorter calls are timed in bursts)."""
    def impl(name, value):
        def run():
            time.sleep(seconds)
            calls.append(name)
            if fail_on_call is not None and name == fail_on_call[0] and \
                    calls.count(name) == fail_on_call[1]:
                raise RuntimeError("boom")
            return Outcome(np.array([value]), nfe=1)
        return Impl(label=name, kind="scorebench" if name == "a" else "peer", run=run,
                    warmup=lambda: calls.append(name + "-warm"))

    return Case("x", "toy", {}, [impl("a", 1.0), impl("b", 1.5), Impl("c", "peer", note="absent")],
                errors=lambda v: (float(abs(v[0] - 1.0)), float(abs(v[0] - 1.0))),
                error_metric="abs", items=10.0, unit="points")


def test_repeats_go_round_robin_after_each_first_run():
    calls = []
    sizes = SimpleNamespace(repeats=3, budget_s=1e9)
    rows = run_case(_case(calls), sizes, bounds=None, memory=PeakMemory())
    # warm-up and first run per implementation (accuracy), then rounds a, b, a, b
    assert calls == ["a-warm", "a", "b-warm", "b", "a", "b", "a", "b"]
    a, b, c = rows
    assert a["repeats"] == b["repeats"] == 3 and c["status"] == "skipped"
    assert a["max_err"] == 0.0 and b["max_err"] == 0.5
    assert a["wall_min_s"] <= a["wall_median_s"] <= a["wall_max_s"]
    assert np.isclose(a["speedup_vs_best_peer"], b["wall_median_s"] / a["wall_median_s"])


def test_an_implementation_failing_on_a_repeat_becomes_an_error_row_and_the_rest_go_on():
    calls = []
    sizes = SimpleNamespace(repeats=4, budget_s=1e9)
    rows = run_case(_case(calls, fail_on_call=("b", 2)), sizes, bounds=None, memory=PeakMemory())
    a, b, _ = rows
    assert b["status"] == "error" and "on a repeat" in b["note"] and "boom" in b["note"]
    assert a["status"] == "ok" and a["repeats"] == 4
    assert calls.count("b") == 2  # not called again after it failed
    assert a["speedup_vs_best_peer"] is None  # the only peer failed: no ratio


def test_short_calls_are_timed_in_bursts_and_reported_per_call():
    calls = []
    sizes = SimpleNamespace(repeats=3, budget_s=1e9)
    a, b, _ = run_case(_case(calls, seconds=0.0), sizes, bounds=None, memory=PeakMemory())
    # one accuracy run, one warm call that sizes the bursts, then 3 bursts of calls (~10 ms)
    for row in (a, b):
        n = row["calls_per_timing"]
        assert 2 <= n <= 1000
        assert calls.count(row["implementation"]) == 2 + 3 * n
    assert a["repeats"] == 3 and a["wall_max_s"] < 1e-3  # per call, not per burst
    slow, _, _ = run_case(_case([], seconds=0.011), sizes, bounds=None, memory=PeakMemory())
    assert slow["calls_per_timing"] == 1 and slow["wall_min_s"] >= 0.011
