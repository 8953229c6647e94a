r"""Mixture log-density at one time for many points, in lanes: the likelihood's exact prior.

At a time with coefficients :math:`a, s^2` the marginal of the data mixture is
:math:`p = \sum_k w_k N(a\mu_k, U_k\,\mathrm{diag}(\lambda_k) U_k^\top)`,
:math:`\lambda_k = a^2\Lambda_k + s^2`, and with :math:`z_k = U_k^\top x - a U_k^\top\mu_k`

.. math::

    \ell_k = \log w_k - \tfrac d2 \log 2\pi - \tfrac12 \textstyle\sum_i \log\lambda_{ki}
             - \tfrac12 \sum_i z_{ki}^2/\lambda_{ki},\qquad
    \log p = m + \log \textstyle\sum_k e^{\ell_k - m},\quad m = \max_k \ell_k

(diagonal covariances: :math:`z_k = x - a\mu_k` in the original coordinates). The per-component
constants are computed once per call (all points share the time); the points go through in
blocks of :data:`LANES`, transposed so that every loop over a block is a SIMD loop over points.

The fused likelihood uses it for its ``prior="exact"``, :math:`\log p_T(x_T)` of the path ends,
in place of a call of the oracle's general kernel (which also forms the score and the Laplacian,
and validates its input: ~70 us of a 2,000-point, ~0.8 ms likelihood, against ~10 us here).

Operation count per (point, component): 2d^2 (projection, full covariances) + 3d flops, one
exponential; per point one logarithm. Float64 throughout (the layout given in float64).
Agreement with the oracle's ``log_prob``: a few ulp of the summed terms (same formula, sums in
another order; see the tests).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._mixture_lanes_numba import shifted_exponentials
from ._numba_math import fast_log

__all__ = ["LANES", "component_constants", "lanes_log_density", "log_density_rows",
           "log_density_span"]

LANES = 64
_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, error_model="numpy")
def component_constants(a, s2, lamT, logw, INV, CONST):
    r"""``INV[i, k]`` = :math:`1/\lambda_{ki}` and ``CONST[k]`` = :math:`\log w_k - \tfrac d2
    \log 2\pi - \tfrac12\sum_i\log\lambda_{ki}` at coefficients (a, s^2)."""
    d, K = lamT.shape
    for k in range(K):
        c = logw[k] - 0.5 * d * _LOG_2PI
        for i in range(d):
            lam = a * a * lamT[i, k] + s2
            INV[i, k] = 1.0 / lam
            c -= 0.5 * math.log(lam)
        CONST[k] = c


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def lanes_log_density(X, a, diag, mT, W, INV, CONST, Z, L, out):
    """``out`` (B,) = log p at the points ``X`` (d, B) (constants from
    :func:`component_constants`); scratch ``Z`` (d, B), ``L`` (K, B)."""
    d, K = mT.shape
    B = X.shape[1]
    for k in range(K):
        for b in range(B):
            L[k, b] = CONST[k]
        for i in range(d):
            am = a * mT[i, k]
            h = 0.5 * INV[i, k]
            if diag:
                for b in range(B):
                    z = X[i, b] - am
                    L[k, b] -= h * z * z
            else:
                for b in range(B):
                    Z[i, b] = -am
                for j in range(d):
                    w = W[k * d + i, j]
                    for b in range(B):
                        Z[i, b] += w * X[j, b]
                for b in range(B):
                    L[k, b] -= h * Z[i, b] * Z[i, b]
    S = Z[0]
    shifted_exponentials(L, out, S)  # out = max_k l_k, S = sum_k e^(l_k - out)
    for b in range(B):
        out[b] += fast_log(S[b])  # S in [1, K]: a normal number


@njit(cache=True, error_model="numpy")
def log_density_span(X, n0, n1, a, diag, mT, W, INV, CONST, out):
    """``out[n]`` = log p(X[n]) for n0 <= n < n1, serially (constants from
    :func:`component_constants`); the fused likelihood calls it from its own parallel chunks."""
    d, K = mT.shape
    B = LANES
    XT = np.empty((d, B))
    Z = np.empty((d, B))
    L = np.empty((K, B))
    LP = np.empty(B)
    for s in range(n0, n1, B):
        n = min(B, n1 - s)
        for b in range(B):  # a partial block repeats its first point
            r = s + b if b < n else s
            for i in range(d):
                XT[i, b] = X[r, i]
        lanes_log_density(XT, a, diag, mT, W, INV, CONST, Z, L, LP)
        for b in range(n):
            out[s + b] = LP[b]


@njit(cache=True, parallel=True, error_model="numpy")
def log_density_rows(X, a, s2, diag, mT, W, lamT, logw, nchunks, out):
    """``out[n]`` = log p(X[n]) for the points ``X`` (N, d), float64, in ``nchunks`` parallel
    chunks (whole blocks of :data:`LANES`), at coefficients (a, s^2); the mixture as a float64
    :class:`~._mixture_lanes_numba.MixtureLayout` (``diag``, ``mT``, ``W``, ``lamT``, ``logw``)."""
    N = X.shape[0]
    d, K = mT.shape
    INV = np.empty((d, K))
    CONST = np.empty(K)
    component_constants(a, s2, lamT, logw, INV, CONST)
    blocks = (N + LANES - 1) // LANES
    per = (blocks + nchunks - 1) // nchunks * LANES
    for c in prange(nchunks):
        log_density_span(X, min(N, c * per), min(N, (c + 1) * per), a, diag, mT, W, INV, CONST,
                         out)
