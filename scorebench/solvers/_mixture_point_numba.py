r"""Per-point mixture score, Laplacian and log-density, written to be inlined into fused kernels.

At time t the data mixture :math:`\sum_k w_k N(\mu_k, U_k \Lambda_k U_k^\top)` is
:math:`p_t = \sum_k w_k N(a\mu_k, U_k\,\mathrm{diag}(\lambda_k) U_k^\top)`,
:math:`\lambda_k = a^2\Lambda_k + s^2` (the maths of :mod:`scorebench.analytic._mixture_numpy`).
With :math:`z_k = U_k^\top x - a U_k^\top\mu_k` and :math:`u_k = z_k/\lambda_k`:

.. math::

    \ell_k = \log w_k - \tfrac12 \textstyle\sum_i \log\lambda_{ki} - \tfrac12 z_k\cdot u_k,\quad
    \pi = \mathrm{softmax}(\ell),\quad
    \nabla\log p_t = -\textstyle\sum_k \pi_k U_k u_k,

    \Delta\log p_t = \textstyle\sum_k \pi_k (|u_k|^2 - \mathrm{tr}\,\lambda_k^{-1}) - |\nabla\log p_t|^2 ,
    \qquad \log p_t = \mathrm{logsumexp}(\ell) - \tfrac d2 \log 2\pi .

The work splits in two: :func:`time_setup` (depends on t only: :math:`1/\lambda`, the
log-determinants, the traces) and :func:`point_terms` (depends on x). Fixed-grid samplers
tabulate the first once per grid time; per-sample adaptive solvers call both per evaluation.

Layout: every per-component array is stored with the component index **last** (``(d, K)``,
``(d, d, K)``), so the loops over components are unit-stride and LLVM turns them into SIMD code
(with the branch-free :func:`~._numba_math.fast_exp`). When every covariance is diagonal the
projections are skipped (``diag``); when all components share their eigenvalues (``shared``) the
log-determinants cancel in the responsibilities and are only computed for log p.

Operation count per point, d dimensions, K components: ``diag``: 4Kd + 2K flops for the
quadratic forms, K exponentials, 2Kd for the score, 2Kd + 2K more for the Laplacian; general
covariances add 4Kd^2 (projection and back-projection). ``time_setup``: Kd divisions and
Kd logarithms (d of each when ``shared``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ._numba_math import fast_exp, fast_log

__all__ = ["MixtureLayout", "mixture_layout", "time_setup", "point_terms"]

_FM = {"contract", "reassoc"}  # FMA and reassociated (SIMD) reductions over components
_LOG_2PI = math.log(2.0 * math.pi)


class MixtureLayout(NamedTuple):
    """The mixture in the kernels' layout (float64, C-contiguous, components last).

    Attributes
    ----------
    diag : bool
        All covariances diagonal: work in the original coordinates, ``W`` unused.
    shared : bool
        All components have the same eigenvalues ``lamT[:, k]``.
    mT : ndarray, shape (d, K)
        Means (``diag``) or projected means ``U_k^T mu_k``, transposed.
    W : ndarray, shape (d, d, K) (``(1, 1, K)`` when ``diag``)
        ``W[i, j, k] = U_k[j, i]``.
    lamT : ndarray, shape (d, K)
        Eigenvalues (diagonals when ``diag``), transposed.
    logw : ndarray, shape (K,)
        Log weights of the components with positive weight (the others are dropped).
    """

    diag: bool
    shared: bool
    mT: np.ndarray
    W: np.ndarray
    lamT: np.ndarray
    logw: np.ndarray


def mixture_layout(mix) -> MixtureLayout:
    """Build the kernel layout of a :class:`~scorebench.analytic.mixture.GaussianMixture`."""
    keep = mix.weights > 0
    covs, means = mix.covs[keep], mix.means[keep]
    K, d = means.shape
    off = covs - np.einsum("kii->ki", covs)[:, :, None] * np.eye(d)[None]
    diag = bool(np.all(off == 0.0))
    if diag:
        lam = np.maximum(np.einsum("kii->ki", covs), 0.0)
        mt = means
        W = np.zeros((1, 1, K))
    else:
        lam, U = mix.eigvals[keep], mix.eigvecs[keep]
        mt = np.einsum("kde,kd->ke", U, means)
        W = np.ascontiguousarray(np.transpose(U, (2, 1, 0)))  # W[i, j, k] = U[k, j, i]
    lamT = np.ascontiguousarray(lam.T)
    shared = bool(np.all(lamT == lamT[:, :1]))
    return MixtureLayout(diag, shared, np.ascontiguousarray(mt.T), W, lamT,
                         np.ascontiguousarray(np.log(mix.weights[keep])))


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def time_setup(a, s2, lamT, logw, shared, want_logdet, invT, c, tr):
    """Fill ``invT`` (d, K) = 1/lambda, ``c`` (K,) = log w_k [- logdet_k / 2], ``tr`` (K,) = tr 1/lambda.

    Returns the constant to add to logsumexp for log p: ``-logdet/2 - d log(2 pi)/2`` when
    ``shared`` (the common log-determinant is left out of ``c``; it is only computed when
    ``want_logdet``), ``-d log(2 pi)/2`` otherwise.
    """
    d, K = lamT.shape
    a2 = a * a
    ld = 0.0
    if shared:
        trace = 0.0
        for i in range(d):
            var = a2 * lamT[i, 0] + s2
            inv = 1.0 / var
            trace += inv
            if want_logdet:
                ld += fast_log(var)
            for k in range(K):
                invT[i, k] = inv
        for k in range(K):
            c[k] = logw[k]
            tr[k] = trace
    else:
        for k in range(K):
            c[k] = logw[k]
            tr[k] = 0.0
        for i in range(d):
            for k in range(K):
                var = a2 * lamT[i, k] + s2
                inv = 1.0 / var
                invT[i, k] = inv
                tr[k] += inv
                c[k] -= 0.5 * fast_log(var)
    return -0.5 * ld - 0.5 * d * _LOG_2PI


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def point_terms(x, a, diag, mT, W, invT, c, tr, want_lap, want_lse, u, q, score):
    """Score of p_t at the point ``x`` (d,) into ``score``; returns ``(laplacian, logsumexp)``.

    ``a`` and ``invT, c, tr`` (from :func:`time_setup`) describe the time; ``u`` (d, K) and ``q``
    (K,) are scratch. The Laplacian is 0.0 unless ``want_lap``; logsumexp(l) is 0.0 unless
    ``want_lse`` (log p_t = logsumexp + the constant returned by :func:`time_setup`).
    """
    d, K = mT.shape
    for k in range(K):
        q[k] = 0.0
    if diag:
        for i in range(d):
            xi = x[i]
            for k in range(K):
                z = xi - a * mT[i, k]
                zi = z * invT[i, k]
                u[i, k] = zi
                q[k] += z * zi
    else:
        for i in range(d):
            for k in range(K):
                u[i, k] = -a * mT[i, k]
            for j in range(d):
                xj = x[j]
                for k in range(K):
                    u[i, k] += W[i, j, k] * xj
            for k in range(K):
                z = u[i, k]
                zi = z * invT[i, k]
                u[i, k] = zi
                q[k] += z * zi
    m = -np.inf
    for k in range(K):
        lk = c[k] - 0.5 * q[k]
        q[k] = lk
        m = lk if lk > m else m
    S = 0.0
    for k in range(K):
        e = fast_exp(q[k] - m)
        q[k] = e
        S += e
    inv_s = 1.0 / S
    trace = 0.0
    for k in range(K):
        q[k] *= inv_s
        trace += q[k] * tr[k]
    gg = 0.0
    if diag:
        for i in range(d):
            si = 0.0
            gi = 0.0
            for k in range(K):
                pu = q[k] * u[i, k]
                si += pu
                gi += pu * u[i, k]
            score[i] = -si
            gg += gi
    else:
        for j in range(d):
            score[j] = 0.0
        for i in range(d):
            gi = 0.0
            for k in range(K):
                pu = q[k] * u[i, k]
                gi += pu * u[i, k]
                u[i, k] = pu
            gg += gi
            for j in range(d):
                sj = 0.0
                for k in range(K):
                    sj += W[i, j, k] * u[i, k]
                score[j] -= sj
    lap = 0.0
    if want_lap:
        ss = 0.0
        for j in range(d):
            ss += score[j] * score[j]
        lap = gg - trace - ss
    lse = m + math.log(S) if want_lse else 0.0
    return lap, lse
