"""``best_of``: the bounds kept over several measurements are the best of each rate."""

from __future__ import annotations

import pytest

from scorebench.bench.bounds import MachineBounds, best_of, bound_seconds


def _bounds(exp_np, exp_nb, normal, dgemm, batched, exp32, sgemm):
    detail = {"exp numpy (threads)": exp_np, "exp numba fast_exp (in cache)": exp_nb,
              "normal numpy (threads)": normal, "matmul numpy dgemm (flop/s)": dgemm,
              "matmul numba + BLAS dgemm, 64x64x64 blocks (flop/s)": batched,
              "float32 exp numba fast_exp_f32 (in cache)": exp32,
              "float32 matmul numba + BLAS sgemm, 64x64x64 blocks (flop/s)": sgemm}
    return MachineBounds(t_exp=min(exp_np, exp_nb), t_normal=normal, r_mm=max(dgemm, batched),
                         threads=2, detail=detail, t_exp32=exp32, r_mm32=sgemm)


def test_best_of_keeps_the_fastest_time_and_the_highest_rate_of_each_implementation():
    # a slow second halves every rate of the second measurement, except numpy's exp
    fast = _bounds(0.9e-9, 0.4e-9, 1.5e-9, 100e9, 50e9, 0.15e-9, 170e9)
    slow = _bounds(0.8e-9, 0.8e-9, 3.0e-9, 50e9, 60e9, 0.30e-9, 85e9)
    b = best_of([slow, fast])
    assert b.detail["exp numpy (threads)"] == 0.8e-9
    assert b.detail["matmul numba + BLAS dgemm, 64x64x64 blocks (flop/s)"] == 60e9
    assert (b.t_exp, b.t_normal, b.r_mm) == (0.4e-9, 1.5e-9, 100e9)
    assert (b.t_exp32, b.r_mm32, b.measurements, b.threads) == (0.15e-9, 170e9, 2, 2)
    # the bound of a workload of 1e6 exponentials and 1e9 flops: 0.4 ms + 10 ms
    assert bound_seconds(b, exps=1e6, flops=1e9) == pytest.approx(0.4e-3 + 1e-2, rel=1e-12)
    assert best_of([fast]).to_dict() == {**fast.to_dict(), "measurements": 1}


def test_best_of_needs_a_measurement():
    with pytest.raises(ValueError, match="measured"):
        best_of([])
