r"""Dormand–Prince 5(4) (scipy's ``RK45``) for the per-sample likelihood kernel: the tableau as
data and the stage inputs over SIMD lanes (:mod:`._dopri5_lanes_numba`).

The stage inputs are :math:`Y_t = Y + h \sum_{j < s} a_{sj} K_j` for each lane, in the state's
dtype (``like`` keeps the coefficients in it), with FMA contraction and nothing reordered.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_precision import like
from .tableau import DOPRI5

__all__ = ["DP_A", "DP_C", "DP_E", "stage_input"]

_FM = {"contract"}

# the solvers' own Dormand-Prince tableau (scipy's RK45): nodes, stage matrix (its last row the
# 5th-order weights, so the 7th stage is the FSAL evaluation at the new point) and scipy's error
# weights E = b_hat - b
DP_C = np.ascontiguousarray(DOPRI5.c)
DP_A = np.ascontiguousarray(DOPRI5.A)
DP_E = 0.0 - DOPRI5.b_err


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def stage_input(s, Y, KS, hsd, Yt):
    """Yt = Y + h (a_s0 K_0 + ... + a_s,s-1 K_{s-1}), as scipy's RK45 (``y + h K^T a``).

    One branch per stage with the sum over the earlier stages written out, so that the
    loop over lanes is the innermost one (SIMD) and each Yt is stored once (a loop over
    the stages updating Yt in place costs three memory operations per multiply-add).
    """
    m, B = Y.shape
    if s == 1:
        a0 = like(DP_A[1, 0], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
    elif s == 2:
        a0 = like(DP_A[2, 0], Y)
        a1 = like(DP_A[2, 1], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                acc += a1 * KS[1, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
    elif s == 3:
        a0 = like(DP_A[3, 0], Y)
        a1 = like(DP_A[3, 1], Y)
        a2 = like(DP_A[3, 2], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                acc += a1 * KS[1, i, b]
                acc += a2 * KS[2, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
    elif s == 4:
        a0 = like(DP_A[4, 0], Y)
        a1 = like(DP_A[4, 1], Y)
        a2 = like(DP_A[4, 2], Y)
        a3 = like(DP_A[4, 3], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                acc += a1 * KS[1, i, b]
                acc += a2 * KS[2, i, b]
                acc += a3 * KS[3, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
    elif s == 5:
        a0 = like(DP_A[5, 0], Y)
        a1 = like(DP_A[5, 1], Y)
        a2 = like(DP_A[5, 2], Y)
        a3 = like(DP_A[5, 3], Y)
        a4 = like(DP_A[5, 4], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                acc += a1 * KS[1, i, b]
                acc += a2 * KS[2, i, b]
                acc += a3 * KS[3, i, b]
                acc += a4 * KS[4, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
    elif s == 6:
        a0 = like(DP_A[6, 0], Y)
        a1 = like(DP_A[6, 1], Y)
        a2 = like(DP_A[6, 2], Y)
        a3 = like(DP_A[6, 3], Y)
        a4 = like(DP_A[6, 4], Y)
        a5 = like(DP_A[6, 5], Y)
        for i in range(m):
            for b in range(B):
                acc = a0 * KS[0, i, b]
                acc += a1 * KS[1, i, b]
                acc += a2 * KS[2, i, b]
                acc += a3 * KS[3, i, b]
                acc += a4 * KS[4, i, b]
                acc += a5 * KS[5, i, b]
                Yt[i, b] = Y[i, b] + hsd[b] * acc
