"""Lane-vectorised normals (xoshiro256++ per lane, Box–Muller): law, independence, determinism.

Thresholds: six two-sided tests at z = 5.3 (or DKW at alpha = 1e-6 / 8 each) keep the chance
that a correct generator fails this file below 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import stats

from scorebench.solvers._lane_normals_numba import lanes_normal_pairs
from scorebench.solvers._numba_math import seed_stream

B = 64
ALPHA = 1e-6 / 8


@njit(cache=True)
def _states(seed, first):
    rs = np.empty((4, B), np.uint64)
    for b in range(B):
        rs[0, b], rs[1, b], rs[2, b], rs[3, b] = seed_stream(seed, first + b)
    return rs


@njit(cache=True)
def _draw(rs, rounds, dtype_like):
    Z = np.zeros((2, B), dtype_like.dtype)
    out = np.empty((rounds, 2, B), dtype_like.dtype)
    for r in range(rounds):
        lanes_normal_pairs(rs, Z, 0, B)
        out[r] = Z
    return out


def _sample(rounds=16_384, seed=3):
    return _draw(_states(np.uint64(seed), 0), rounds, np.zeros(1))


def test_both_normals_of_a_pair_are_standard_normal():
    z = _sample()
    n = z.shape[0] * B  # 2^20 per coordinate
    eps = math.sqrt(math.log(2 / ALPHA) / (2 * n))  # DKW-Massart
    for k in (0, 1):
        assert stats.kstest(z[:, k].ravel(), "norm").statistic < eps
    # tails: |z| > 3 has probability p = 0.0027; the count is binomial(2n, p)
    p = 2 * stats.norm.sf(3.0)
    count = np.sum(np.abs(z) > 3.0)
    assert abs(count - 2 * n * p) < 5.3 * math.sqrt(2 * n * p * (1 - p))
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) <= math.sqrt(2 * 52 * math.log(2))


def test_pairs_lanes_and_successive_draws_are_uncorrelated():
    z = _sample(seed=4)
    n = z.shape[0] * B
    # each sample correlation of independent N(0, 1) pairs has sd 1/sqrt(n)
    within = np.mean(z[:, 0] * z[:, 1])
    lag = np.mean(z[1:, 0] * z[:-1, 0])
    lanes = np.mean(z[:, 0, 1:] * z[:, 0, :-1])
    for r, m in ((within, n), (lag, n - B), (lanes, n - z.shape[0])):
        assert abs(r) < 5.3 / math.sqrt(m)


def test_a_lane_depends_on_its_own_state_only_and_is_reproducible():
    a = _draw(_states(np.uint64(9), 0), 50, np.zeros(1))
    b = _draw(_states(np.uint64(9), 0), 50, np.zeros(1))
    assert np.array_equal(a, b)
    rs = _states(np.uint64(9), 0)
    rs[:, 5] = _states(np.uint64(10), 0)[:, 5]  # another stream in lane 5 only
    c = _draw(rs, 50, np.zeros(1))
    others = np.arange(B) != 5
    assert np.array_equal(a[:, :, others], c[:, :, others])
    assert not np.array_equal(a[:, :, 5], c[:, :, 5])


def test_float32_lanes_get_the_float64_normals_rounded():
    hi = _draw(_states(np.uint64(11), 0), 200, np.zeros(1))
    lo = _draw(_states(np.uint64(11), 0), 200, np.zeros(1, np.float32))
    assert lo.dtype == np.float32
    assert np.array_equal(lo, hi.astype(np.float32))
