r"""Loop stages of the fused mixture kernel (:mod:`._mixture_numba`), one block of points at a time.

A block holds B points transposed, as (d, B) arrays, so every loop here runs over points with
unit stride and LLVM vectorises it (no ``fastmath``: additions stay in program order). Each
function reads from one array and writes to another; in-place updates use a single array
variable, because two distinct arguments that alias make LLVM fall back to scalar code.

Operation counts per (point, component) pair are in each docstring (additions and
multiplications counted separately: no FMA contraction without fastmath). The stages serve
float64 and float32 blocks alike (numba compiles each for both): their constants are
``like(value, array)`` (:mod:`._numba_dtype`), so float32 lanes are never promoted.
"""

from __future__ import annotations

import math

from numba import njit

from scorebench._vector_width import align_numba_arrays

from ._numba_dtype import like
from ._numba_transpose import transpose_tiles

align_numba_arrays()  # 64-byte scratch arrays with 512-bit vectors (before any kernel compiles)

__all__ = ["load_transposed", "store_logp_score", "small_matmul", "quad_rows",
           "quad_rows_per_point", "inverse_rows", "log_weight", "lse_step", "welford"]


@njit(fastmath=False, error_model="numpy", cache=True)
def load_transposed(x, start, n, XT):
    """``XT[:, :n] = x[start:start + n].T``; the rest of a partial block repeats its first point.

    Full blocks go by 8 x 8 tiles in vector registers (:mod:`._numba_transpose`: 5.7 -> 2.8 ns
    per point at d = 16, one Zen 4 core), the columns beyond a multiple of 8 and partial blocks
    by the loops below. Those index through the view ``x[start:start + n]`` by loop counters,
    which LLVM sees are non-negative: indexing ``x[start + i, c]`` made numba wrap a possibly
    negative index, five integer instructions per element and no vector code (28 % of the
    d = 2, K = 8 kernel's time with the stores below, measured).
    """
    d, B = XT.shape
    xb = x[start:start + n]
    c0 = transpose_tiles(xb, d, XT, B, B, d, False) if n == B and B % 8 == 0 else 0
    for c in range(c0, d):
        for i in range(n):
            XT[c, i] = xb[i, c]
        x0 = xb[0, c]
        for i in range(n, B):
            XT[c, i] = x0


@njit(fastmath=False, error_model="numpy", cache=True)
def store_logp_score(start, n, M, S, SC, want_logp, want_score, out_logp, out_score,
                     negate=False):
    r"""The block's n points out: :math:`\log p = M + \log S` and the score ``SC`` (d, B), or
    ``-SC`` with ``negate`` (through views, as in :func:`load_transposed`; full blocks by 8 x 8
    tiles as there: 8.1 -> 2.7 ns per point at d = 16)."""
    if want_logp:
        lp = out_logp[start:start + n]
        for i in range(n):
            lp[i] = M[i] + math.log(S[i])
    if not want_score:
        return
    d, B = SC.shape
    sc = out_score[start:start + n]
    # (rows of SC: the d coordinates, whole tiles up to the last multiple of 8)
    c0 = 0
    if n == B and B % 8 == 0:
        transpose_tiles(SC, B, sc, d, d, B, negate)
        c0 = d - d % 8
    for c in range(c0, d):
        for i in range(n):
            sc[i, c] = -SC[c, i] if negate else SC[c, i]


@njit(fastmath=False, error_model="numpy", cache=True)
def small_matmul(M, X, out):
    """``out = M @ X`` for a small square M (d < 8), looping over the block's points."""
    d, B = X.shape
    for r in range(d):
        for i in range(B):
            out[r, i] = M[r, 0] * X[0, i]
        for c in range(1, d):
            u = M[r, c]
            for i in range(B):
                out[r, i] += u * X[c, i]


@njit(fastmath=False, error_model="numpy", cache=True)
def quad_rows(src, Z, amk, iv, q):
    r""":math:`z = \mathrm{src} - a m_k` row by row, ``Z = z / lambda``, ``q = sum_c z^2 / lambda``.

    5 flops per point and coordinate. ``src`` is the block itself (diagonal covariances) or its
    projection :math:`U_k^\top X` (full covariances); ``amk`` (d,) is :math:`a\, m_k`, ``iv`` (d,)
    is :math:`1/\lambda_k`.
    """
    d, B = Z.shape
    for c in range(d):
        ac, ic = amk[c], iv[c]
        if c == 0:
            for i in range(B):
                z = src[0, i] - ac
                zi = z * ic
                Z[0, i] = zi
                q[i] = z * zi
        else:
            for i in range(B):
                z = src[c, i] - ac
                zi = z * ic
                Z[c, i] = zi
                q[i] += z * zi


@njit(fastmath=False, error_model="numpy", cache=True)
def inverse_rows(W, XT, bk, amu, q):
    r"""From :math:`W = C_k^{-1} X`: :math:`q = \sum_c (x_c - a\mu_{kc}) (W - b_k)_c`, where
    :math:`W - b_k = C_k^{-1}(x - a\mu_k) = -g_k` (``W`` is not modified: :func:`welford` forms
    :math:`W - b_k` again).

    ``bk`` (d,) is :math:`C_k^{-1} a \mu_k`, ``amu`` (d,) is :math:`a \mu_k` (standard basis).
    4 flops per point and coordinate. The rows go four at a time, so the running sum stays in
    a register for four of them (one load and store of ``q`` per four rows, not per row); the
    additions are in row order as before.
    """
    d, B = W.shape
    for i in range(B):
        q[i] = 0.0
    c = 0
    while c + 4 <= d:
        b0, b1, b2, b3 = bk[c], bk[c + 1], bk[c + 2], bk[c + 3]
        a0, a1, a2, a3 = amu[c], amu[c + 1], amu[c + 2], amu[c + 3]
        for i in range(B):
            acc = q[i]
            acc += (XT[c, i] - a0) * (W[c, i] - b0)
            acc += (XT[c + 1, i] - a1) * (W[c + 1, i] - b1)
            acc += (XT[c + 2, i] - a2) * (W[c + 2, i] - b2)
            acc += (XT[c + 3, i] - a3) * (W[c + 3, i] - b3)
            q[i] = acc
        c += 4
    while c < d:
        bc, ac = bk[c], amu[c]
        for i in range(B):
            q[i] += (XT[c, i] - ac) * (W[c, i] - bc)
        c += 1


@njit(fastmath=False, error_model="numpy", cache=True)
def quad_rows_per_point(src, Z, mk, lk, ab, ab2, s2b, q, ld, pr, trb, lgroup):
    r"""``quad_rows`` with per-point times, :math:`\lambda = a_i^2 \Lambda_{kc} + s_i^2` per point.

    10 flops and 1 division per point and coordinate, plus one ``log`` per point for every
    ``lgroup`` coordinates: the log-determinant ``ld`` is a sum of logs of products of up to
    ``lgroup`` eigenvalues (``pr`` is scratch). Also returns the trace ``trb`` of
    :math:`C_k^{-1}`.
    """
    d, B = Z.shape
    for c in range(d):
        m, l = mk[c], lk[c]
        first = c == 0
        newgroup = c % lgroup == 0
        for i in range(B):
            z = src[c, i] - ab[i] * m
            lv = ab2[i] * l + s2b[i]
            iv = like(1.0, lv) / lv
            zi = z * iv
            Z[c, i] = zi
            q[i] = z * zi if first else q[i] + z * zi
            trb[i] = iv if first else trb[i] + iv
            pr[i] = lv if newgroup else pr[i] * lv
        if (c + 1) % lgroup == 0 or c == d - 1:
            for i in range(B):
                v = math.log(pr[i])
                ld[i] = v if c < lgroup else ld[i] + v


@njit(fastmath=False, error_model="numpy", cache=True)
def log_weight(q, m, dlt, const, ld):
    r"""Turn ``q`` into :math:`\ell = \mathrm{const} - \tfrac12 \mathrm{ld} - \tfrac12 q` in place
    and write :math:`-|\ell - m|` (the exponent of the online log-sum-exp) to ``dlt``.

    6 flops per point. ``ld`` is the per-point log-determinant (zeros for a common time,
    where it is folded into ``const``).
    """
    half, zero = like(0.5, q), like(0.0, q)  # float32 arrays stay in float32
    for i in range(q.shape[0]):
        lr = const - half * ld[i] - half * q[i]
        q[i] = lr
        dl = lr - m[i]
        dlt[i] = -dl if dl > zero else dl


@njit(fastmath=False, error_model="numpy", cache=True)
def lse_step(lr, ex, m, sw, rr, cc, M2, T, trb, need_grad):
    r"""One online log-sum-exp step: fold a component with log-weight ``lr`` into the running
    maximum ``m`` and weight sum ``sw``; ``ex`` holds :math:`e^{-|\ell - m|}`.

    If :math:`\ell > m` the old sums are rescaled by :math:`e^{m-\ell}` and the new weight is 1;
    otherwise the new weight is :math:`e^{\ell - m}`. For the gradient terms it also rescales the
    Welford sum of squares ``M2`` and the trace sum ``T``, and stores the Welford coefficients
    ``rr = w / sw_new`` and ``cc = sw_old / sw_new`` (both in [0, 1], summing to 1 up to
    rounding). 4 flops per point (logp only), else 11 flops and 1 division.
    """
    one = like(1.0, sw)  # float32 arrays stay in float32
    if not need_grad:
        for i in range(lr.shape[0]):
            up = lr[i] > m[i]
            w = one if up else ex[i]
            sc = ex[i] if up else one
            m[i] = lr[i] if up else m[i]
            sw[i] = sw[i] * sc + w
        return
    for i in range(lr.shape[0]):  # a branch-free body, so that it vectorises
        up = lr[i] > m[i]
        w = one if up else ex[i]
        sc = ex[i] if up else one
        m[i] = lr[i] if up else m[i]
        swo = sw[i] * sc
        swn = swo + w
        sw[i] = swn
        isw = one / swn
        rr[i] = w * isw
        cc[i] = swo * isw
        M2[i] = M2[i] * sc
        T[i] = T[i] * sc + w * trb[i]


@njit(fastmath=False, error_model="numpy", cache=True)
def welford(W, bk, MEAN, rr, cc, sw, acc, M2, want_lap):
    r"""Weighted Welford update with :math:`g_k = -(W - b_k)` (West 1979); ``bk`` (d,) is zero
    where ``W`` holds :math:`-g_k` itself.

    With :math:`r = w/S'` and :math:`c = S/S'` (old and new weight sums :math:`S, S'`):
    :math:`\delta = g_k - \bar g`, :math:`\bar g \leftarrow c\, \bar g + r\, g_k` and (Laplacian)
    :math:`M_2 \mathrel{+}= w c\, |\delta|^2`, so that :math:`\bar g = \sum_k \pi_k g_k` and
    :math:`M_2 / S = \sum_k \pi_k |g_k - \bar g|^2`. The mean is updated as a convex combination,
    not as :math:`\bar g + r \delta`: when a new component takes over (:math:`c \approx 0`) a
    huge old mean then leaves no rounding residue. 3d + d flops per point for the score, 6d + d + 3
    with the Laplacian. Rows four at a time (the sum of squares in a register across them),
    additions in row order.
    """
    d, B = W.shape
    if want_lap:
        for i in range(B):
            acc[i] = 0.0
        c = 0
        while c + 4 <= d:
            b0, b1, b2, b3 = bk[c], bk[c + 1], bk[c + 2], bk[c + 3]
            for i in range(B):
                r, k = rr[i], cc[i]
                s = acc[i]
                g = W[c, i] - b0
                dv = -g - MEAN[c, i]
                MEAN[c, i] = k * MEAN[c, i] - r * g
                s += dv * dv
                g = W[c + 1, i] - b1
                dv = -g - MEAN[c + 1, i]
                MEAN[c + 1, i] = k * MEAN[c + 1, i] - r * g
                s += dv * dv
                g = W[c + 2, i] - b2
                dv = -g - MEAN[c + 2, i]
                MEAN[c + 2, i] = k * MEAN[c + 2, i] - r * g
                s += dv * dv
                g = W[c + 3, i] - b3
                dv = -g - MEAN[c + 3, i]
                MEAN[c + 3, i] = k * MEAN[c + 3, i] - r * g
                s += dv * dv
                acc[i] = s
            c += 4
        while c < d:
            bc = bk[c]
            for i in range(B):
                g = W[c, i] - bc
                dv = -g - MEAN[c, i]
                MEAN[c, i] = cc[i] * MEAN[c, i] - rr[i] * g
                acc[i] += dv * dv
            c += 1
        for i in range(B):
            M2[i] += (rr[i] * sw[i]) * cc[i] * acc[i]
    else:
        for c in range(d):
            bc = bk[c]
            for i in range(B):
                MEAN[c, i] = cc[i] * MEAN[c, i] - rr[i] * (W[c, i] - bc)
