"""``scorebench bench``: the report of a tiny run, and the measurement helpers it rests on.

One ``scorebench bench --tiny --peers`` run (a few hundred points, one repeat) is shared by the
report tests; the ``peers`` extra is made to look absent so the skipped-with-a-note path runs
whatever is installed. Accuracy is asserted against the exact oracle; no test asserts a wall
time (the one timing-derived figure, the N-scaling exponent, gets a wide band, documented).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import scorebench.bench.peers as peers
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE
from scorebench.bench.measure import PeakMemory, abs_errors, chunked, fit_exponent
from scorebench.bench.workloads import random_mixture, ring8
from scorebench.cli import main
from scorebench.solvers.likelihood import log_likelihood


def _missing(module):
    return f"{module} not installed (pip install 'scorebench[peers]')"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setattr(peers, "peer_available", _missing)
    try:
        rc = main(["bench", "--tiny", "--peers", "--out", str(out)])
    finally:
        mp.undo()
    return rc, out, json.loads((out / "bench.json").read_text())


def _rows(report, workload=None, impl=None):
    return [r for r in report["rows"] if (workload is None or r["workload"] == workload)
            and (impl is None or r["implementation"].startswith(impl))]


def _one(report, workload, impl, case_prefix=""):
    rows = [r for r in _rows(report, workload, impl) if r["case"].startswith(case_prefix)]
    assert rows, f"no row {workload!r} {impl!r}"
    return rows[0]


def test_exit_status_files_and_workloads(run):
    rc, out, report = run
    assert rc == 0, [(r["implementation"], r["note"]) for r in report["rows"] if r["status"] == "error"]
    md = (out / "bench.md").read_text()
    assert "| implementation |" in md and "## Targets" in md
    assert isinstance(report["environment"]["simd"], list) and report["environment"]["cpu"] in md
    assert report["environment"]["vector_bits"] in (128, 256, 512)
    assert f"numba vectors {report['environment']['vector_bits']}-bit" in md
    assert {r["workload"] for r in report["rows"]} == {"a", "b", "c", "d", "e"}
    assert [c["param"] for c in report["curves"]] == ["N", "d", "K"]
    assert len(report["figures"]) == 4  # three scaling plots and the work-precision plot
    for name in report["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    b = report["bounds"]
    assert b["t_exp"] > 0 and b["t_normal"] > 0 and b["r_mm"] > 0
    # the exp bound is the best of the streamed and the cache-resident measurements
    exps = {k: v for k, v in b["detail"].items() if k.startswith("exp")}
    assert "exp numba fast_exp (in cache)" in exps and b["t_exp"] == min(exps.values())


def test_exp_in_cache_computes_the_exponential():
    # what the bound times must be the kernels' exponential itself: within 2 ulp of np.exp
    from scorebench.bench.bounds import exp_in_cache

    x = -30.0 * np.random.default_rng(0).random((2, 4096))
    out = np.empty_like(x)
    exp_in_cache(x, out, 3)
    ref = np.exp(x)
    assert np.all(np.abs(out - ref) <= 2 * np.spacing(ref))


def test_every_row_has_time_nfe_accuracy_and_ratios(run):
    _, _, report = run
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    assert len(ok) >= 20
    for r in ok:
        assert 0 < r["wall_min_s"] <= r["wall_median_s"] <= r["wall_max_s"], r
        assert r["repeats"] == 1 and r["nfe"] >= 1
        assert math.isfinite(r["max_err"]) and 0 <= r["mean_err"] <= r["max_err"], r
        assert r["throughput"] > 0 and r["fraction_of_bound"] > 0 and r["peak_mb"] >= 0
        assert r["speedup_vs_best_peer"] is not None, r["implementation"]
    for case in {r["case"] for r in ok}:
        rows = [r for r in ok if r["case"] == case]
        best = min(r["wall_median_s"] for r in rows if r["kind"] != "scorebench")
        for r in rows:  # ratios computed within the run, from the same rows
            assert r["speedup_vs_best_peer"] == pytest.approx(best / r["wall_median_s"], rel=1e-12)


def test_likelihood_accuracy_against_the_exact_oracle(run):
    _, _, report = run
    # deterministic solves of fixed points: per-sample DOPRI5 at rtol = atol = 1e-5 keeps every
    # point's |log p - log p_eps| near 1e-3 or below: ring 2.4e-4, 16-D 1.1e-3 measured
    fused = _one(report, "a", "scorebench rk45 fused numba", "log-likelihood")
    assert fused["max_err"] < 1e-3 and fused["mean_err"] < 3e-4
    assert fused["extra"]["backend"] == "numba"
    generic = _one(report, "a", "scorebench rk45 numpy")
    assert generic["max_err"] == pytest.approx(fused["max_err"], rel=1e-6)
    assert _one(report, "b", "scorebench rk45 fused numba")["max_err"] < 5e-3
    for impl in ("scipy RK45 flat", "seed-style"):  # batch-wide error norms: worse worst points
        assert _one(report, "a", impl, "log-likelihood")["max_err"] < 0.1
    wp = report["work_precision"]
    assert wp["families"]["scorebench rk45 fused numba"]["at_target"]["max_err"] <= 1e-3


def test_kernel_accuracy(run):
    _, _, report = run
    for r in _rows(report, "e"):
        if r["implementation"] == "scorebench numpy reference":
            assert r["max_err"] == 0.0
        elif "float32" in r["implementation"]:
            assert r["max_err"] < 1e-2  # single precision: ~1e-7 relative on values of ~1e2
        else:
            assert r["max_err"] < 1e-10, r["implementation"]
    # the float32 kernels (generated for d = 2, generic for d = 16) have rows and target lines
    # of their own, against the same float64 bound
    f32 = [r for r in _rows(report, "e", "scorebench fused numba kernel float32")]
    assert [r["params"]["d"] for r in f32] == [2, 16]
    assert all(r["status"] == "ok" for r in f32)
    for d in (2, 16):
        assert any(t["target"].startswith(f"(e) d={d} K=8, float32 kernel")
                   for t in report["targets"])
    # float32 rows also give their fraction of the float32 bound: the same operation count at
    # the float32 rates measured in the run (no timing is asserted, only the arithmetic)
    b = report["bounds"]
    assert b["t_exp32"] > 0 and b["r_mm32"] > 0
    for r in f32:
        w = r["work"]
        assert w["precision"] == "float32"
        assert r["bound_float32_s"] == pytest.approx(w["exps"] * b["t_exp32"]
                                                     + w["flops"] / b["r_mm32"], rel=1e-12)
        assert r["fraction_of_float32_bound"] == pytest.approx(
            r["bound_float32_s"] / r["wall_median_s"], rel=1e-12)
    assert all(r.get("fraction_of_float32_bound") is None for r in _rows(report, "e")
               if "float32" not in r["implementation"])


def test_sampling_weak_errors_are_within_monte_carlo_noise(run):
    _, _, report = run
    rows = _rows(report, "c") + _rows(report, "d")
    assert any(r["implementation"] == "scorebench em fused numba" for r in rows)
    by = {(r["workload"], r["implementation"]): r for r in rows if r["status"] == "ok"}
    for wl, m in (("c", "em"), ("d", "pc")):
        # float32 and float64 draw the same normals: their errors differ by round-off only
        lo, hi = by[wl, f"scorebench {m} fused numba float32"], by[wl, f"scorebench {m} fused numba"]
        assert abs(lo["max_err"] - hi["max_err"]) < 1e-3
    for r in rows:
        if r["status"] != "ok":
            continue
        # 21 features, each error ~ N(bias, se^2), se <= mc_se (~0.09 at N = 300): with the bias
        # of 50 steps and of PC's snr floor (<= 0.1 on second moments of size 4, ~1.1 se),
        # exceeding 7 se needs a 5.9-se deviation: P < 21 * 2 * 2e-9 < 1e-7
        assert r["max_err"] < 7.0 * r["extra"]["mc_se"], r["implementation"]


def test_missing_peers_are_skipped_with_a_note(run):
    _, _, report = run
    skipped = [r for r in report["rows"] if r["status"] == "skipped"]
    names = {r["implementation"] for r in skipped}
    assert "torchsde sdeint euler" in names
    assert any(n.startswith("torchdiffeq dopri5") for n in names)
    assert all("not installed" in r["note"] for r in skipped)
    assert any("torchdiffeq" in n for n in report["notes"])


def test_scaling_fits(run):
    _, _, report = run
    n_curve, d_curve, k_curve = report["curves"]
    # rhs evaluations grow exactly with the number of points (same distribution, per-sample steps)
    assert n_curve["work_fit"]["exponent"] == pytest.approx(1.0, abs=0.05)
    # wall time: timing-derived, so only a wide band (thread-scheduling latency on a shared
    # machine flattens small sizes; those under 50 ms are left out of the fit)
    assert 0.5 < n_curve["fit"]["exponent"] < 1.5
    mem = n_curve["memory_fit"]
    assert 0 < mem["bytes_per_unit"] < 4096  # chunked: outputs only, ~100 bytes per point
    assert max(n_curve["max_err"]) < 2e-3  # worst of 50,000 points at rtol 1e-5: 5.6e-4
    for c in (d_curve, k_curve):
        assert c["status"] == "ok" and math.isfinite(c["fit"]["exponent"])
        assert max(c["max_err"]) < 1e-10
    assert {t["target"][:3] for t in report["targets"]} >= {"(a)", "(c)", "(d)", "(e)"}


def test_chunked_likelihood_equals_one_batch():
    oracle = MixtureOracle(ring8(), VPSDE())
    x = oracle.sample(50, 1e-5, np.random.default_rng(3))

    def fn(xs):
        return log_likelihood(xs, oracle, oracle.sde, backend="numba")

    whole, parts = fn(x), chunked(fn, x, 7)
    np.testing.assert_array_equal(parts.logp, whole.logp)  # per-sample solves: batch-independent
    np.testing.assert_array_equal(parts.n_accepted, whole.n_accepted)
    assert parts.nfe == whole.nfe
    np.testing.assert_array_equal(chunked(lambda xs: xs * 2.0, x, 9), x * 2.0)
    with pytest.raises(ValueError, match="chunk"):
        chunked(fn, x, 0)


def test_measure_helpers():
    fit = fit_exponent([10, 100, 1000, 10000], [3.0 * s**1.5 for s in (10, 100, 1000, 10000)])
    assert fit["exponent"] == pytest.approx(1.5, abs=1e-12)
    assert fit["ci"][0] == pytest.approx(1.5, abs=1e-9) and fit["ci"][1] == pytest.approx(1.5, abs=1e-9)
    assert abs_errors([1.0, 2.0], [1.5, 2.0]) == (0.5, 0.25)
    assert abs_errors([np.nan], [0.0]) == (math.inf, math.inf)
    with pytest.raises(ValueError, match="estimate"):
        abs_errors([1.0], [1.0, 2.0])
    mem = PeakMemory()
    _, grew = mem.measure(lambda: np.ones(50 * 2**20 // 8).sum())  # 50 MB, every page touched
    assert 45 * 2**20 <= grew < 200 * 2**20


def test_random_mixture_is_full_and_deterministic():
    a, b = random_mixture(8, 3, 5), random_mixture(8, 3, 5)
    np.testing.assert_array_equal(a.covs, b.covs)
    assert np.all(a.eigvals >= 0.1 - 1e-12) and np.all(a.eigvals <= 1.5 + 1e-12)
    with pytest.raises(ValueError, match="K"):
        random_mixture(2, 0, 1)


def test_bound_seconds_by_precision():
    from scorebench.bench.bounds import MachineBounds, bound_seconds

    b = MachineBounds(t_exp=2e-9, t_normal=3e-9, r_mm=1e10, threads=2, detail={},
                      t_exp32=1e-9, r_mm32=2e10)
    assert bound_seconds(b, exps=10, normals=1, flops=100) == pytest.approx(2e-8 + 3e-9 + 1e-8)
    assert bound_seconds(b, exps=10, normals=1, flops=100, precision="float32") == pytest.approx(
        1e-8 + 3e-9 + 5e-9)
    with pytest.raises(ValueError, match="precision: expected 'float64' or 'float32'"):
        bound_seconds(b, exps=1, precision="float16")
