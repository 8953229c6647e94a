r"""numba-callable SDE coefficients f(t), g(t)^2, a(t), s(t)^2 for the closed-form families.

The fused kernels (:mod:`.fused_likelihood_numba`) integrate each sample on its own time axis,
so they need the coefficients of :mod:`scorebench.analytic.sde` at arbitrary per-sample times
inside ``@njit`` code. An SDE is passed to a kernel as an integer family code and a small float64
parameter vector (``sde_to_params``); :func:`sde_coeffs` evaluates, with exactly the formulas of
``sde.py`` (same operations in the same order, ``expm1`` where ``sde.py`` uses it):

=========  ================  ===============================  ==========  ===================
code       f(t)              g(t)^2                           a(t)        s(t)^2
=========  ================  ===============================  ==========  ===================
0 (VP)     -beta/2           beta                             e^{-B/2}    -expm1(-B)
1 (subVP)  -beta/2           beta (-expm1(-2B))               e^{-B/2}    expm1(-B)^2
2 (VE)     0                 (2L/T) sigma^2                   1           smin^2 expm1(2Lt/T)
=========  ================  ===============================  ==========  ===================

with :math:`\beta = \beta_{min} + t(\beta_{max}-\beta_{min})`,
:math:`B = \beta_{min} t + \tfrac12(\beta_{max}-\beta_{min}) t^2`,
:math:`L = \ln(\sigma_{max}/\sigma_{min})`
and :math:`\sigma = \sigma_{min} e^{L t / T}`.

Parameter vectors: VP and sub-VP ``[beta_min, beta_max, T]``; VE ``[sigma_min, sigma_max, T, L]``.
A :class:`~scorebench.analytic.linear_sde.LinearSDE` (or any subclass that may override the
closed forms) has no code: :func:`sde_to_params` returns ``None`` and callers fall back to the
generic path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from scorebench.analytic.sde import VESDE, SubVPSDE, VPSDE

from scorebench.analytic._numba_exp import exp_expm1_f32

from ._numba_math import fast_exp, fast_exp_expm1, fast_expm1

__all__ = ["VP", "SUBVP", "VE", "sde_to_params", "sde_coeffs", "lanes_coeffs", "lanes_coeffs_f32",
           "lanes_coeffs_as", "sde_coeffs_array"]

VP, SUBVP, VE = 0, 1, 2


def sde_to_params(sde):
    """Family code and float64 parameter vector of ``sde``, or ``None`` without a closed form here.

    Only the exact classes ``VPSDE``, ``SubVPSDE`` and ``VESDE`` are recognised (a subclass may
    override the formulas, so it falls back like a ``LinearSDE``).

    Returns
    -------
    (int, ndarray) or None
    """
    kind = type(sde)
    if kind is VPSDE or kind is SubVPSDE:
        code = VP if kind is VPSDE else SUBVP
        return code, np.array([sde.beta_min, sde.beta_max, sde.T], dtype=np.float64)
    if kind is VESDE:
        return VE, np.array([sde.sigma_min, sde.sigma_max, sde.T, sde._log_ratio], dtype=np.float64)
    return None


@njit(cache=True, inline="always")
def sde_coeffs(code, params, t):
    """``(f, g2, a, s2)`` at time ``t`` for family ``code`` with parameters ``params``.

    Costs one ``exp`` and one ``expm1`` (VP, VE) or one ``exp`` and two ``expm1`` (sub-VP).
    """
    if code == 2:
        smin, T, L = params[0], params[2], params[3]
        sigma = smin * math.exp(L * t / T)
        g2 = 2.0 * L / T * sigma ** 2
        s2 = smin ** 2 * math.expm1(2.0 * L * t / T)
        return 0.0, g2, 1.0, s2
    bmin, bmax = params[0], params[1]
    beta = bmin + t * (bmax - bmin)
    B = bmin * t + 0.5 * (bmax - bmin) * t * t
    f = -0.5 * beta
    a = math.exp(-0.5 * B)
    if code == 0:
        return f, beta, a, -math.expm1(-B)
    return f, beta * (-math.expm1(-2.0 * B)), a, math.expm1(-B) ** 2


@njit(cache=True, fastmath={"contract"}, error_model="numpy", inline="always")
def lanes_coeffs(code, params, t, F, G2, A, S2):
    """:func:`sde_coeffs` for every entry of ``t`` (B,) into ``F, G2, A, S2`` (B,), vectorisable.

    The same quantities with the branch-free ``fast_exp`` / ``fast_expm1`` of :mod:`._numba_math`
    (relative error ~1e-15) instead of libm, so the loop over lanes compiles to SIMD code; VP and
    sub-VP take a(t) and every expm1 from one ``fast_exp_expm1(-B/2)`` (see the comment below). Each
    loop writes at most three arrays: LLVM vectorises a loop over numba arrays only after
    run-time checks that its arrays do not overlap, and gives up beyond 8 such checks (one loop
    writing all four arrays ran scalar, at 15 ns per lane against 5 ns split, one Zen 3 core).
    """
    B = t.shape[0]
    if code == 2:
        smin, T, L = params[0], params[2], params[3]
        for b in range(B):
            u = L * t[b] / T
            sigma = smin * fast_exp(u)
            G2[b] = 2.0 * L / T * sigma * sigma
            S2[b] = smin * smin * fast_expm1(2.0 * u)
        for b in range(B):
            F[b] = 0.0
            A[b] = 1.0
        return
    bmin, bmax = params[0], params[1]
    # one range reduction and polynomial per lane (fast_exp_expm1): a = exp(-B/2) and
    # h = expm1(-B/2), each accurate to its own size; then, by (1 + h)^2 - 1 =
    # h (2 + h), expm1(-B) = h (2 + h) and expm1(-2B) = e (2 + e) with e = expm1(-B): no
    # cancellation (h, e in (-1, 0], 2 + h, 2 + e in (1, 2])
    if code == 0:
        for b in range(B):
            Bt = bmin * t[b] + 0.5 * (bmax - bmin) * t[b] * t[b]
            A[b], h = fast_exp_expm1(-0.5 * Bt)
            S2[b] = -(h * (2.0 + h))
    else:
        for b in range(B):
            Bt = bmin * t[b] + 0.5 * (bmax - bmin) * t[b] * t[b]
            A[b], h = fast_exp_expm1(-0.5 * Bt)
            em = h * (2.0 + h)
            S2[b] = em * em
            G2[b] = (bmin + t[b] * (bmax - bmin)) * (-(em * (2.0 + em)))
    for b in range(B):
        beta = bmin + t[b] * (bmax - bmin)
        F[b] = -0.5 * beta
        if code == 0:
            G2[b] = beta


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def lanes_coeffs_f32(code, params, t, F, G2h, A, S2):
    r"""float32 ``F``, ``G2h`` = :math:`g^2/2`, ``A``, ``S2`` (B,) at float64 times ``t`` (B,):
    what the float32 likelihood kernel's right-hand side uses, without float64 polynomials.

    :math:`B(t)` (or :math:`Lt/T`) and :math:`\beta(t)` are formed in float64 from the float64
    times and rounded once to float32; the exponentials are float32
    (:func:`~scorebench.analytic._numba_exp.exp_expm1_f32`: twice the lanes per vector and 7
    terms against 13), with :math:`s^2` from expm1 as in :func:`lanes_coeffs` (relative
    accuracy near t = 0, where :math:`s^2 \approx \beta_{min} t`). Error of each coefficient
    relative to its size: a few float32 ulps plus :math:`|x| 2^{-24}` from rounding the
    exponent x to float32 (:math:`|x| \le 5` for the default VP, up to 18 for a VE with
    :math:`\sigma_{max}/\sigma_{min} = 8000`; tested) -- below the float32 kernel's own
    rounding of the score. One core, VP, 64 lanes: 2.4 ns per lane and evaluation for the
    float64 path (:func:`lanes_coeffs` then a rounding copy), 1.15 ns here; the float32
    likelihood (ring of 8, rtol 2e-5, one core) 6-8 % faster, N = 2,000 and 20,000.
    """
    B = t.shape[0]
    half, two = np.float32(0.5), np.float32(2.0)
    # float64 loops (8 lanes a vector) only form the exponents and beta; the exponentials run
    # in loops over float32 arrays alone (16 lanes a vector), the exponent kept in S2 meanwhile
    if code == 2:
        smin, T, L = params[0], params[2], params[3]
        smin32, c32 = np.float32(smin), np.float32(L / T)
        for b in range(B):
            S2[b] = np.float32(L * t[b] / T)
        for b in range(B):
            u = S2[b]
            e, _ = exp_expm1_f32(u)
            sigma = smin32 * e
            G2h[b] = c32 * sigma * sigma  # (2L/T) sigma^2 / 2
            _, em = exp_expm1_f32(two * u)
            S2[b] = smin32 * smin32 * em
        for b in range(B):
            F[b] = np.float32(0.0)
            A[b] = np.float32(1.0)
        return
    bmin, bmax = params[0], params[1]
    for b in range(B):  # as in lanes_coeffs: a and every expm1 from one exp_expm1 of -B/2
        S2[b] = np.float32(-0.5 * (bmin * t[b] + 0.5 * (bmax - bmin) * t[b] * t[b]))
    if code == 0:
        for b in range(B):
            a, h = exp_expm1_f32(S2[b])
            A[b] = a
            S2[b] = -(h * (two + h))
            G2h[b] = np.float32(1.0)
    else:  # sub-VP: s^2 = expm1(-B)^2, g^2 = beta (-expm1(-2B)), expm1(-2B) = e (2 + e)
        for b in range(B):
            a, h = exp_expm1_f32(S2[b])
            A[b] = a
            em = h * (two + h)
            S2[b] = em * em
            G2h[b] = -(em * (two + em))
    for b in range(B):
        beta = np.float32(bmin + t[b] * (bmax - bmin))
        F[b] = -half * beta
        G2h[b] = half * beta * G2h[b]


def lanes_coeffs_as(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d):
    """``Fd``, ``G2h`` (= g^2 / 2), ``Ad``, ``S2d`` in their own dtype: float64 through
    :func:`lanes_coeffs` into the float64 scratch ``F, G2, A, S2`` and a copy, float32 through
    :func:`lanes_coeffs_f32`. numba code gets the branch for its dtype at compile time (the
    overload below); called from Python it takes the same branch at run time."""
    if np.asarray(Fd).dtype == np.float32:
        lanes_coeffs_f32(code, params, t, Fd, G2h, Ad, S2d)
        return
    lanes_coeffs(code, params, t, F, G2, A, S2)
    Ad[:], S2d[:], Fd[:], G2h[:] = A, S2, F, 0.5 * G2


@overload(lanes_coeffs_as, inline="always")
def _lanes_coeffs_as(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d):
    if Fd.dtype == types.float32:
        def f32(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d):
            lanes_coeffs_f32(code, params, t, Fd, G2h, Ad, S2d)
        return f32

    def f64(code, params, t, F, G2, A, S2, Fd, G2h, Ad, S2d):
        lanes_coeffs(code, params, t, F, G2, A, S2)
        for b in range(t.shape[0]):  # at most three arrays written per SIMD loop
            Ad[b] = A[b]
            S2d[b] = S2[b]
        for b in range(t.shape[0]):
            Fd[b] = F[b]
            G2h[b] = 0.5 * G2[b]
    return f64


@njit(cache=True, error_model="numpy")
def sde_coeffs_array(code, params, t, fast):
    """(4, len(t)) array of ``f, g2, a, s2`` at float64 times ``t``; ``fast`` selects
    :func:`lanes_coeffs` instead of :func:`sde_coeffs`. Used by the tests against ``sde.py``.
    """
    n = t.shape[0]
    out = np.empty((4, n))
    if fast:
        lanes_coeffs(code, params, t, out[0], out[1], out[2], out[3])
        return out
    for i in range(n):
        f, g2, a, s2 = sde_coeffs(code, params, t[i])
        out[0, i] = f
        out[1, i] = g2
        out[2, i] = a
        out[3, i] = s2
    return out
