r"""Predictor–corrector with batch-averaged norms (Song et al.'s code), step by step.

The corrector step size :math:`\epsilon = 2\alpha(\mathrm{snr}\,\overline{\|z\|} /
\overline{\|\nabla\log p\|})^2` needs the means over the whole batch before any sample moves, so
the time loop runs here (in :func:`pc_batch_driver`, compiled, no Python per step) and each
score evaluation is one parallel pass over the samples:

* pass P (step i): apply the pending corrector update (if any), then the EM predictor from
  :math:`t_i` with the score at :math:`t_i`;
* pass C_j (step i): apply the pending update, then the score at :math:`t_{i+1}`, the corrector
  normals, and the per-sample norms; each block adds its norms up (in lane order) and the driver
  adds the block sums in block order, so the means do not depend on the thread count.

Each pass evaluates the fused score once (one compiled copy). A last pass applies the final
pending update.

Between passes the state, the pending score and normals stay in the block layout of
:mod:`._sampling_lanes_numba` -- (blocks, d, LANES), sample ``blk * LANES + b`` in lane ``b``
-- so every pass streams contiguous lanes (SIMD loads, no transposes), and the normals come from
the lane-vectorised Box–Muller pairs of :mod:`._lane_normals_numba` with the per-lane
generators of the fused EM kernel (sample ``n`` draws from ``seed_stream(seed, n)``). Padding
lanes of the last block repeat its last sample and never enter the norms or the output.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from scorebench.analytic._bare_arrays_numba import bare, touch
from ._lane_normals_numba import lanes_normal_pairs
from ._numba_math import seed_stream
from ._numba_precision import like
from ._sampling_lanes_numba import LANES, block_scratch, load_noise, score_block, store_states

__all__ = ["pc_batch_driver"]

_FM = {"contract"}
_CHUNKS = 32  # parallel tasks per pass; scratch is allocated once per task


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _pass_chunk(XS, nlast, c0, c1, mode, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT,
                W, lamT, logw, unrolled, score_fn, G, Z, part):
    """Blocks c0 .. c1 - 1 of one pass. mode 0: predictor; 1: corrector inputs; 2: update only.

    ``XS``, ``G``, ``Z`` (blocks, d, LANES) are the states, the pending scores and normals;
    ``nlast`` the used lanes of the last block. ``pend`` > 0 is the pending corrector step size
    (batch norms): the pass first moves every lane by ``pend G + sqrt(2 pend) Z``.
    """
    nblk, d, B = XS.shape
    K = mT.shape[1]
    # float64 or float32 (see fused_sampling_numba, "Precision")
    _, SC, work, INV, U, P, C, TR, L = block_scratch(d, K, XS.dtype)
    Zb = np.zeros((d + d % 2, B), XS.dtype)  # normals come in pairs: a spare row for odd d
    # bare aliases (analytic._bare_arrays_numba): no reference counting in the block loop
    keep = (SC, work, INV, U, P, C, TR, L, Zb)
    SC, work, INV, U, P, C, TR, L, Zb = (bare(SC), bare(work), bare(INV), bare(U), bare(P),
                                         bare(C), bare(TR), bare(L), bare(Zb))
    XS, G, Z, rs = bare(XS), bare(G), bare(Z), bare(rs)
    mT, W, lamT, logw = bare(mT), bare(W), bare(lamT), bare(logw)
    noise_p = like(math.sqrt(2.0 * pend), XS)
    pend_d = like(pend, XS)
    r = st if mode == 0 else st + 1
    h, f, g2 = like(coef[st, 1], XS), like(coef[st, 2], XS), like(coef[st, 3], XS)
    g = like(math.sqrt(coef[st, 3]) if use_dw else math.sqrt(coef[st, 3] * abs(coef[st, 1])), XS)
    for blk in range(c0, c1):
        lo = blk * B
        nb = nlast if blk == nblk - 1 else B
        Xs = XS[blk]
        if pend > 0.0:
            Gs, Zs = G[blk], Z[blk]
            for i in range(d):
                for b in range(B):
                    Xs[i, b] += pend_d * Gs[i, b] + noise_p * Zs[i, b]
        if mode == 2:
            continue
        score_block(Xs, coef[r, 4], coef[r, 5], diag, shared, mT, W, lamT, logw, unrolled, score_fn,
                    work, INV, C, TR, U, L, P, SC)
        if use_dw:
            if mode == 0:
                load_noise(dW[st, lo:lo + nb], Zb)
            else:
                load_noise(zc[st, j, lo:lo + nb], Zb)
        else:
            for i in range(0, d, 2):
                lanes_normal_pairs(rs[blk], Zb, i, nb)
        if mode == 0:  # Euler-Maruyama predictor
            for i in range(d):
                for b in range(B):
                    Xs[i, b] += h * (f * Xs[i, b] - g2 * SC[i, b]) + g * Zb[i, b]
            continue
        Gs, Zs = G[blk], Z[blk]
        gn, zn = work[0], work[1]
        for b in range(B):
            gn[b] = 0.0
            zn[b] = 0.0
        for i in range(d):
            for b in range(B):
                Gs[i, b] = SC[i, b]
                Zs[i, b] = Zb[i, b]
                gn[b] += SC[i, b] * SC[i, b]
                zn[b] += Zb[i, b] * Zb[i, b]
        for b in range(B):  # SIMD square roots, then a sum in lane order
            gn[b] = math.sqrt(gn[b])
            zn[b] = math.sqrt(zn[b])
        gsum = 0.0
        zsum = 0.0
        for b in range(nb):
            gsum += gn[b]
            zsum += zn[b]
        part[blk, 0] = gsum
        part[blk, 1] = zsum
    touch(keep)


@njit(cache=True, parallel=True, error_model="numpy")
def _pass(XS, nlast, mode, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W, lamT, logw,
          unrolled, score_fn, G, Z, part):
    nblk = part.shape[0]
    per = (nblk + _CHUNKS - 1) // _CHUNKS
    for ch in prange(_CHUNKS):
        _pass_chunk(XS, nlast, ch * per, min(nblk, (ch + 1) * per), mode, st, j, pend, coef, dW,
                    zc, use_dw, rs, diag, shared, mT, W, lamT, logw, unrolled, score_fn, G, Z,
                    part)


@njit(cache=True, error_model="numpy")
def pc_batch_driver(x, coef, alpha, dW, zc, use_dw, seed, n_corr, snr, diag, shared, mT, W,
                    lamT, logw, unrolled, score_fn):
    """Run the whole grid in place on x (N, d); returns -1, or the step where the mean score
    norm was exactly zero (the step rule is undefined there)."""
    N, d = x.shape
    B = LANES
    nblk = (N + B - 1) // B
    nlast = N - (nblk - 1) * B
    XS = np.empty((nblk, d, B), x.dtype)
    rs = np.zeros((nblk, 4, B), dtype=np.uint64)
    for blk in range(nblk):
        lo = blk * B
        for b in range(B):
            n = lo + min(b, N - 1 - lo)  # padding lanes repeat the last sample
            for i in range(d):
                XS[blk, i, b] = x[n, i]
            if not use_dw and lo + b < N:
                store_states(rs[blk], b, True, seed_stream(seed, lo + b))
    G = np.zeros((nblk, d, B), x.dtype)
    Z = np.zeros((nblk, d, B), x.dtype)
    part = np.zeros((nblk, 2))
    pend = 0.0
    # the modes as run-time ints: literal arguments made numba compile _pass and _pass_chunk
    # (the whole score inlined) once per literal, three times over; the first float64 call
    # compiled in 48.9 s with them, 24.6 s without (measured, one core)
    zero = np.int64(n_corr - n_corr)
    predict, correct, update = zero, zero + 1, zero + 2
    for st in range(coef.shape[0] - 1):
        _pass(XS, nlast, predict, st, zero, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W,
              lamT, logw, unrolled, score_fn, G, Z, part)
        pend = 0.0
        for j in range(n_corr):
            _pass(XS, nlast, correct, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W,
                  lamT, logw, unrolled, score_fn, G, Z, part)
            gsum = 0.0
            zsum = 0.0
            for blk in range(nblk):  # fixed order
                gsum += part[blk, 0]
                zsum += part[blk, 1]
            if gsum == 0.0:
                return st
            ratio = zsum / gsum
            pend = 2.0 * alpha[st] * snr * snr * ratio * ratio
    if pend > 0.0:
        _pass(XS, nlast, update, zero, zero, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W,
              lamT, logw, unrolled, score_fn, G, Z, part)
    for blk in range(nblk):
        lo = blk * B
        for b in range(min(B, N - lo)):
            for i in range(d):
                x[lo + b, i] = XS[blk, i, b]
    return -1
