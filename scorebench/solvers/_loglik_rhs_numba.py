r"""The likelihood kernel's right-hand side on lanes and its samples' start (see
:mod:`._dopri5_lanes_numba`).

:func:`rhs` is the augmented PF-ODE's velocity and exact divergence for a block of lanes, each
at its own time and point (inlined into the kernel's stages); :func:`prepare` computes, for
:data:`~._dopri5_lanes_numba.LANES` samples at a time, f(eps, y0) and the initial step (scipy's
``select_initial_step``: one more evaluation), before the samples take a lane.
"""

from __future__ import annotations

import math

from numba import njit

from ._mixture_lanes_numba import lanes_score, lanes_score_diag_shared, lanes_time_setup
from ._numba_math import fast_exp, fast_log
from ._numba_precision import like
from ._sde_coeffs_numba import lanes_coeffs_as
from ._unrolled_score_numba import array_ptr, call_score

__all__ = ["rhs", "prepare", "lo", "hi"]

_FM = {"contract"}  # FMA only: the controller's arithmetic (t + h, t_new - t) stays as written


@njit(cache=True, error_model="numpy", inline="always")
def lo(a, b):
    # explicit selects: numba's builtin min/max defeat its reference-count pruning
    return a if a < b else b


@njit(cache=True, error_model="numpy", inline="always")
def hi(a, b):
    return a if a > b else b


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def rhs(tt, Y, out, code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L,
         P, unrolled, score_fn, same_times):
    """out (m, B) = (v, div v) at the lanes' points Y[:d] (m, B) and times tt (B,).

    With ``unrolled`` the score and Laplacian come from ``score_fn``, the address of the
    generated :mod:`._unrolled_score_numba` function for this (d, K). The SDE coefficients are
    computed in float64 for a float64 state and in float32 (from float64 times) for a float32
    one (:func:`~._sde_coeffs_numba.lanes_coeffs_as`); with
    ``same_times`` (``tt`` as in the previous call: stages 5 and 6 both sit at t + h) those of
    the previous call are reused.
    """
    d = mT.shape[0]
    B = tt.shape[0]
    # twelve (B,) arrays, no views made per call: float64 coefficients, the same in the state's
    # dtype, scratch
    F, G2, A, S2, Fd, G2d, Ad, S2d, tmp, M, S, LAP = work
    if not same_times:  # float64 state: float64 coefficients; float32: computed in float32
        lanes_coeffs_as(code, params, tt, F, G2, A, S2, Fd, G2d, Ad, S2d)
    if unrolled:
        call_score(score_fn, array_ptr(Y), array_ptr(Ad), array_ptr(S2d), array_ptr(mT),
                   array_ptr(lamT), array_ptr(logw), array_ptr(out), array_ptr(LAP), B)
    elif diag and shared:
        lanes_score_diag_shared(Y, Ad, S2d, mT, lamT, logw, True, L, M, S, P[0], P[1], out, LAP)
    else:
        lanes_time_setup(Ad, S2d, lamT, logw, shared, INV, C, TR, tmp)
        lanes_score(Y, Ad, diag, mT, W, INV, C, TR, True, U, L, M, S, out, LAP)
    for i in range(d):
        for b in range(B):
            out[i, b] = Fd[b] * Y[i, b] - G2d[b] * out[i, b]
    dd = like(d, Y)
    for b in range(B):
        out[d, b] = dd * Fd[b] - G2d[b] * LAP[b]


# the same, as a function of its own for prepare (twice per LANES samples): a second inlined
# copy made the kernel take ~25 % longer to compile, for no measurable speed
_rhs_call = njit(cache=True, fastmath=_FM, error_model="numpy")(rhs.py_func)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def prepare(X, q0, q1, eps, first_step, interval, rtol, atol, QF, QH, Y0, F1, Y1, tt, H0, D1,
             code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L, P, unrolled,
             score_fn):
    """The start of samples q0 .. q1 - 1 (at most LANES), one per lane: ``QF`` = f(eps, y0) and
    ``QH`` = the initial |h| (``first_step`` clipped to the interval, or Hairer's selection as
    scipy's ``select_initial_step``: h0 from |y0| and |f0|, then |h| from f(eps + h0,
    y0 + h0 f0)). Lanes beyond q1 - q0 repeat sample q0 (their results are not used).
    ``Y0``, ``F1``, ``Y1``, ``tt``, ``H0``, ``D1`` are scratch; the other arguments are
    :func:`_rhs`'s.
    """
    d = X.shape[1]
    m, B = QF.shape
    for b in range(B):
        n = q0 + b if q0 + b < q1 else q0
        for i in range(d):
            Y0[i, b] = X[n, i]
        Y0[d, b] = 0.0
        tt[b] = eps
    # one call site for both evaluations
    for e in range(1 if first_step > 0.0 else 2):
        if e == 1:  # Hairer's h0 from |y0| and |f0|, then f(eps + h0, y0 + h0 f0)
            # the sums over components in H0 and D1 first, lanes innermost (SIMD; a loop over
            # lanes around one over components ran scalar, ~3 % of the float32 kernel)
            for b in range(B):
                H0[b] = 0.0
                D1[b] = 0.0
            for i in range(m):
                for b in range(B):
                    sc = atol + abs(Y0[i, b]) * rtol
                    H0[b] += (Y0[i, b] / sc) ** 2
                    D1[b] += (QF[i, b] / sc) ** 2
            for b in range(B):
                a0 = math.sqrt(H0[b] / m)
                a1 = math.sqrt(D1[b] / m)
                h = 1e-6 if (a0 < 1e-5 or a1 < 1e-5) else 0.01 * a0 / a1
                H0[b] = lo(h, interval)
                D1[b] = a1
                tt[b] = eps + H0[b]
            for i in range(m):
                for b in range(B):
                    Y1[i, b] = Y0[i, b] + H0[b] * QF[i, b]
        _rhs_call(tt, Y0 if e == 0 else Y1, QF if e == 0 else F1, code, params, diag, shared,
                  mT, W, lamT, logw, work, INV, C, TR, U, L, P, unrolled, score_fn, False)
    if first_step > 0.0:
        for b in range(B):
            QH[b] = lo(first_step, interval)
        return
    for b in range(B):  # tt is free now: the sums over components, lanes innermost
        tt[b] = 0.0
    for i in range(m):
        for b in range(B):
            tt[b] += ((F1[i, b] - QF[i, b]) / (atol + abs(Y0[i, b]) * rtol)) ** 2
    for b in range(B):  # branch-free, so SIMD: both cases computed, one kept
        d2 = math.sqrt(tt[b] / m) / H0[b]
        tiny = D1[b] <= 1e-15 and d2 <= 1e-15
        # (0.01 / max(d1, d2)) ** (1/5) without a libm pow (2.5 % of the float32 kernel)
        h1 = fast_exp(0.2 * fast_log(1.0 if tiny else 0.01 / hi(D1[b], d2)))
        h1 = hi(1e-6, H0[b] * 1e-3) if tiny else h1
        QH[b] = lo(lo(100.0 * H0[b], h1), interval)
