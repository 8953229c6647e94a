"""What a call of the fused mixture kernels (:mod:`._mixture_numba`) prepares before they run:
the block size, the coefficients' shapes, and what depends on the mixture alone (the
zero-weight-free arrays, the smallest eigenvalue, the axis permutation of diagonal covariances,
the projected means), the last kept for the mixtures in use so that a small call does not
redo ~10 us of numpy calls.
"""

from __future__ import annotations

import threading

import numpy as np

from ._mixture_numpy import projected_means

_LOG_2PI = float(np.log(2.0 * np.pi))

__all__ = ["BLAS_MIN_D", "axis_permutation", "block_size", "call_constants", "coefficient",
           "prepared", "generic_layout", "STATIC"]

# BLAS dgemm for the projections from this dimension on (below it the call overhead dominates).
BLAS_MIN_D = 8
# OpenBLAS runs a dgemm single-threaded when m*n*k <= 65536 * 4; staying under keeps it from
# spawning threads inside numba's.
_BLAS_SINGLE_THREAD_WORK = 262144


def axis_permutation(U):
    """Row index of the single +-1 entry of each column of every U_k, or None if U is not so."""
    nz = U != 0.0
    if not np.all(nz.sum(axis=1) == 1) or not np.all(np.abs(U[nz]) == 1.0):
        return None
    return np.argmax(nz, axis=1)  # (K, d): U_k[rows[k, e], e] = +-1


def block_size(d):
    """Points per block: 240 up to d = 16, else ~131072/d^2 (the (d, B) scratch stays in L2),
    and small enough that OpenBLAS runs the (d, d) x (d, B) products single-threaded.

    Long BLAS calls pay: 256 points ran 20-25 % faster at d = 8 and 16 than the 128 and 64
    this used to pick (measured). 240 rather than 256: a row of a (d, 256) float64 array is
    2 KiB, so the rows of the scratch arrays that one loop walks together fall into two of the
    L1 cache's 64 sets and evict each other; a row of 1920 bytes (30 lines) spreads them over
    32 sets. d = 16, K = 8, one AMD Zen 4 core, ns per (point, component) pair, variants side by
    side in one process: the stage functions' passes alone 9.70 (256) -> 9.17 (248), the
    kernel 22.6 -> 21.5; with the generated passes 240 ran 19.3 against 20.1 (248), 20.0 (232)
    and 19.7 (200). 240 is also a multiple of the 16 float32 lanes of a 512-bit vector."""
    b = 240 if d <= 16 else max(32, min(256, 131072 // (d * d)))
    while d >= BLAS_MIN_D and b > 1 and b * d * d > _BLAS_SINGLE_THREAD_WORK:
        b //= 2
    return b


def coefficient(v, n, name):
    """``a`` or ``s^2`` as float64: shape (1,) for a scalar (a common time), else (n,)."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr)


# What a call prepares from the mixture alone, kept for the mixtures in use (up to
# STATIC_MAX, each with eigenvectors of at most STATIC_MAX_BYTES: for larger mixtures the
# kernel's time dwarfs the preparation, and the cache must not hold gigabytes alive): ~10 us of
# numpy calls per call otherwise, a quarter of a 256-point call. Keyed on the identity of the
# four arrays (held by the entry, so an id is never reused while it is cached); the arrays are
# treated as immutable, as a GaussianMixture's are.
STATIC: dict = {}
STATIC_MAX = 16
STATIC_MAX_BYTES = 1 << 22
_STATIC_LOCK = threading.Lock()  # kernels release the GIL: calls may come from many threads


def prepared(means, U, lam, logw) -> dict:
    """The zero-weight-free arrays, the smallest eigenvalue (over all components: a singular
    component has no density at t = 0 whatever its weight) and room for the layouts."""
    originals = (means, U, lam, logw)
    key = tuple(map(id, originals))
    hit = STATIC.get(key)
    if hit is not None:
        return hit[1]
    st = {"lam_min": float(lam.min())}
    keep = logw > -np.inf  # zero-weight components contribute exactly nothing
    if not keep.all():
        means, U, lam, logw = means[keep], U[keep], lam[keep], logw[keep]
    st.update(means=means, U=U, lam=lam, logw=np.ascontiguousarray(logw, dtype=np.float64))
    if U.nbytes > STATIC_MAX_BYTES:
        return st
    with _STATIC_LOCK:
        while len(STATIC) >= STATIC_MAX:
            STATIC.pop(next(iter(STATIC)))
        STATIC[key] = (originals, st)
    return st


def generic_layout(st):
    """``(diag, lamk, mt, U, UT)`` of the generic kernel for a :func:`prepared` entry."""
    lay = st.get("generic")
    if lay is None:
        means, U, lam = st["means"], st["U"], st["lam"]
        rows = axis_permutation(U)
        if rows is not None:  # diagonal in the standard basis: eigenvalues onto the axes
            lamk = np.empty_like(lam)
            np.put_along_axis(lamk, rows, lam, axis=1)
            U = np.ascontiguousarray(U)
            lay = (True, lamk, np.ascontiguousarray(means, dtype=np.float64), U, U)
        else:
            lay = (False, np.ascontiguousarray(lam),
                   np.ascontiguousarray(projected_means(means, U)), np.ascontiguousarray(U),
                   np.ascontiguousarray(np.transpose(U, (0, 2, 1))))
        st["generic"] = lay
    return lay


def call_constants(diag, lamk, U, UT, means, logw, a, s2, inverse_max_cond, logdet_group):
    r"""What the generic kernel precomputes per call, in float64: ``(inv, cst, trc, lgroup,
    use_inv, CI, bk, amu)``.

    At a common time (``a``, ``s2`` of shape (1,)): :math:`1/\lambda_k` (K, d), the constants
    :math:`\log w_k - \tfrac12 \log\det C_k - \tfrac d2 \log 2\pi` and :math:`\mathrm{tr}\,
    C_k^{-1}`; and, for full covariances whose every :math:`C_k` has condition number up to
    ``inverse_max_cond`` (decided whatever is wanted, so that every subset of the outputs gives
    the same numbers), the one-product path's :math:`C_k^{-1} = U_k \mathrm{diag}(1/\lambda_k)
    U_k^\top` (K, d, d), :math:`a\mu_k` and :math:`b_k = C_k^{-1} a\mu_k` (K, d). Per-point
    times: empty arrays, and ``lgroup`` = ``logdet_group`` eigenvalues per log where no product
    of that many can overflow (all in [1e-38, 1e38]), else 1.
    """
    K, d = lamk.shape
    CI, bk, amu = np.empty((0, d, d)), np.empty((0, d)), np.empty((0, d))
    if a.size != 1:
        lo = (a * a).min() * lamk.min() + s2.min()
        hi = (a * a).max() * lamk.max() + s2.max()
        lgroup = logdet_group if (lo >= 1e-38 and hi <= 1e38) else 1
        return np.empty((K, d)), np.empty(K), np.empty(K), lgroup, False, CI, bk, amu
    var = a[0] * a[0] * lamk + s2[0]
    inv = 1.0 / var
    cst = logw - 0.5 * np.log(var).sum(axis=1) - 0.5 * d * _LOG_2PI
    trc = inv.sum(axis=1)
    use_inv = (not diag
               and float((var.max(axis=1) / var.min(axis=1)).max()) <= inverse_max_cond)
    if use_inv:
        CI = np.ascontiguousarray((U * inv[:, None, :]) @ UT)  # batched BLAS, not einsum
        amu = np.ascontiguousarray(a[0] * means, dtype=np.float64)
        bk = np.ascontiguousarray(np.einsum("kij,kj->ki", CI, amu))
    return inv, cst, trc, 1, use_inv, CI, bk, amu
