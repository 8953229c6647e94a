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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._numba_math import seed_stream, standard_normal
from ._numba_precision import like
from ._sampling_lanes_numba import LANES, block_scratch, load_states, score_block, store_states

__all__ = ["pc_batch_driver"]

_FM = {"contract"}
_CHUNKS = 32  # parallel tasks per pass; scratch is allocated once per task


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _pass_chunk(x, c0, c1, mode, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W,
                lamT, logw, unrolled, score_fn, G, Z, part):
    """Blocks c0 .. c1 - 1 of one pass. mode 0: predictor; 1: corrector inputs; 2: update only.

    ``pend`` > 0 is the pending corrector step size (batch norms); the update uses G and Z.
    """
    N, d = x.shape
    K = mT.shape[1]
    B = LANES
    # float64 or float32 (see fused_sampling_numba, "Precision")
    Xb, SC, work, INV, U, P, C, TR, L = block_scratch(d, K, x.dtype)
    noise_p = like(math.sqrt(2.0 * pend), Xb)
    pend_d = like(pend, Xb)
    r = st if mode == 0 else st + 1
    h, f, g2 = like(coef[st, 1], Xb), like(coef[st, 2], Xb), like(coef[st, 3], Xb)
    g = like(math.sqrt(coef[st, 3]) if use_dw else math.sqrt(coef[st, 3] * abs(coef[st, 1])), Xb)
    for blk in range(c0, c1):
        lo = blk * B
        nb = min(B, N - lo)
        for b in range(B):
            n = lo + min(b, nb - 1)
            for i in range(d):
                v = x[n, i]
                if pend > 0.0:
                    v += pend_d * G[n, i] + noise_p * Z[n, i]
                Xb[i, b] = v
        if mode == 2:
            for b in range(nb):
                for i in range(d):
                    x[lo + b, i] = Xb[i, b]
            continue
        score_block(Xb, coef[r, 4], coef[r, 5], diag, shared, mT, W, lamT, logw, unrolled, score_fn,
                    work, INV, C, TR, U, L, P, SC)
        gsum = 0.0
        zsum = 0.0
        gmin = np.inf
        for b in range(nb):
            n = lo + b
            if not use_dw:
                state = load_states(rs, n, False)
            gg = 0.0
            zz = 0.0
            for i in range(d):
                if use_dw:
                    z = dW[st, n, i] if mode == 0 else zc[st, j, n, i]
                else:
                    z, state = standard_normal(state)
                z = like(z, Xb)
                if mode == 0:
                    x[n, i] = Xb[i, b] + h * (f * Xb[i, b] - g2 * SC[i, b]) + g * z
                else:
                    x[n, i] = Xb[i, b]
                    G[n, i] = SC[i, b]
                    Z[n, i] = z
                    gg += SC[i, b] * SC[i, b]
                    zz += z * z
            if not use_dw:
                store_states(rs, n, False, state)
            gn = math.sqrt(gg)
            gsum += gn
            zsum += math.sqrt(zz)
            gmin = gn if gn < gmin else gmin
        part[blk, 0] = gsum
        part[blk, 1] = zsum
        part[blk, 2] = gmin


@njit(cache=True, parallel=True, error_model="numpy")
def _pass(x, mode, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W, lamT, logw, unrolled,
          score_fn, G, Z, part):
    nblk = part.shape[0]
    per = (nblk + _CHUNKS - 1) // _CHUNKS
    for ch in prange(_CHUNKS):
        _pass_chunk(x, ch * per, min(nblk, (ch + 1) * per), mode, st, j, pend, coef, dW, zc,
                    use_dw, rs, diag, shared, mT, W, lamT, logw, unrolled, score_fn, G, Z, part)


@njit(cache=True, error_model="numpy")
def pc_batch_driver(x, coef, alpha, dW, zc, use_dw, seed, n_corr, snr, diag, shared, mT, W,
                    lamT, logw, unrolled, score_fn):
    """Run the whole grid in place on x (N, d); returns -1, or the step where the mean score
    norm was exactly zero (the step rule is undefined there)."""
    N, d = x.shape
    nblk = (N + LANES - 1) // LANES
    rs = np.empty((N, 4), dtype=np.uint64)
    if not use_dw:
        for n in range(N):
            store_states(rs, n, False, seed_stream(seed, n))
    G = np.empty((N, d), x.dtype)
    Z = np.empty((N, d), x.dtype)
    part = np.zeros((nblk, 3))
    pend = 0.0
    # the modes as run-time ints: literal arguments made numba compile _pass and _pass_chunk
    # (the whole score inlined) once per literal, three times over; the first float64 call
    # compiled in 48.9 s with them, 24.6 s without (measured, one core)
    zero = np.int64(n_corr - n_corr)
    predict, correct, update = zero, zero + 1, zero + 2
    for st in range(coef.shape[0] - 1):
        _pass(x, predict, st, zero, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W, lamT,
              logw, unrolled, score_fn, G, Z, part)
        pend = 0.0
        for j in range(n_corr):
            _pass(x, correct, st, j, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W, lamT,
                  logw, unrolled, score_fn, G, Z, part)
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
        _pass(x, update, zero, zero, pend, coef, dW, zc, use_dw, rs, diag, shared, mT, W, lamT,
              logw, unrolled, score_fn, G, Z, part)
    return -1
