r"""Fused numba fast path: PF-ODE log-likelihood of a Gaussian-mixture oracle, per-sample DOPRI5.

For each point :math:`x` the augmented probability-flow ODE

.. math::

    \frac{d}{dt}\begin{pmatrix} x_t \\ \ell_t \end{pmatrix} =
    \begin{pmatrix} v(x_t, t) \\ \nabla\cdot v(x_t, t) \end{pmatrix},\qquad
    v = f x - \tfrac12 g^2 \nabla\log p_t,\quad \nabla\cdot v = d f - \tfrac12 g^2 \Delta\log p_t,

is integrated from :math:`(x, 0)` at :math:`t = \varepsilon` to :math:`t = T`, and
:math:`\log p_\varepsilon(x) = \log p_T(x_T) + \ell_T` (DESIGN.md, "Likelihood"). The velocity
and the exact divergence come from one fused pass over the components
(:mod:`._mixture_point_numba`).

Integrator: Dormand–Prince 5(4) with FSAL, exactly scipy's ``RK45`` controller, applied to each
sample on its own: the error norm is the RMS over that sample's d + 1 augmented components of
``err_i / (atol + rtol * max(|y_i|, |y_new_i|))`` (scipy's norm, per sample instead of over the
flattened batch, so one hard point cannot hide behind the easy ones and no easy point pays for a
hard one), Hairer's initial step (scipy's ``select_initial_step``), ``SAFETY = 0.9``,
``MIN_FACTOR = 0.2``, ``MAX_FACTOR = 10``, exponent ``-1/5``, no growth after a rejection within a
step, and scipy's minimum step ``10 |nextafter(t, inf) - t|``: a sample whose step falls below it,
or that needs more than ``max_steps`` attempts, stops and is flagged (the wrapper raises
:class:`~scorebench.solvers.base.SolverError`; it never loops forever).

Parallelism: ``prange`` over fixed chunks of samples; each sample integrates its own path from
eps to T with its own step sizes (no synchronisation between samples, no Python per step).

Operation count per sample and right-hand-side evaluation (d dims, K components, diagonal
covariances): one ``exp`` and one ``expm1`` for the SDE coefficients, d (shared eigenvalues) or Kd
divisions, K exponentials, ~10Kd + 6K flops for the score and Laplacian (4Kd^2 more for full
covariances); per step 6 evaluations (FSAL) plus ~50(d + 1) flops for the stages and the error
norm. Evaluations per sample: 2 (initial step) + 6 per attempted step.

References
----------
Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 1980.
Hairer, Nørsett & Wanner, "Solving Ordinary Differential Equations I", Sec. II.4 (initial step).
Grathwohl et al., "FFJORD", ICLR 2019; Song et al., ICLR 2021 (the likelihood ODE).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._mixture_lanes_numba import lanes_score, lanes_time_setup, mixture_layout
from ._sde_coeffs_numba import lanes_coeffs, sde_to_params

__all__ = ["FusedLoglik", "dopri5_loglik_numba", "supports", "STATUS_MESSAGES"]

_FM = {"contract"}  # FMA only: the controller's arithmetic (t + h, t_new - t) stays as written
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0  # scipy's RK45 controller constants
_EXPONENT = -0.2  # -1 / (error_estimator_order + 1)
LANES = 64  # samples integrated side by side in one block (SIMD lanes; each has its own steps)

# Dormand-Prince 5(4) (scipy RK45) as data: nodes, stage matrix (row 6 = 5th-order weights, so
# the 7th stage is the FSAL evaluation at the new point) and error weights.
_DP_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_DP_A = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
], dtype=np.float64)
_DP_E = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])

OK, STEP_TOO_SMALL, TOO_MANY_STEPS = 0, 1, 2
STATUS_MESSAGES = {
    STEP_TOO_SMALL: "the step size fell below 10 ulp of t (stiff or non-finite right-hand side)",
    TOO_MANY_STEPS: "max_steps attempted steps were not enough",
}


class FusedLoglik(NamedTuple):
    """Result of :func:`dopri5_loglik_numba` (all arrays have one entry per sample)."""

    logp: np.ndarray  #: log p_eps(x) = prior_logp + delta_logp
    prior_logp: np.ndarray  #: log p_T(x_T) under the chosen prior
    delta_logp: np.ndarray  #: integral of div v from eps to T
    x_T: np.ndarray  #: (N, d) end points of the PF-ODE paths
    nfe: np.ndarray  #: right-hand-side evaluations of each sample
    n_accepted: np.ndarray
    n_rejected: np.ndarray
    status: np.ndarray  #: 0 = finished; see STATUS_MESSAGES


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _rhs(tt, Y, out, code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L):
    """out (m, B) = (v, div v) at the lanes' points Y[:d] (m, B) and times tt (B,)."""
    d = mT.shape[0]
    F, G2, A, S2, tmp, M, S, LAP = work[0], work[1], work[2], work[3], work[4], work[5], \
        work[6], work[7]
    lanes_coeffs(code, params, tt, F, G2, A, S2)
    lanes_time_setup(A, S2, lamT, logw, shared, INV, C, TR, tmp)
    lanes_score(Y, A, diag, mT, W, INV, C, TR, True, U, L, M, S, out, LAP)
    B = tt.shape[0]
    for i in range(d):
        for b in range(B):
            out[i, b] = F[b] * Y[i, b] - 0.5 * G2[b] * out[i, b]
    for b in range(B):
        out[d, b] = d * F[b] - 0.5 * G2[b] * LAP[b]


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _loglik_kernel(X, eps, code, params, diag, shared, mT, W, lamT, logw, rtol, atol, first_step,
                   max_steps, xT, delta, nfe, nacc, nrej, status):
    N, d = X.shape
    K = mT.shape[1]
    m = d + 1
    T = params[2]
    B = LANES
    interval = T - eps
    n_blocks = (N + B - 1) // B
    for blk in prange(n_blocks):
        Y = np.empty((m, B))
        Yt = np.empty((m, B))
        KS = np.empty((7, m, B))
        work = np.empty((8, B))
        INV = np.empty((d, K, B))
        U = np.empty((d, K, B))
        C = np.empty((K, B))
        TR = np.empty((K, B))
        L = np.empty((K, B))
        tt = np.empty(B)
        tcur = np.empty(B)
        hs = np.empty(B)  # the step of the current attempt (0 for finished lanes)
        habs = np.empty(B)
        tnew = np.empty(B)
        min_step = np.empty(B)
        err = np.empty(B)
        active = np.zeros(B, dtype=np.bool_)
        new_step = np.ones(B, dtype=np.bool_)
        rejected = np.zeros(B, dtype=np.bool_)
        na = np.zeros(B, dtype=np.int64)
        nr = np.zeros(B, dtype=np.int64)
        st = np.zeros(B, dtype=np.int8)
        lo = blk * B
        for b in range(B):
            n = min(lo + b, N - 1)  # padding lanes repeat the last point; their results are dropped
            active[b] = lo + b < N
            for i in range(d):
                Y[i, b] = X[n, i]
            Y[d, b] = 0.0
            tcur[b] = eps
        _rhs(tcur, Y, KS[0], code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U,
             L)
        evals = 1
        if first_step > 0.0:
            for b in range(B):
                habs[b] = min(first_step, interval)
        else:  # Hairer's initial step, as scipy's select_initial_step, lane by lane
            for b in range(B):
                d0 = 0.0
                d1 = 0.0
                for i in range(m):
                    sc = atol + abs(Y[i, b]) * rtol
                    d0 += (Y[i, b] / sc) ** 2
                    d1 += (KS[0, i, b] / sc) ** 2
                d0 = math.sqrt(d0 / m)
                d1 = math.sqrt(d1 / m)
                h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
                h0 = min(h0, interval)
                hs[b] = h0
                err[b] = d1
                tt[b] = eps + h0
                for i in range(m):
                    Yt[i, b] = Y[i, b] + h0 * KS[0, i, b]
            _rhs(tt, Yt, KS[1], code, params, diag, shared, mT, W, lamT, logw, work, INV, C, TR,
                 U, L)
            evals += 1
            for b in range(B):
                acc = 0.0
                for i in range(m):
                    acc += ((KS[1, i, b] - KS[0, i, b]) / (atol + abs(Y[i, b]) * rtol)) ** 2
                h0 = hs[b]
                d1 = err[b]
                d2 = math.sqrt(acc / m) / h0
                if d1 <= 1e-15 and d2 <= 1e-15:
                    h1 = max(1e-6, h0 * 1e-3)
                else:
                    h1 = (0.01 / max(d1, d2)) ** 0.2
                habs[b] = min(100.0 * h0, h1, interval)
        ev = np.full(B, evals, dtype=np.int64)
        while True:
            any_active = False
            for b in range(B):  # scipy's RK45._step_impl, one attempt per pass
                hs[b] = 0.0
                if not active[b]:
                    continue
                if new_step[b]:
                    min_step[b] = 10.0 * abs(np.nextafter(tcur[b], np.inf) - tcur[b])
                    if habs[b] < min_step[b]:
                        habs[b] = min_step[b]
                    rejected[b] = False
                if habs[b] < min_step[b]:
                    st[b] = STEP_TOO_SMALL
                    active[b] = False
                    continue
                if na[b] + nr[b] >= max_steps:
                    st[b] = TOO_MANY_STEPS
                    active[b] = False
                    continue
                t_new = tcur[b] + habs[b]
                if t_new > T:
                    t_new = T
                tnew[b] = t_new
                hs[b] = t_new - tcur[b]
                habs[b] = hs[b]
                any_active = True
            if not any_active:
                break
            for s in range(1, 7):
                for b in range(B):
                    tt[b] = tcur[b] + _DP_C[s] * hs[b]
                for i in range(m):
                    for b in range(B):
                        Yt[i, b] = 0.0
                    for j in range(s):
                        a_sj = _DP_A[s, j]
                        if a_sj != 0.0:
                            for b in range(B):
                                Yt[i, b] += a_sj * KS[j, i, b]
                    for b in range(B):
                        Yt[i, b] = Y[i, b] + hs[b] * Yt[i, b]
                _rhs(tt, Yt, KS[s], code, params, diag, shared, mT, W, lamT, logw, work, INV, C,
                     TR, U, L)
            for b in range(B):
                acc = 0.0
                for i in range(m):
                    e = 0.0
                    for j in range(7):
                        e += _DP_E[j] * KS[j, i, b]
                    sc = atol + max(abs(Y[i, b]), abs(Yt[i, b])) * rtol
                    acc += (hs[b] * e / sc) ** 2
                err[b] = math.sqrt(acc / m)
            for b in range(B):
                if hs[b] == 0.0:
                    continue
                ev[b] += 6
                e = err[b]
                if e < 1.0:
                    if e == 0.0:
                        factor = MAX_FACTOR
                    else:
                        factor = min(MAX_FACTOR, SAFETY * e ** _EXPONENT)
                    if rejected[b]:
                        factor = min(1.0, factor)
                    habs[b] *= factor
                    na[b] += 1
                    new_step[b] = True
                    tcur[b] = tnew[b]
                    for i in range(m):
                        Y[i, b] = Yt[i, b]
                        KS[0, i, b] = KS[6, i, b]  # FSAL
                    if tcur[b] >= T:
                        active[b] = False
                else:
                    habs[b] *= max(MIN_FACTOR, SAFETY * e ** _EXPONENT)
                    rejected[b] = True
                    new_step[b] = False
                    nr[b] += 1
        for b in range(B):
            n = lo + b
            if n < N:
                for i in range(d):
                    xT[n, i] = Y[i, b]
                delta[n] = Y[d, b]
                nacc[n] = na[b]
                nfe[n] = ev[b]
                nrej[n] = nr[b]
                status[n] = st[b]


# ---------------------------------------------------------------------------------------------
# Python entry point
# ---------------------------------------------------------------------------------------------
def supports(oracle) -> bool:
    """True when ``oracle`` can take the fused path (a MixtureOracle on VP, sub-VP or VE)."""
    from scorebench.analytic.oracle import MixtureOracle

    return isinstance(oracle, MixtureOracle) and sde_to_params(oracle.sde) is not None


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a positive real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name}: must be finite and > 0, got {value}")
    return value


def dopri5_loglik_numba(oracle, x, eps=1e-5, rtol=1e-5, atol=1e-5, prior="default", *,
                        first_step=None, max_steps=100_000, check=True):
    """log p_eps(x) of a mixture oracle by the fused per-sample DOPRI5 PF-ODE solve.

    Parameters
    ----------
    oracle : MixtureOracle
        Exact mixture oracle on a ``VPSDE``, ``SubVPSDE`` or ``VESDE`` (see :func:`supports`).
    x : ndarray, shape (N, d)
        Points at time ``eps`` (float64, finite).
    eps : float
        Start time, ``0 < eps < T``.
    rtol, atol : float
        scipy-meaning tolerances, applied per sample to the augmented state (x, l).
    prior : {"default", "exact"} or None
        ``"default"`` (or None): the SDE's prior ``N(0, prior_std^2 I)``; ``"exact"``: the
        oracle's exact log p_T.
    first_step : float, optional
        Initial step; by default Hairer's selection, per sample.
    max_steps : int
        Maximum attempted steps per sample.
    check : bool
        Raise :class:`~scorebench.solvers.base.SolverError` when a sample failed (step size
        underflow or ``max_steps``); with ``False`` the flags are only returned in ``status``.

    Returns
    -------
    FusedLoglik
        Per-sample ``logp``, ``prior_logp``, ``delta_logp``, ``x_T``, ``nfe``, ``n_accepted``,
        ``n_rejected``, ``status``.
    """
    from scorebench.analytic._validation import check_points

    from .base import SolverError

    if not supports(oracle):
        raise ValueError(
            "oracle: the fused numba likelihood needs a MixtureOracle on VPSDE, SubVPSDE or "
            f"VESDE, got {oracle!r}"
        )
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy array, got {type(x).__name__}")
    x = np.ascontiguousarray(check_points(x, oracle.d), dtype=np.float64)
    T = float(oracle.sde.T)
    eps = _positive(eps, "eps")
    if not eps < T:
        raise ValueError(f"eps: must lie in (0, T) = (0, {T}), got {eps}")
    rtol, atol = _positive(rtol, "rtol"), _positive(atol, "atol")
    if prior is None:
        prior = "default"
    if prior not in ("default", "exact"):
        raise ValueError(f"prior: expected 'default', 'exact' or None, got {prior!r}")
    h0 = 0.0 if first_step is None else _positive(first_step, "first_step")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps: expected an int >= 1, got {max_steps!r}")
    code, params = sde_to_params(oracle.sde)
    lay = mixture_layout(oracle.mix)
    N, d = x.shape
    delta, xT = np.empty(N), np.empty((N, d))
    nfe = np.empty(N, dtype=np.int64)
    nacc, nrej = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    status = np.empty(N, dtype=np.int8)
    _loglik_kernel(x, eps, code, params, lay.diag, lay.shared, lay.mT, lay.W, lay.lamT, lay.logw,
                   rtol, atol, h0, int(max_steps), xT, delta, nfe, nacc, nrej, status)
    ok = status == OK
    prior_lp = np.full(N, np.nan)
    if np.any(ok):
        pts = xT[ok]
        prior_lp[ok] = (oracle.log_prob(pts, T) if prior == "exact"
                        else oracle.sde.prior_log_prob(pts))
    if check and np.any(status != OK):
        bad = np.flatnonzero(status != OK)
        raise SolverError(
            f"dopri5 (numba): {bad.size} of {N} samples did not reach T; first, sample "
            f"{bad[0]}: {STATUS_MESSAGES[int(status[bad[0]])]}"
        )
    return FusedLoglik(prior_lp + delta, prior_lp, delta, xT, nfe, nacc, nrej, status)
