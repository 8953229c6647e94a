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
    # warm-up, first run (accuracy) and a warm run (the first timing) per implementation, then
    # rounds a, b, a, b
    assert calls == ["a-warm", "a", "a", "b-warm", "b", "b", "a", "b", "a", "b"]
    a, b, c = rows
    assert a["repeats"] == b["repeats"] == 3 and c["status"] == "skipped"
    assert a["max_err"] == 0.0 and b["max_err"] == 0.5
    assert a["wall_min_s"] <= a["wall_median_s"] <= a["wall_max_s"]
    assert np.isclose(a["speedup_vs_best_peer"], b["wall_median_s"] / a["wall_median_s"])


def test_an_implementation_failing_on_a_repeat_becomes_an_error_row_and_the_rest_go_on():
    calls = []
    sizes = SimpleNamespace(repeats=4, budget_s=1e9)
    # b's third call: its first run and its warm run pass, its first repeat raises
    rows = run_case(_case(calls, fail_on_call=("b", 3)), sizes, bounds=None, memory=PeakMemory())
    a, b, _ = rows
    assert b["status"] == "error" and "on a repeat" in b["note"] and "boom" in b["note"]
    assert a["status"] == "ok" and a["repeats"] == 4
    assert calls.count("b") == 3  # not called again after it failed
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


def test_a_slow_cold_first_run_neither_counts_nor_stops_burst_timing():
    """The first run ran cold (here 30 ms); warm calls take ~0: they are timed in bursts, and
    the cold run is in no timing."""
    calls = []
    sizes = SimpleNamespace(repeats=3, budget_s=1e9)

    def run():
        calls.append("a")
        time.sleep(0.03 if len(calls) == 1 else 0.0)
        return Outcome(np.array([1.0]), nfe=1)

    case = Case("x", "toy", {}, [Impl("a", "scorebench", run=run)],
                errors=lambda v: (0.0, 0.0), error_metric="abs", items=1.0, unit="points")
    (row,) = run_case(case, sizes, bounds=None, memory=PeakMemory())
    assert row["calls_per_timing"] >= 2 and row["repeats"] == 3
    assert row["wall_max_s"] < 0.01  # per call, and not the cold run's 30 ms
    assert len(calls) == 2 + 3 * row["calls_per_timing"]


def test_small_d_kernel_cases_get_enough_pairs_per_call(monkeypatch):
    """quick times the d <= 4 kernels of (e) with at least ``kernel_min_pairs`` pairs a call
    (N = 1e5, the issue's, for K = 8; the profile's 20,000 for K = 64 and for d > 4)."""
    from scorebench.bench import cases_kernels
    from scorebench.bench.workloads import sizes_for

    seen = {}

    def fake_setup(d, K, n, rows, seed):
        seen[(d, K)] = n
        raise StopIteration  # the sizes are all this test looks at

    monkeypatch.setattr(cases_kernels, "_setup", fake_setup)
    quick = sizes_for("quick")
    for d in quick.kernel_dims:
        for K in quick.kernel_Ks:
            one = SimpleNamespace(**{**vars(quick), "kernel_dims": (d,), "kernel_Ks": (K,)})
            try:
                cases_kernels.kernel_cases(one)
            except StopIteration:
                pass
    assert seen == {(2, 8): 100_000, (2, 64): 20_000, (16, 8): 20_000, (16, 64): 20_000,
                    (64, 8): 20_000, (64, 64): 20_000}
