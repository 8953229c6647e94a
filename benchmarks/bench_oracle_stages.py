"""Where the generic mixture kernel's time goes: its stages one at a time, side by side.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 pytest benchmarks/bench_oracle_stages.py \
        --benchmark-only -p no:cacheprovider -s

The one-product path of :mod:`scorebench.analytic._mixture_numba` (full covariances at a common
time, well-conditioned, d > 8) runs, per block of B = 240 points and per component, the BLAS
product ``C_k^-1 X``, the quadratic form with the log-weight, the exponentials, and the
log-sum-exp step with the Welford update; per block it transposes the points in and the score
out. For d = 9..16 the two passes around the exponentials are generated for that d
(:mod:`scorebench.analytic._generated_passes_numba`); elsewhere the stage functions of
:mod:`scorebench.analytic._numba_stages` do the same work in four passes, timed here too for
comparison ("stage functions"). Each stage runs on its own, on one core, for d = 16 and K = 8
(workload (e)'s d = 16, K = 8 case), over scratch arrays shaped as the kernel's;
``extra_info`` holds ns per (point, component) pair (the transposes amortised over K), and the
summary prints both tables with each stage's share. Each stage's output is checked against
numpy, so a stage that did nothing could not look fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from scorebench.analytic import _generated_passes_numba as passes
from scorebench.analytic._generated_passes_numba import call_lse_welford, call_qf_weight
from scorebench.analytic._numba_exp import exp_nonpositive
from scorebench.analytic._numba_intrinsics import array_ptr
from scorebench.analytic._numba_stages import (inverse_rows, load_transposed, log_weight,
                                               lse_step, store_logp_score, welford)

D, K = 16, 8
B = passes.BLOCK
REPS = 200
RESULTS: dict = {}  # {table: {stage: ns per pair}}


def _arrays():
    rng = np.random.default_rng(16)
    A = rng.standard_normal((K, D, D))
    arr = dict(
        CI=np.ascontiguousarray(A @ A.transpose(0, 2, 1) / D + np.eye(D)),
        x=rng.standard_normal((B, D)), XT=np.empty((D, B)), P=np.empty((D, B)),
        bk=0.1 * rng.standard_normal((K, D)), amu=0.1 * rng.standard_normal((K, D)),
        cst=-rng.random(K), trc=rng.random(K),
        q=np.empty(B), m=np.zeros(B), dlt=np.empty(B), ex=np.empty(B), sw=np.ones(B),
        rr=np.full(B, 0.1), cc=np.full(B, 0.9), M2=np.zeros(B), T=np.zeros(B), trb=np.ones(B),
        MEAN=np.zeros((D, B)), acc=np.empty(B), ld=np.zeros(B), out_lp=np.empty(B),
        out_sc=np.empty((B, D)))
    load_transposed(arr["x"], 0, B, arr["XT"])
    # the stages after the product read a real product (uninitialised scratch could hold NaNs
    # or subnormals, which would both fail the checks and distort the timings)
    arr["P"][:] = arr["CI"][-1] @ arr["XT"]
    arr["dlt"][:] = -rng.random(B)
    return arr


@njit(cache=True)
def _product(reps, CI, XT, P):
    for _ in range(reps):
        for k in range(CI.shape[0]):
            np.dot(CI[k], XT, P)


@njit(cache=True)
def _qf_weight(reps, fn, P, XT, bk, amu, q, m, dlt, cst):
    for _ in range(reps):
        for k in range(bk.shape[0]):
            call_qf_weight(fn, array_ptr(P), array_ptr(XT), array_ptr(bk[k]), array_ptr(amu[k]),
                           array_ptr(q), array_ptr(m), array_ptr(dlt), cst[k])


@njit(cache=True)
def _exponentials(reps, dlt, ex):
    for _ in range(reps):
        for k in range(K):
            exp_nonpositive(dlt, ex, dlt.shape[0])


@njit(cache=True)
def _lse_welford(reps, fn, P, bk, MEAN, q, ex, m, sw, M2, T, trc):
    for _ in range(reps):
        for k in range(bk.shape[0]):
            m[:] = 0.0
            call_lse_welford(fn, array_ptr(P), array_ptr(bk[k]), array_ptr(MEAN), array_ptr(q),
                             array_ptr(ex), array_ptr(m), array_ptr(sw), array_ptr(M2),
                             array_ptr(T), trc[k], passes.MODE_LAPLACIAN)


@njit(cache=True)
def _transposes(reps, x, XT, m, sw, MEAN, out_lp, out_sc):
    for _ in range(reps):
        load_transposed(x, 0, x.shape[0], XT)
        store_logp_score(0, x.shape[0], m, sw, MEAN, False, True, out_lp, out_sc, True)


@njit(cache=True)
def _quadratic_form(reps, P, XT, bk, amu, q):
    for _ in range(reps):
        for k in range(bk.shape[0]):
            inverse_rows(P, XT, bk[k], amu[k], q)


@njit(cache=True)
def _weights(reps, K, q, m, dlt, ex, ld, sw, rr, cc, M2, T, trb):
    for _ in range(reps):
        for k in range(K):
            m[:] = 0.0
            log_weight(q, m, dlt, -1.0, ld)
            exp_nonpositive(dlt, ex, q.shape[0])
            lse_step(q, ex, m, sw, rr, cc, M2, T, trb, True)


@njit(cache=True)
def _welford(reps, P, bk, MEAN, rr, cc, sw, acc, M2):
    for _ in range(reps):
        for k in range(bk.shape[0]):
            welford(P, bk[k], MEAN, rr, cc, sw, acc, M2, True)


def _check(stage, a):
    """Each stage's numbers against numpy (to rounding): the timings are of real work."""
    if stage == "product":
        np.testing.assert_allclose(a["P"], a["CI"][-1] @ a["x"].T, rtol=1e-12, atol=1e-12)
    elif stage in ("quadratic form", "quadratic form + log-weight"):
        want = ((a["x"] - a["amu"][-1]) * (a["P"].T - a["bk"][-1])).sum(1)
        if stage == "quadratic form + log-weight":
            want = a["cst"][-1] - 0.5 * want
        np.testing.assert_allclose(a["q"], want, rtol=1e-10, atol=1e-10)
    elif stage == "exponentials":
        np.testing.assert_allclose(a["ex"], np.exp(a["dlt"]), rtol=1e-15)
    elif stage == "transposes":
        np.testing.assert_array_equal(a["XT"], a["x"].T)
        np.testing.assert_array_equal(a["out_sc"], -a["MEAN"].T)
    elif stage == "weights":
        assert np.all(np.isfinite(a["sw"])) and np.all(a["sw"] > 0.0)
    else:  # the Welford updates
        assert np.all(np.isfinite(a["MEAN"])) and np.all(np.isfinite(a["M2"]))


# each call of a stage function does one block's worth of that stage: K components on B points
# (the transposes: once per block, so their time per pair is amortised over the K components);
# "kernel": what the kernel runs at d = 16; "stage functions": what it ran before the passes
STAGES = {
    ("kernel", "product"): (_product, ("CI", "XT", "P")),
    ("kernel", "quadratic form + log-weight"):
        (_qf_weight, ("qf", "P", "XT", "bk", "amu", "q", "m", "dlt", "cst")),
    ("kernel", "exponentials"): (_exponentials, ("dlt", "ex")),
    ("kernel", "log-sum-exp + Welford"):
        (_lse_welford, ("wf", "P", "bk", "MEAN", "q", "ex", "m", "sw", "M2", "T", "trc")),
    ("kernel", "transposes"): (_transposes, ("x", "XT", "m", "sw", "MEAN", "out_lp", "out_sc")),
    ("stage functions", "quadratic form"): (_quadratic_form, ("P", "XT", "bk", "amu", "q")),
    ("stage functions", "weights"):
        (_weights, ("K", "q", "m", "dlt", "ex", "ld", "sw", "rr", "cc", "M2", "T", "trb")),
    ("stage functions", "welford"): (_welford, ("P", "bk", "MEAN", "rr", "cc", "sw", "acc", "M2")),
}


@pytest.mark.parametrize("table, stage", list(STAGES))
def test_stage(benchmark, table, stage):
    fn, names = STAGES[(table, stage)]
    a = _arrays()
    a["qf"], a["wf"] = passes.pass_functions(D)
    a["K"] = K
    args = [a[n] for n in names]
    fn(1, *args)  # compile
    benchmark.group = f"generic oracle kernel, d={D} K={K}: {table}"
    benchmark.pedantic(lambda: fn(REPS, *args), rounds=7, iterations=1, warmup_rounds=1)
    ns = benchmark.stats.stats.min / REPS / (K * B) * 1e9
    benchmark.extra_info.update(table=table, stage=stage, ns_per_pair=ns)
    RESULTS.setdefault(table, {})[stage] = ns
    _check(stage, a)


def test_stage_summary(benchmark):
    """The stages' ns per pair and shares, from the runs above (times nothing itself)."""
    if "kernel" not in RESULTS:
        pytest.skip("run together with the stage benchmarks above")
    benchmark.group = "summary"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    for table, rows in RESULTS.items():
        total = sum(rows.values())
        print(f"\n{table:<28} {'ns/pair':>8} {'share':>6}   (d = {D}, K = {K}, B = {B}, one core)")
        for stage, ns in rows.items():
            print(f"{stage:<28} {ns:>8.2f} {ns / total:>6.0%}")
        print(f"{'all':<28} {total:>8.2f}")
        benchmark.extra_info[table] = dict(rows, total=total)
    assert sum(RESULTS["kernel"].values()) > RESULTS["kernel"]["product"]
