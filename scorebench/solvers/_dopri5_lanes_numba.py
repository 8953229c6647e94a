r"""The per-sample Dormand–Prince 5(4) likelihood kernel (see :mod:`.fused_likelihood_numba`).

Samples are integrated in SIMD lanes, each with its own copy of scipy's ``RK45`` controller (its
own time, step size, accepts and rejects). The lanes move through the six stages of an attempt in
lockstep, so the stage inputs (:mod:`._dopri5_stages_numba`, with the tableau), the fused velocity
and divergence (:func:`._loglik_rhs_numba.rhs`, each lane at its own time and point), the error
estimate and the controller are SIMD loops over lanes; only a lane that is idle or fails a check is
visited on its own at an attempt's start. A lane that finishes a sample (or fails) writes its
results and starts the next sample of its chunk at its next attempt. The start of a sample, f(eps,
y0) and Hairer's initial step (one more evaluation), is computed ahead for :data:`LANES` samples at
a time in a pass of its own (:func:`._loglik_rhs_numba.prepare`), so that no attempt is spent on it
(an attempt that did it used two of its six evaluations: on the benchmark ring ~6 % of the lanes'
evaluations went to the four unused ones, and the kernel ran ~10 % longer). Each lane's arithmetic
is independent of the other lanes: results do not depend on the lane, the chunk or the thread a
sample lands on.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from scorebench.analytic._numba_exp import f64_as_i64, i64_as_f64

from scorebench.analytic._bare_arrays_numba import bare, touch
from ._dopri5_stages_numba import DP_C as _DP_C
from ._dopri5_stages_numba import DP_E as _DP_E
from ._dopri5_stages_numba import stage_input as _stage_input
from ._log_density_lanes_numba import log_density_span
from ._loglik_rhs_numba import hi as _hi
from ._loglik_rhs_numba import lo as _lo
from ._loglik_rhs_numba import prepare as _prepare
from ._loglik_rhs_numba import rhs as _rhs
from ._numba_math import fast_exp, fast_log
from ._numba_precision import like

__all__ = ["loglik_kernel", "OK", "STEP_TOO_SMALL", "TOO_MANY_STEPS", "LANES"]

_FM = {"contract"}  # FMA only: the controller's arithmetic (t + h, t_new - t) stays as written
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0  # scipy's RK45 controller constants
_EXPONENT = -0.2  # -1 / (error_estimator_order + 1)
LANES = 64  # samples integrated side by side (SIMD lanes)
OK, STEP_TOO_SMALL, TOO_MANY_STEPS = 0, 1, 2

@njit(cache=True, error_model="numpy", inline="always")
def _next_up(t):
    """``np.nextafter(t, inf)`` for a finite ``t >= 0`` (times here are >= eps > 0): the next
    float64 is one more in the bit pattern. Exact, without libm's call (~1 % of the kernel)."""
    return i64_as_f64(f64_as_i64(t) + 1)


@njit(cache=True, error_model="numpy", inline="always")
def _err_pow(err):
    """SAFETY * err ** (-1/5) for a finite err > 0 (scipy's step factor before clipping)."""
    return SAFETY * fast_exp(_EXPONENT * fast_log(err))


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _solve_chunk(X, n0, n1, eps, code, params, diag, shared, mT, W, lamT, logw, unrolled,
                 score_fn, rtol, atol, first_step, max_steps, xT, delta, nfe, nacc, nrej, status):
    """Integrate samples n0 .. n1 - 1 of X (N, d), LANES at a time (see the module docstring).

    The state, the stages and the score run in X's dtype (float64 or float32); times, step
    sizes, the error norm and the controller in float64.
    """
    d, K = mT.shape
    m = d + 1
    B = LANES
    T = params[2]
    interval = T - eps
    dt = X.dtype
    Y = np.zeros((m, B), dt)  # state at the lane's current time
    Yt = np.zeros((m, B), dt)  # point of this pass's evaluation
    KS = np.zeros((7, m, B), dt)
    work = (np.empty(B), np.empty(B), np.empty(B), np.empty(B), np.empty(B, dt),
            np.empty(B, dt), np.empty(B, dt), np.empty(B, dt), np.empty(B, dt), np.empty(B, dt),
            np.empty(B, dt), np.empty(B, dt))
    INV = np.empty((d, K, B), dt)
    U = np.empty((d, K, B), dt)
    P = np.empty((2, d, B), dt)
    C = np.empty((K, B), dt)
    TR = np.empty((K, B), dt)
    L = np.empty((K, B), dt)
    hsd = np.zeros(B, dt)  # the step in the state's dtype, for the stage inputs
    tt = np.empty(B)
    ERR = np.empty(B)
    POW = np.empty(B)
    FAC = np.empty(B)  # the controller's step factor, and its accept / reject masks
    ACC = np.zeros(B, dtype=np.bool_)
    REJ = np.zeros(B, dtype=np.bool_)
    SLOW = np.zeros(B, dtype=np.bool_)  # lanes the attempt's start visits one by one
    idx = np.full(B, -1, dtype=np.int64)
    tcur = np.full(B, T)
    habs = np.zeros(B)
    hs = np.zeros(B)
    # samples q0 .. q1 - 1 have f(eps, x) in QF[:, n - q0] and their initial |h| in QH (_prepare)
    QF = np.zeros((m, B), dt)
    QH = np.zeros(B)
    H0 = np.zeros(B)
    D1 = np.zeros(B)
    q0 = n0
    q1 = n0
    ev0 = 1 if first_step > 0.0 else 2  # evaluations spent on a sample's start
    tnew = np.empty(B)
    min_step = np.zeros(B)
    new_step = np.ones(B, dtype=np.bool_)
    rejected = np.zeros(B, dtype=np.bool_)
    na = np.zeros(B, dtype=np.int64)
    nr = np.zeros(B, dtype=np.int64)
    ev = np.zeros(B, dtype=np.int64)
    # bare aliases (analytic._bare_arrays_numba) of every array the hot loop hands to a
    # function: ~60 atomic reference-count updates per right-hand-side evaluation otherwise (a
    # quarter of the float32 kernel's time); the owners stay referenced by ``keep`` until after
    # the loop
    keep = (Y, Yt, KS, work, INV, U, P, C, TR, L, tt, QF)
    Y, Yt, KS, INV, U, P, C, TR, L = (bare(Y), bare(Yt), bare(KS), bare(INV), bare(U),
                                      bare(P), bare(C), bare(TR), bare(L))
    QF = bare(QF)
    tt, params, mT, W, lamT, logw = (bare(tt), bare(params), bare(mT), bare(W),
                                     bare(lamT), bare(logw))
    work = (bare(work[0]), bare(work[1]), bare(work[2]), bare(work[3]), bare(work[4]),
            bare(work[5]), bare(work[6]), bare(work[7]), bare(work[8]), bare(work[9]),
            bare(work[10]), bare(work[11]))
    nxt = n0
    while True:
        # ---- start of an attempt: scipy's RK45._step_impl up to the stages, for each lane
        # the common case as SIMD passes (a lane that goes on with its sample: the new-step
        # bookkeeping, then t_new = min(t + |h|, T)); the scalar loop below only visits the
        # lanes flagged SLOW (idle, or failing a check): ~6 of 64 per attempt on the ring,
        # where a scalar pass over all lanes cost ~1/8 of the float32 kernel. Every lane's
        # values are the scalar loop's (the new-step block is idempotent, and a lane that
        # loads a sample redoes it).
        # (conditional stores, not selects between loads: LLVM turns those into a select of
        # the two addresses, which does not vectorise; ~5 % of the float32 kernel, perf)
        for b in range(B):
            if new_step[b]:
                t = tcur[b]
                ms = 10.0 * (_next_up(t) - t)
                min_step[b] = ms
                if habs[b] < ms:
                    habs[b] = ms
        for b in range(B):
            rejected[b] = rejected[b] and not new_step[b]
            new_step[b] = False
        for b in range(B):
            t = tcur[b]
            ha = habs[b]
            slow = idx[b] < 0 or ha < min_step[b] or na[b] + nr[b] >= max_steps
            t_new = t + ha
            t_new = T if t_new > T else t_new
            tnew[b] = t_new
            hs[b] = 0.0 if slow else t_new - t
            SLOW[b] = slow
        for b in range(B):
            if not SLOW[b]:
                habs[b] = hs[b]
        for b in range(B):
            if not SLOW[b]:
                continue
            while True:
                n = idx[b]
                if n < 0 and nxt < n1:  # start the next sample of the chunk
                    if nxt >= q1:  # none prepared: f0 and the initial step of the next LANES
                        q0 = nxt
                        q1 = _lo(n1, nxt + B)
                        _prepare(X, q0, q1, eps, first_step, interval, rtol, atol, QF, QH, Yt,
                                 KS[1], KS[2], tt, H0, D1, code, params, diag, shared, mT, W,
                                 lamT, logw, work, INV, C, TR, U, L, P, unrolled, score_fn)
                    n = nxt
                    nxt += 1
                    idx[b] = n
                    j = n - q0
                    for i in range(d):
                        Y[i, b] = X[n, i]
                    Y[d, b] = 0.0
                    for i in range(m):
                        KS[0, i, b] = QF[i, j]
                    habs[b] = QH[j]
                    tcur[b] = eps
                    na[b] = 0
                    nr[b] = 0
                    ev[b] = ev0
                    new_step[b] = True
                if n < 0:
                    break
                st = OK
                if new_step[b]:
                    t = tcur[b]
                    min_step[b] = 10.0 * (_next_up(t) - t)
                    if habs[b] < min_step[b]:
                        habs[b] = min_step[b]
                    rejected[b] = False
                    new_step[b] = False
                if habs[b] < min_step[b]:
                    st = STEP_TOO_SMALL
                elif na[b] + nr[b] >= max_steps:
                    st = TOO_MANY_STEPS
                if st != OK:
                    _finish(b, n, st, Y, d, na, nr, ev, xT, delta, nfe, nacc, nrej, status)
                    idx[b] = -1
                    continue  # the lane loads its next sample
                t_new = tcur[b] + habs[b]
                if t_new > T:
                    t_new = T
                tnew[b] = t_new
                hs[b] = t_new - tcur[b]
                habs[b] = hs[b]
                break
        busy = False
        for b in range(B):
            busy |= idx[b] >= 0
        if not busy:
            break
        for b in range(B):
            hsd[b] = like(hs[b], Y)
        # ---- the six stages, all lanes in lockstep (SIMD over lanes); idle lanes have hs = 0
        for s in range(1, 7):
            for b in range(B):
                tt[b] = tcur[b] + _DP_C[s] * hs[b]
            _stage_input(s, Y, KS, hsd, Yt)
            # the evaluation goes straight into its stage slot; stage 6 is at t + h like
            # stage 5 (c_5 = c_6 = 1): same SDE coefficients
            _rhs(tt, Yt, KS[s], code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR,
                 U, L, P, unrolled, score_fn, s == 6)
        # ---- error estimate (SIMD), then each lane's controller
        for b in range(B):
            ERR[b] = 0.0
        for i in range(m):
            for b in range(B):
                e = _DP_E[0] * KS[0, i, b]
                for j in range(2, 7):
                    e += _DP_E[j] * KS[j, i, b]
                sc = atol + _hi(abs(Y[i, b]), abs(Yt[i, b])) * rtol
                r = hs[b] * e / sc
                ERR[b] += r * r
        # scipy's RMS error norm over the m components, and its step factor, as a SIMD pass
        # (a scalar err ** -0.2 in the controller loop cost ~30 ns per attempt and lane)
        for b in range(B):
            err = math.sqrt(ERR[b] / m)
            ERR[b] = err
            POW[b] = _err_pow(err if (err > 0.0 and err < np.inf) else 1.0)
        # ---- each lane's controller (scipy's RK45._step_impl after the error norm), as SIMD
        # passes over masks (each writes at most three arrays: see docs/internals.md) instead
        # of a branchy per-lane loop (~1/5 of the float32 kernel's time, measured)
        for b in range(B):
            active = idx[b] >= 0
            err = ERR[b]
            ok = err < 1.0
            fa = MAX_FACTOR if err == 0.0 else _lo(MAX_FACTOR, POW[b])
            fa = _lo(1.0, fa) if rejected[b] else fa
            # a non-finite error norm gives scipy's smallest factor
            fr = _hi(MIN_FACTOR, POW[b]) if err < np.inf else MIN_FACTOR
            ACC[b] = active & ok
            REJ[b] = active & (not ok)
            FAC[b] = (fa if ok else fr) if active else 1.0
        for b in range(B):
            habs[b] *= FAC[b]
        for b in range(B):
            na[b] += 1 if ACC[b] else 0
            nr[b] += 1 if REJ[b] else 0
            ev[b] += 6 if (ACC[b] | REJ[b]) else 0
        for b in range(B):
            rejected[b] = rejected[b] | REJ[b]
            new_step[b] = new_step[b] | ACC[b]
        for b in range(B):
            if ACC[b]:
                tcur[b] = tnew[b]
        for i in range(m):
            for b in range(B):
                # conditional stores (see the attempt's start)
                if ACC[b]:
                    Y[i, b] = Yt[i, b]
                    KS[0, i, b] = KS[6, i, b]  # FSAL
        for b in range(B):
            if ACC[b] and tcur[b] >= T:
                _finish(b, idx[b], OK, Y, d, na, nr, ev, xT, delta, nfe, nacc, nrej, status)
                idx[b] = -1
    touch(keep)


@njit(cache=True, error_model="numpy", inline="always")
def _finish(b, n, st, Y, d, na, nr, ev, xT, delta, nfe, nacc, nrej, status):
    for i in range(d):
        xT[n, i] = Y[i, b]
    delta[n] = Y[d, b]
    nfe[n] = ev[b]
    nacc[n] = na[b]
    nrej[n] = nr[b]
    status[n] = st


@njit(cache=True, parallel=True, error_model="numpy")
def loglik_kernel(X, eps, code, params, diag, shared, mT, W, lamT, logw, unrolled, score_fn, rtol,
                  atol, first_step, max_steps, nchunks, xT, delta, nfe, nacc, nrej, status,
                  prior_exact, a_T, pdiag, pmT, pW, pINV, pCONST, prior_logp):
    """Fill the per-sample outputs; ``nchunks`` chunks of samples run in parallel.

    With ``prior_exact`` each chunk also writes ``prior_logp`` = log p_T(x_T) of its samples, the
    mixture's exact density at T (:mod:`._log_density_lanes_numba`, float64: ``a_T``, the float64
    layout ``pdiag``, ``pmT``, ``pW`` and the constants ``pINV``, ``pCONST`` of
    :func:`~._log_density_lanes_numba.component_constants` at T), in the thread that integrated
    them: no second parallel launch (~20-40 us of a 2,000-point call, measured).

    ``unrolled``, ``score_fn``: use the generated score of :mod:`._unrolled_score_numba`
    (the address of a ``cfunc`` of :func:`~._unrolled_score_numba.score_signature`, so this
    kernel is compiled once for every mixture shape); otherwise ``score_fn`` is not called.

    One chunk per thread: each lane then works through ~N / (nchunks LANES) samples back to
    back, and only the last one leaves it idle while the others finish. The chunking never
    affects any result (see the module docstring).
    """
    N = X.shape[0]
    per = max(LANES, (N + nchunks - 1) // nchunks)
    for c in prange((N + per - 1) // per):
        n0, n1 = c * per, min(N, (c + 1) * per)
        _solve_chunk(X, n0, n1, eps, code, params, diag, shared, mT, W, lamT, logw, unrolled,
                     score_fn, rtol, atol, first_step, max_steps, xT, delta, nfe, nacc, nrej,
                     status)
        if prior_exact:
            log_density_span(xT, n0, n1, a_T, pdiag, pmT, pW, pINV, pCONST, prior_logp)
