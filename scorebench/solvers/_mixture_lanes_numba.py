r"""Mixture score and Laplacian for a block of B points ("lanes") at once, for the fused kernels.

At time t the data mixture :math:`\sum_k w_k N(\mu_k, U_k \Lambda_k U_k^\top)` is
:math:`p_t = \sum_k w_k N(a\mu_k, U_k\,\mathrm{diag}(\lambda_k) U_k^\top)`,
:math:`\lambda_k = a^2\Lambda_k + s^2` (the maths of :mod:`scorebench.analytic._mixture_numpy`).
With :math:`z_k = U_k^\top x - a U_k^\top\mu_k` and :math:`u_k = z_k/\lambda_k`:

.. math::

    \ell_k = \log w_k - \tfrac12 \textstyle\sum_i \log\lambda_{ki} - \tfrac12 z_k\cdot u_k,\quad
    \pi = \mathrm{softmax}_k(\ell),\quad
    \nabla\log p_t = -\textstyle\sum_k \pi_k U_k u_k,\quad
    \Delta\log p_t = \textstyle\sum_k \pi_k (|u_k|^2 - \mathrm{tr}\,\lambda_k^{-1})
                     - |\nabla\log p_t|^2 .

Every lane has its own point and its own time (per-sample adaptive solvers need that; fixed-grid
samplers fill all lanes with one time). :func:`lanes_time_setup` turns per-lane ``(a, s^2)`` into
``INV`` = 1/lambda, ``C`` = log w - logdet/2 and ``TR`` = tr 1/lambda; :func:`lanes_score` does
the rest. The lane index is the **last** axis of every array, so each operation is a
unit-stride loop over lanes that LLVM vectorises (with the branch-free
:func:`~._numba_math.fast_exp`); a lane's result never depends on the other lanes. Points in the
original coordinates when every covariance is diagonal (``diag``), else projected with
``W[k d + i, j] = U_k[j, i]``; with equal eigenvalues in all components (``shared``) the
log-determinants cancel in the responsibilities and are skipped. When both hold (isotropic or
diagonal components of one shape, e.g. the benchmark ring) :func:`lanes_score_diag_shared` needs
no (d, K, B) array at all.

Precision: the functions run in the dtype of their arrays (numba compiles a float64 and a
float32 version; :mod:`._numba_precision` keeps literals and the exponential in that dtype).
Time set-up takes its logarithms in float64 either way.

Operation count per point (d dimensions, K components): quadratic forms 4Kd flops (``diag``) or
4Kd + 2Kd^2 (projection), K ``exp`` and ~4K flops for the softmax, 2Kd (``diag``) or 2Kd + 2Kd^2
for the score, 3Kd + 2K for the Laplacian. Time set-up: d divisions (``shared``) or Kd divisions
and Kd/8 logarithms. With full covariances and d >= 8, the 2Kd^2 + 2Kd^2 of
the projection and the score are two stacked BLAS products (:func:`lanes_score_blas`): the
16-D, K = 8 likelihood of the benchmarks went from 937 to 435 ns per evaluation on one core.
``diag`` and ``shared``: 3Kd + K flops, K ``exp``, 3Kd + 5d flops, d divisions. The functions are compiled once and called once per block of lanes (their argument
reference counting is then negligible), which keeps the kernels' compile time down.
"""

from __future__ import annotations

import weakref

from typing import NamedTuple

import numpy as np
from numba import njit

from ._numba_math import log_of_parts, log_parts
from ._numba_precision import lane_exp, like

__all__ = ["MixtureLayout", "mixture_layout", "layout_as", "cached_layout", "lanes_time_setup",
           "lanes_score", "lanes_score_loops", "lanes_score_blas", "lanes_score_diag_shared",
           "shifted_exponentials",
           "BLAS_MIN_D", "BLAS_MAX_WORK"]

# FMA contraction and reassociation (so reductions vectorise); fast_exp keeps its own flags.
_FM = {"contract", "reassoc"}
_LOG_GROUP = 8  # variances per logarithm in lanes_time_setup (mantissa products stay < 256)


class MixtureLayout(NamedTuple):
    """The mixture in the kernels' layout (float64, C-contiguous, components last).

    Attributes
    ----------
    diag : bool
        All covariances diagonal: work in the original coordinates, ``W`` unused.
    shared : bool
        All components have the same eigenvalues.
    mT : ndarray, shape (d, K)
        Means (``diag``) or projected means ``U_k^T mu_k``, transposed.
    W : ndarray, shape (K d, d) (``(1, 1)`` when ``diag``)
        The :math:`U_k^\top` stacked: ``W[k d + i, j] = U_k[j, i]`` (so :math:`U_k^\top x` for
        every k is one product ``W @ x``).
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
    dg = np.einsum("kii->ki", covs)
    diag = bool(np.all(covs == dg[:, :, None] * np.eye(d)[None]))
    if diag:
        lam, mt, W = np.maximum(dg, 0.0), means, np.zeros((1, 1))
    else:
        lam, U = mix.eigvals[keep], mix.eigvecs[keep]
        mt = np.einsum("kde,kd->ke", U, means)
        # W[k d + i, j] = U[k, j, i]: the U_k^T stacked
        W = np.ascontiguousarray(np.transpose(U, (0, 2, 1)).reshape(K * d, d))
    lamT = np.ascontiguousarray(lam.T)
    shared = bool(np.all(lamT == lamT[:, :1]))
    return MixtureLayout(diag, shared, np.ascontiguousarray(mt.T), W, lamT,
                         np.ascontiguousarray(np.log(mix.weights[keep])))


def layout_as(lay: MixtureLayout, dtype) -> MixtureLayout:
    """The same layout with its arrays in ``dtype`` (float32 kernels take float32 parameters)."""
    return lay._replace(**{f: np.ascontiguousarray(getattr(lay, f), dtype=dtype)
                           for f in ("mT", "W", "lamT", "logw")})


# layouts of the mixtures in use, per dtype: building one costs ~35 us of numpy calls, 4 % of a
# 2000-point likelihood (measured); a mixture is a value once constructed (its eigen-
# decomposition is taken then), and an entry is rebuilt when any array attribute is replaced
_LAYOUTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LAYOUT_FIELDS = ("weights", "means", "covs", "eigvals", "eigvecs")


def cached_layout(mix, dtype) -> MixtureLayout:
    """``layout_as(mixture_layout(mix), dtype)``, built once per mixture and dtype."""
    dtype = np.dtype(dtype)
    arrays = tuple(getattr(mix, f) for f in _LAYOUT_FIELDS)  # held: their ids stay theirs
    entry = _LAYOUTS.get(mix)
    if entry is None or any(a is not b for a, b in zip(entry[0], arrays)):
        entry = _LAYOUTS[mix] = (arrays, {})
    lay = entry[1].get(dtype)
    if lay is None:
        lay = entry[1][dtype] = layout_as(mixture_layout(mix), dtype)
    return lay


@njit(cache=True, fastmath=_FM, error_model="numpy")
def lanes_time_setup(A, S2, lamT, logw, shared, INV, C, TR, tmp):
    """Per-lane ``INV`` (d, K, B), ``C`` (K, B), ``TR`` (K, B) from ``A``, ``S2`` (B,).

    ``C`` holds log w_k, minus logdet_k / 2 unless ``shared`` (then the common log-determinant
    cancels in the responsibilities and is left out). ``tmp`` (B,) is scratch.
    """
    d, K = lamT.shape
    B = A.shape[0]
    one, half = like(1.0, INV), like(0.5, INV)
    for k in range(K):
        w = logw[k]
        for b in range(B):
            C[k, b] = w
            TR[k, b] = 0.0
    if shared:
        for i in range(d):
            lam = lamT[i, 0]
            for b in range(B):
                tmp[b] = one / (A[b] * A[b] * lam + S2[b])
            for k in range(K):
                for b in range(B):
                    INV[i, k, b] = tmp[b]
                    TR[k, b] += tmp[b]
    else:
        # log det_k = log of the product of the d variances, one logarithm per _LOG_GROUP of
        # them (:func:`~._numba_math.log_parts`: mantissas multiplied, exponents added, so no
        # product over- or underflows): d K logs per lane were half the time of a 16-D
        # likelihood evaluation (measured)
        PM, PE = np.empty(B), np.empty(B)
        for k in range(K):
            for i in range(d):
                lam = lamT[i, k]
                for b in range(B):  # (two SIMD loops: each writes at most three arrays)
                    var = A[b] * A[b] * lam + S2[b]
                    iv = one / var
                    INV[i, k, b] = iv
                    TR[k, b] += iv
                first = i % _LOG_GROUP == 0
                for b in range(B):
                    m, e = log_parts(np.float64(A[b] * A[b] * lam + S2[b]))
                    PM[b] = m if first else PM[b] * m
                    PE[b] = e if first else PE[b] + e
                if (i + 1) % _LOG_GROUP == 0 or i == d - 1:
                    for b in range(B):
                        C[k, b] -= half * like(log_of_parts(PM[b], PE[b]), C[k, b])


# full covariances: the projections as BLAS products from this dimension on (below, the loops
# are as fast), while K d^2 B stays small enough that OpenBLAS keeps each product on the
# calling thread (m n k <= 65536 * 4; beyond, its threads would compete with numba's)
BLAS_MIN_D = 8
BLAS_MAX_WORK = 262144


@njit(cache=True, fastmath=_FM, error_model="numpy")
def shifted_exponentials(L, M, S):
    """The parts of a log-sum-exp over k in each lane: ``M`` (B,) = max_k ``L`` (K, B), ``L``
    replaced by exp(L - M) in place, ``S`` (B,) = their sum (>= 1). One exponential per
    (component, lane)."""
    K, B = L.shape
    for b in range(B):
        M[b] = L[0, b]
    for k in range(1, K):
        for b in range(B):
            v = L[k, b]
            M[b] = v if v > M[b] else M[b]
    for b in range(B):
        S[b] = 0.0
    for k in range(K):
        for b in range(B):
            e = lane_exp(L[k, b] - M[b])
            L[k, b] = e
            S[b] += e


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _responsibilities(L, M, S):
    """Softmax over k of the log-weights ``L`` (K, B) in each lane, in place (``M``, ``S``
    (B,) scratch): one exponential per (component, lane), one division per lane."""
    K, B = L.shape
    one = like(1.0, L)
    shifted_exponentials(L, M, S)
    for b in range(B):
        S[b] = one / S[b]
    for k in range(K):
        for b in range(B):
            L[k, b] *= S[b]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def lanes_score(X, A, diag, mT, W, INV, C, TR, want_lap, U, L, M, S, SC, LAP):
    """Score ``SC`` (d, B) and, if ``want_lap``, Laplacian ``LAP`` (B,) of p_t at ``X`` (d, B).

    ``A`` (B,) and ``INV, C, TR`` (from :func:`lanes_time_setup`) describe each lane's time.
    Scratch: ``U`` (d, K, B), ``L`` (K, B), ``M`` and ``S`` (B,). ``X`` and ``SC`` may have
    more than d rows (the likelihood's augmented state): only the first d are read / written.
    Full covariances with d >= :data:`BLAS_MIN_D` go through :func:`lanes_score_blas` while
    K d^2 B <= :data:`BLAS_MAX_WORK`, the rest through :func:`lanes_score_loops`.
    """
    d, K = mT.shape
    B = X.shape[1]
    if (not diag) and d >= BLAS_MIN_D and K * d * d * B <= BLAS_MAX_WORK:
        lanes_score_blas(X, A, mT, W, INV, C, TR, want_lap, U.reshape((K * d, B)), L, M, S, SC,
                         LAP)
    else:
        lanes_score_loops(X, A, diag, mT, W, INV, C, TR, want_lap, U, L, M, S, SC, LAP)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def lanes_score_loops(X, A, diag, mT, W, INV, C, TR, want_lap, U, L, M, S, SC, LAP):
    """:func:`lanes_score` as loops over lanes (diagonal covariances, or small d)."""
    d, K = mT.shape
    B = X.shape[1]
    half = like(0.5, X)
    for k in range(K):
        for b in range(B):
            L[k, b] = C[k, b]
    if diag:
        for k in range(K):
            for i in range(d):
                mik = mT[i, k]
                for b in range(B):
                    U[i, k, b] = X[i, b] - A[b] * mik
    else:
        for k in range(K):
            for i in range(d):
                mik = mT[i, k]
                for b in range(B):
                    U[i, k, b] = -A[b] * mik
                for j in range(d):
                    w = W[k * d + i, j]
                    for b in range(B):
                        U[i, k, b] += w * X[j, b]
    for k in range(K):
        for i in range(d):
            for b in range(B):
                z = U[i, k, b]
                zi = z * INV[i, k, b]
                U[i, k, b] = zi
                L[k, b] -= half * z * zi
    _responsibilities(L, M, S)  # L: log-weights -> responsibilities
    # score = -sum_k pi_k U_k u_k; Laplacian = sum_k pi_k (|u_k|^2 - tr_k) - |score|^2
    for i in range(d):
        for b in range(B):
            SC[i, b] = 0.0
    if want_lap:
        for b in range(B):
            LAP[b] = 0.0
        for k in range(K):
            for b in range(B):
                LAP[b] -= L[k, b] * TR[k, b]
    for k in range(K):
        for i in range(d):
            for b in range(B):
                pu = L[k, b] * U[i, k, b]
                if want_lap:
                    LAP[b] += pu * U[i, k, b]
                U[i, k, b] = pu
    if diag:
        for k in range(K):
            for i in range(d):
                for b in range(B):
                    SC[i, b] -= U[i, k, b]
    else:
        for k in range(K):
            for i in range(d):
                for j in range(d):
                    w = W[k * d + i, j]
                    for b in range(B):
                        SC[j, b] -= w * U[i, k, b]
    if want_lap:
        for i in range(d):
            for b in range(B):
                LAP[b] -= SC[i, b] * SC[i, b]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def lanes_score_blas(X, A, mT, W, INV, C, TR, want_lap, UK, L, M, S, SC, LAP):
    r""":func:`lanes_score` for full covariances with the projections as matrix products.

    :math:`U_k^\top X` for all k at once is ``W @ X[:d]`` ((K d, d) x (d, B)), and the score
    :math:`-\sum_k U_k (\pi_k u_k)` is ``W.T @ UK`` ((d, K d) x (K d, B)) with ``UK`` holding
    :math:`-\pi_k u_k`: two BLAS calls instead of 2 K d^2 multiply-adds per lane in loops that
    load and store the (d, K, B) array at every step (the 16-D, K = 8 likelihood: 937 -> 435 ns
    per evaluation on one core, measured). Same maths as :func:`lanes_score_loops` (sums in
    another order). Scratch: ``UK`` (K d, B), ``L`` (K, B), ``M`` and ``S`` (B,).
    """
    d, K = mT.shape
    B = X.shape[1]
    half = like(0.5, X)
    np.dot(W, X[:d], UK)
    for k in range(K):
        for b in range(B):
            L[k, b] = C[k, b]
        for i in range(d):
            r = k * d + i
            mik = mT[i, k]
            for b in range(B):
                z = UK[r, b] - A[b] * mik
                zi = z * INV[i, k, b]
                UK[r, b] = zi
                L[k, b] -= half * z * zi
    _responsibilities(L, M, S)  # L: log-weights -> responsibilities
    if want_lap:
        for b in range(B):
            LAP[b] = 0.0
        for k in range(K):
            for b in range(B):
                LAP[b] -= L[k, b] * TR[k, b]
    for k in range(K):
        for i in range(d):
            r = k * d + i
            for b in range(B):
                pu = L[k, b] * UK[r, b]
                if want_lap:
                    LAP[b] += pu * UK[r, b]
                UK[r, b] = -pu
    np.dot(W.T, UK, SC[:d])  # SC may have more rows (the augmented state): the first d
    if want_lap:
        for i in range(d):
            for b in range(B):
                LAP[b] -= SC[i, b] * SC[i, b]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def lanes_score_diag_shared(X, A, S2, mT, lamT, logw, want_lap, L, M, S, S1, S2c, SC, LAP):
    r"""Fast path when every covariance is diagonal with the same diagonal ``lamT[:, 0]``.

    With :math:`v_i = a^2\lambda_i + s^2` common to all components, the log-determinants cancel,
    :math:`\ell_k = \log w_k - \tfrac12\sum_i z_{ki}^2 / v_i`, :math:`z_{ki} = x_i - a\mu_{ki}`,
    and with :math:`\bar z_i = \sum_k \pi_k z_{ki}`,
    :math:`\overline{z^2_i} = \sum_k \pi_k z_{ki}^2`:
    score :math:`= -\bar z / v`, Laplacian :math:`= \sum_i (\overline{z^2_i}/v_i^2 - 1/v_i)
    - |\mathrm{score}|^2`. No (d, K, B) array: z is recomputed (one FMA) instead of stored.
    Without the Laplacian the score is :math:`-(x - a\sum_k \pi_k\mu_k)/v`: one FMA per
    component and dimension instead of four.
    Scratch: ``L`` (K, B), ``M``, ``S`` (B,), ``S1``, ``S2c`` (d, B) (``S1`` ends up holding 1/v).
    """
    d, K = mT.shape
    B = X.shape[1]
    one, half = like(1.0, X), like(0.5, X)
    INV, HINV = S1, S2c  # S2c holds 1 / (2 v) until the Laplacian sums need it
    for i in range(d):
        for b in range(B):
            INV[i, b] = one / (A[b] * A[b] * lamT[i, 0] + S2[b])
            HINV[i, b] = half * INV[i, b]
    for k in range(K):
        w = logw[k]
        for b in range(B):
            L[k, b] = w
        for i in range(d):
            mik = mT[i, k]
            for b in range(B):
                z = X[i, b] - A[b] * mik
                L[k, b] -= z * z * HINV[i, b]
    for b in range(B):
        M[b] = L[0, b]
    for k in range(1, K):
        for b in range(B):
            v = L[k, b]
            M[b] = v if v > M[b] else M[b]
    for b in range(B):
        S[b] = 0.0
    for k in range(K):
        for b in range(B):
            e = lane_exp(L[k, b] - M[b])
            L[k, b] = e
            S[b] += e
    for b in range(B):
        S[b] = one / S[b]
    for i in range(d):
        for b in range(B):
            SC[i, b] = 0.0
            S2c[i, b] = 0.0
    if not want_lap:
        # score only: sum_k pi_k z_k = x - a sum_k pi_k mu_k, one FMA per (k, i, lane)
        for k in range(K):
            for i in range(d):
                mik = mT[i, k]
                for b in range(B):
                    SC[i, b] += L[k, b] * mik
        for i in range(d):
            for b in range(B):
                SC[i, b] = (A[b] * (SC[i, b] * S[b]) - X[i, b]) * INV[i, b]
        return
    for k in range(K):
        for i in range(d):
            mik = mT[i, k]
            for b in range(B):
                z = X[i, b] - A[b] * mik
                pz = L[k, b] * z
                SC[i, b] += pz
                S2c[i, b] += pz * z
    for i in range(d):
        for b in range(B):
            SC[i, b] *= -S[b] * INV[i, b]  # S holds 1 / sum of the unnormalised weights
    if want_lap:
        for b in range(B):
            LAP[b] = 0.0
        for i in range(d):
            for b in range(B):
                iv = INV[i, b]
                LAP[b] += (S2c[i, b] * S[b] * iv - one) * iv - SC[i, b] * SC[i, b]
