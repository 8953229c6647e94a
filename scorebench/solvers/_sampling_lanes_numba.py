r"""Block kernels shared by the fused samplers (see :mod:`.fused_sampling_numba`).

A block holds ``LANES`` samples side by side (lane = last array axis, so the score and the
updates are SIMD loops over samples). :func:`em_kernel` runs Euler–Maruyama, or
predictor–corrector with per-sample norms, block by block over the whole grid: one parallel
region, the block stays in cache, nothing is synchronised. Each step is a sequence of sub-steps
with one score evaluation each (the predictor at :math:`t_i`, then the correctors at
:math:`t_{i+1}`), so the fused score appears once in the compiled code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._mixture_lanes_numba import lanes_score, lanes_score_diag_shared, lanes_time_setup
from scorebench.analytic._bare_arrays_numba import bare, touch
from ._lane_normals_numba import lanes_normal_pairs
from ._numba_math import seed_stream
from ._numba_precision import like
from ._unrolled_score_numba import array_ptr, call_score

__all__ = ["LANES", "score_block", "block_scratch", "em_kernel", "load_noise", "load_states",
           "store_states"]

LANES = 64
_FM = {"contract"}


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def score_block(Xb, a, s2, diag, shared, mT, W, lamT, logw, unrolled, score_fn, work, INV, C, TR, U,
                L, P, SC):
    """SC (d, B) = score of p_t at the block's points Xb (d, B); t given by (a, s^2).

    With ``unrolled`` the score comes from ``score_fn``, the address of the generated
    :mod:`._unrolled_score_numba` function for this (d, K) and dtype.
    """
    A, S2, tmp, M, S = work[0], work[1], work[2], work[3], work[4]
    for b in range(A.shape[0]):
        A[b] = a
        S2[b] = s2
    if unrolled:
        call_score(score_fn, array_ptr(Xb), array_ptr(A), array_ptr(S2), array_ptr(mT),
                   array_ptr(lamT), array_ptr(logw), array_ptr(SC), array_ptr(work[5]),
                   A.shape[0])
    elif diag and shared:
        lanes_score_diag_shared(Xb, A, S2, mT, lamT, logw, False, L, M, S, P[0], P[1], SC,
                                work[5])
    else:
        lanes_time_setup(A, S2, lamT, logw, shared, INV, C, TR, tmp)
        lanes_score(Xb, A, diag, mT, W, INV, C, TR, False, U, L, M, S, SC, work[5])


@njit(cache=True, error_model="numpy", inline="always")
def block_scratch(d, K, dt):
    """Scratch of one block in dtype ``dt`` (float64 or float32: every per-lane array and the
    arithmetic on it): the points ``Xb`` and score ``SC`` (d, B), then what
    :func:`score_block` takes: ``work`` (6, B), ``INV``, ``U`` (d, K, B), ``P`` (2, d, B),
    ``C``, ``TR``, ``L`` (K, B)."""
    B = LANES
    return (np.empty((d, B), dt), np.empty((d, B), dt), np.empty((6, B), dt),
            np.empty((d, K, B), dt), np.empty((d, K, B), dt), np.empty((2, d, B), dt),
            np.empty((K, B), dt), np.empty((K, B), dt), np.empty((K, B), dt))


@njit(cache=True, error_model="numpy", inline="always")
def load_states(rs, n, j):
    """The generator state of lane/sample ``n`` from row or column storage ``rs``."""
    if j:
        return (rs[0, n], rs[1, n], rs[2, n], rs[3, n])
    return (rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3])


@njit(cache=True, error_model="numpy", inline="always")
def store_states(rs, n, j, state):
    if j:
        rs[0, n], rs[1, n], rs[2, n], rs[3, n] = state
    else:
        rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3] = state


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _em_block(x, lo, nb, coef, alpha, dW, zc, use_dw, seed, n_corr, snr, diag, shared, mT, W,
              lamT, logw, unrolled, score_fn, out):
    """Samples lo .. lo + nb - 1 over the whole grid; returns how many hit a zero score norm."""
    d, K = mT.shape
    B = LANES
    steps = coef.shape[0] - 1
    Xb, SC, work, INV, U, P, C, TR, L = block_scratch(d, K, x.dtype)
    Zb = np.zeros((d + d % 2, B), x.dtype)  # normals come in pairs: a spare row for odd d
    rs = np.empty((4, B), dtype=np.uint64)
    # bare aliases of what the step loop hands to functions (analytic._bare_arrays_numba: 16-23 % of
    # the kernel's time went to reference counting before); owners live in ``keep``
    keep = (Xb, SC, work, INV, U, P, C, TR, L, Zb, rs)
    Xb, SC, work, INV, U, P, C, TR, L, Zb, rs = (bare(Xb), bare(SC), bare(work), bare(INV),
                                                bare(U), bare(P), bare(C), bare(TR), bare(L),
                                                bare(Zb), bare(rs))
    mT, W, lamT, logw = bare(mT), bare(W), bare(lamT), bare(logw)
    zero = 0
    for b in range(B):
        n = lo + min(b, nb - 1)  # padding lanes repeat the block's last point
        for i in range(d):
            Xb[i, b] = x[n, i]
        store_states(rs, b, True, seed_stream(seed, n))
    for st in range(steps):
        h, f, g2 = coef[st, 1], coef[st, 2], coef[st, 3]
        c = 2.0 * alpha[st] * snr * snr
        for j in range(-1, n_corr):  # the predictor, then the correctors at t_{i+1}
            r = st if j < 0 else st + 1
            score_block(Xb, coef[r, 4], coef[r, 5], diag, shared, mT, W, lamT, logw, unrolled,
                        score_fn, work, INV, C, TR, U, L, P, SC)
            if use_dw:  # the noise of this sub-step
                if j < 0:
                    load_noise(dW[st, lo:lo + nb], Zb)
                else:
                    load_noise(zc[st, j, lo:lo + nb], Zb)
            else:
                for i in range(0, d, 2):
                    lanes_normal_pairs(rs, Zb, i, nb)
            if j < 0:  # Euler-Maruyama: dW = sqrt|h| z for generated noise
                g = like(math.sqrt(g2) if use_dw else math.sqrt(g2 * abs(h)), Xb)
                hh, ff, gg2 = like(h, Xb), like(f, Xb), like(g2, Xb)  # in the lanes' dtype
                for i in range(d):
                    for b in range(B):
                        Xb[i, b] += hh * (ff * Xb[i, b] - gg2 * SC[i, b]) + g * Zb[i, b]
                continue
            for b in range(nb):  # Langevin corrector with this sample's norms
                gg = 0.0
                zz = 0.0
                for i in range(d):
                    gg += SC[i, b] * SC[i, b]
                    zz += Zb[i, b] * Zb[i, b]
                if gg == 0.0:
                    zero += 1
                eps = c * zz / gg
                noise = like(math.sqrt(2.0 * eps), Xb)
                eps = like(eps, Xb)
                for i in range(d):
                    Xb[i, b] += eps * SC[i, b] + noise * Zb[i, b]
    for b in range(nb):
        for i in range(d):
            out[lo + b, i] = Xb[i, b]
    touch(keep)
    return zero


@njit(cache=True, error_model="numpy", inline="always")
def load_noise(src, Zb):
    """``Zb[:, :n] = src.T`` for the n rows of ``src`` (the given noise of a block's samples),
    through a view: indexing ``dW[st, lo + b, i]`` made numba wrap a possibly negative index at
    every element (see docs/internals.md, vectorisation pitfalls)."""
    for b in range(src.shape[0]):
        for i in range(src.shape[1]):
            Zb[i, b] = src[b, i]


@njit(cache=True, parallel=True, error_model="numpy")
def em_kernel(x, coef, alpha, dW, zc, use_dw, seed, n_corr, snr, diag, shared, mT, W, lamT, logw,
              unrolled, score_fn, out):
    """EM (``n_corr = 0``) or PC with per-sample norms; blocks in parallel.

    ``coef`` (steps + 1, 6): t, h, f, g^2, a, s^2 at each grid time. ``out`` (N, d) receives the
    samples at eps. Returns the number of corrector steps whose score norm was exactly zero.
    """
    N = x.shape[0]
    nblk = (N + LANES - 1) // LANES
    zero = np.zeros(nblk, dtype=np.int64)
    for blk in prange(nblk):
        lo = blk * LANES
        zero[blk] = _em_block(x, lo, min(LANES, N - lo), coef, alpha, dW, zc, use_dw, seed,
                              n_corr, snr, diag, shared, mT, W, lamT, logw, unrolled, score_fn, out)
    return zero.sum()
