r"""Fused numba kernels for the mixture log-density, score and Laplacian (float64).

Same maths and signature as :func:`._mixture_numpy.mixture_terms` (see there): with
:math:`\lambda_k = a^2 \Lambda_k + s^2`, :math:`z_k = U_k^\top x - a\, U_k^\top \mu_k`,
:math:`\ell_k = \log w_k - \tfrac12 \sum_i z_{ki}^2/\lambda_{ki} - \tfrac12 \sum_i \log \lambda_{ki}
- \tfrac d2 \log 2\pi` and :math:`g_k = -U_k (z_k/\lambda_k)`,

.. math::

    \log p = \mathrm{LSE}_k\, \ell_k, \qquad s = \sum_k \pi_k g_k, \qquad
    \Delta \log p = \sum_k \pi_k |g_k - s|^2 - \sum_k \pi_k\, \mathrm{tr}\, C_k^{-1} .

The Laplacian is the reference's :math:`\sum_k \pi_k(|g_k|^2 - \mathrm{tr}\,C_k^{-1}) - |s|^2`
written as a weighted variance, accumulated with West's weighted Welford update (West 1979), so
the cancellation between :math:`\sum \pi_k |g_k|^2` and :math:`|s|^2` far from the data never
happens. Everything is one streaming pass over the components per block of points:

* **Online log-sum-exp.** A running maximum :math:`m` and weight sum; a component above the
  maximum rescales the weight sums by :math:`e^{m - \ell_k}` (the Welford mean needs no rescale),
  so each (point, component) pair costs exactly one exponential, computed by the vectorised
  :func:`._numba_exp.exp_nonpositive` (no libm call in the loop).
* **Blocks of points, structure of arrays.** ``prange`` runs over chunks of blocks of ``B``
  points; a block is held transposed, (d, B), so every inner loop runs over points and
  vectorises. Scratch per thread is a handful of (d, B) and (B,) arrays: no (N, K, d)
  temporary, memory independent of N and K. Full blocks are transposed in and out by 8 x 8
  tiles in vector registers (:mod:`._numba_transpose`).
* **Projection.** Full covariances at a common time, every :math:`C_k` with condition number
  up to 100: one (d, d) x (d, B) product per component, :math:`C_k^{-1} X` with the inverse
  :math:`U_k \mathrm{diag}(1/\lambda_k) U_k^\top` formed once per call, which gives
  :math:`-g_k = C_k^{-1}X - C_k^{-1} a\mu_k` directly and :math:`q_k = (x - a\mu_k)\cdot(-g_k)`
  (:func:`._numba_stages.inverse_rows`); its rounding, ~eps/lambda_min per entry of the
  inverse, stays within ~cond(C_k) d eps of the gradient's scale, hence the condition limit
  (1.1-1.3x faster at d = 16 and 64 than two products, measured). For d = 9..16 the passes
  after that product are generated for the d (:mod:`._generated_passes_numba`; with the tiled
  transposes 1.11-1.22x faster for d = 9..16, both dtypes). Otherwise (ill-conditioned
  components, singular data at small t, per-point times) two products, :math:`U_k^\top X` and
  :math:`U_k (Z/\lambda)`, in the eigenbasis, exact to ~d eps whatever the conditioning. BLAS
  ``dgemm`` from d >= 8, where the call overhead is amortised; plain loops below. Covariances
  diagonal in the standard basis (every :math:`U_k` a signed permutation, which is what
  ``eigh`` returns for diagonal, isotropic and point-mass components) skip the products:
  :math:`z = x - a\mu` coordinate-wise with the eigenvalues permuted accordingly.
* **Per-call precomputation** (common time): :math:`1/\lambda_k`, :math:`\mathrm{tr}\,C_k^{-1}`
  and the constant :math:`\log w_k - \tfrac12\log\det C_k - \tfrac d2 \log 2\pi` once per call;
  per-point times recompute them per pair, with the log-det as a log of products of up to 8
  eigenvalues (one ``log`` per 8 instead of per eigenvalue, when no overflow is possible).

Operation counts per (point, component) pair at a common time (flops: additions and
multiplications counted separately; only the exponential's polynomial is FMA-contracted):

=========================  ================  =================  ==================
want                       full, cond <= 100  full, otherwise    diagonal fast path
=========================  ================  =================  ==================
logp                       2d^2 + 4d + 45     2d^2 + 4d + 45     4d + 45
score (and logp)           2d^2 + 7d + 52     4d^2 + 7d + 52     7d + 52
score + laplacian          2d^2 + 10d + 56    4d^2 + 10d + 56    10d + 56
=========================  ================  =================  ==================

with 1 exponential (~35 of the constant flops) per pair, 1 division per pair for the score
and Laplacian, and 1 log per point for logp. Per-point times add 5d flops, d divisions and
d/8 logs per pair. The d^2 terms are (d, d) x (d, B) products (BLAS); the rest is a handful of
vectorised passes over (d, B) and (B,) arrays held in L1/L2, which are bound by loads and
stores (~0.2 ns per element and pass on the 2-core reference machine) rather than by flops.
Lower bound used by the benchmarks (``scorebench.bench.workloads.pair_flops``):
:math:`N K (t_{exp} + 2 d^2 / R_{mm})` at a common time (one product per pair, the fewest
flops any dense-covariance kernel needs; the generated kernel's inverse form does one too,
its eigenbasis form two),
:math:`4 d^2` with per-point times, with :math:`t_{exp}` the best measured time per
exponential on all threads and :math:`R_{mm}` the measured matrix-multiply rate.

At a common time with d <= 4, and with d <= 8 where every C_k(t) is well-conditioned,
:func:`mixture_terms_numba` hands over to the straight-line kernel generated for that d
(:mod:`._unrolled_mixture_numba`: 1.3-1.9x faster than these passes for d <= 4 in its
eigenbasis form, 1.5-2.7x for d = 5..8 in its inverse form); the passes above serve per-point
times and the rest.

References
----------
D. H. D. West, "Updating mean and variance estimates: an improved method", Comm. ACM 22 (1979).
"""

from __future__ import annotations


import numpy as np
from numba import njit, prange

from . import _numba_launch
from . import _unrolled_mixture_drivers as _drivers
from . import _generated_passes_numba as _passes
from . import _unrolled_mixture_numba as _generated
from ._mixture_numba_prep import BLAS_MIN_D as _BLAS_MIN_D
from ._mixture_numba_prep import block_size as _block_size
from ._mixture_numba_prep import call_constants as _call_constants
from ._mixture_numba_prep import coefficient as _coefficient
from ._mixture_numba_prep import generic_layout as _generic_layout
from ._mixture_numba_prep import prepared as _static
from ._mixture_numpy import projected_means
from ._numba_dtype import like
from ._numba_exp import exp_nonpositive
from ._bare_arrays_numba import bare, touch
from ._generated_passes_numba import call_lse_welford, call_qf_weight
from ._numba_intrinsics import array_ptr
from ._numba_stages import (inverse_rows, load_transposed, log_weight, lse_step, quad_rows,
                            quad_rows_per_point, small_matmul, store_logp_score, welford)

__all__ = ["mixture_terms_numba", "compiled_for"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_WANTS = frozenset(("logp", "score", "laplacian"))
# One product per component (C_k^-1 X) instead of two (U_k^T X, then U_k (Z / lambda)) when every
# C_k has a condition number up to this: the explicit inverse's rounding, ~eps / lambda_min per
# entry, then stays within cond * eps of the gradient's scale (see mixture_terms_numba).
_INVERSE_MAX_COND = 100.0
# Products of this many eigenvalues cannot overflow when every eigenvalue is in [1e-38, 1e38].
_LOGDET_GROUP = 8
@njit(fastmath=False, error_model="numpy", cache=True)
def _run_blocks(b0, b1, x, U, UT, mt, lamk, logw, inv, cst, trc, CI, bk, amu, a, s2, diag,
                use_blas, use_inv, passes, lgroup, want_logp, want_score, want_lap, block,
                out_logp, out_score, out_lap):
    r"""Blocks ``b0 <= b < b1`` of ``block`` points: one pass over the components each.

    ``a``, ``s2`` have length 1 (common time; then ``inv``, ``cst``, ``trc`` hold the per-call
    precomputation) or N (per-point times; then ``lamk`` and ``logw`` are used instead).
    ``use_inv`` (common time, full covariances, well conditioned): one product per component,
    :math:`C_k^{-1} X` with ``CI`` (K, d, d), ``bk`` = :math:`C_k^{-1} a\mu_k` and ``amu`` =
    :math:`a \mu_k` (K, d), instead of :math:`U_k^\top X` and :math:`U_k (Z/\lambda)`;
    ``passes`` (two addresses, or zeros) the generated passes of that path for this d
    (:mod:`._generated_passes_numba`), which accumulate the score with the opposite sign.
    """
    N, d = x.shape
    K = mt.shape[0]
    per_point = a.shape[0] > 1
    need_grad = want_score or want_lap
    c0 = like(-0.5 * d * _LOG_2PI, x)
    # scratch of this thread: a few (d, B) and (B,) arrays
    dt = x.dtype  # float64, or float32 (then every array below and every input is float32)
    XT = np.empty((d, block), dt)   # the block, transposed
    P = np.empty((d, block), dt)    # U_k^T X, then U_k (z / lambda)
    Z = np.empty((d, block), dt)    # z / lambda
    MEAN = np.empty((d, block), dt)  # running sum_k pi_k g_k (Welford mean)
    ab, ab2, s2b = np.empty(block, dt), np.empty(block, dt), np.empty(block, dt)
    m, sw = np.empty(block, dt), np.empty(block, dt)
    M2, T = np.empty(block, dt), np.empty(block, dt)
    q, dlt, ex = np.empty(block, dt), np.empty(block, dt), np.empty(block, dt)
    rr, cc, acc = np.empty(block, dt), np.empty(block, dt), np.empty(block, dt)
    ld, pr, trb = np.zeros(block, dt), np.empty(block, dt), np.empty(block, dt)
    amk = np.empty(d, dt)
    zero = np.zeros(d, dt)  # welford's offset where the product is -g_k itself
    qf_fn, wf_fn = passes
    generated = use_inv and qf_fn != 0
    mode = (_passes.MODE_LAPLACIAN if want_lap
            else (_passes.MODE_SCORE if want_score else _passes.MODE_LOGP))
    # bare aliases (._bare_arrays_numba): the stage calls below would otherwise incref and
    # decref every array argument atomically (6 % of the d = 16 kernel's time, measured)
    keep = (XT, P, Z, MEAN, ab, ab2, s2b, m, sw, M2, T, q, dlt, ex, rr, cc, acc, ld, pr, trb, amk,
            zero)
    XT, P, Z, MEAN, amk, zero = bare(XT), bare(P), bare(Z), bare(MEAN), bare(amk), bare(zero)
    ab, ab2, s2b, m = bare(ab), bare(ab2), bare(s2b), bare(m)
    sw, M2, T = bare(sw), bare(M2), bare(T)
    q, dlt, ex, rr, cc, acc = bare(q), bare(dlt), bare(ex), bare(rr), bare(cc), bare(acc)
    ld, pr, trb = bare(ld), bare(pr), bare(trb)
    U, UT, mt, lamk, inv = bare(U), bare(UT), bare(mt), bare(lamk), bare(inv)
    CI, bk, amu = bare(CI), bare(bk), bare(amu)
    for b in range(b0, b1):
        start = b * block
        n = min(block, N - start)
        load_transposed(x, start, n, XT)
        if per_point:
            for i in range(block):
                j = start + (i if i < n else 0)
                ab[i] = a[j]
                s2b[i] = s2[j]
                ab2[i] = a[j] * a[j]
        m[:] = -np.inf
        sw[:] = 0.0
        M2[:] = 0.0
        T[:] = 0.0
        MEAN[:, :] = 0.0
        for k in range(K):
            if use_inv:  # -g_k = C_k^-1 x - C_k^-1 a mu_k: one product; q = (x - a mu_k).(-g_k)
                if use_blas:
                    np.dot(CI[k], XT, P)
                else:
                    small_matmul(CI[k], XT, P)
                if generated:  # the same steps, d unrolled (score accumulated as -s)
                    call_qf_weight(qf_fn, array_ptr(P), array_ptr(XT), array_ptr(bk[k]),
                                   array_ptr(amu[k]), array_ptr(q), array_ptr(m),
                                   array_ptr(dlt), cst[k])
                    exp_nonpositive(dlt, ex, block)
                    call_lse_welford(wf_fn, array_ptr(P), array_ptr(bk[k]), array_ptr(MEAN),
                                     array_ptr(q), array_ptr(ex), array_ptr(m), array_ptr(sw),
                                     array_ptr(M2), array_ptr(T), trc[k], mode)
                    continue
                inverse_rows(P, XT, bk[k], amu[k], q)
                log_weight(q, m, dlt, cst[k], ld)
                trb[:] = trc[k]
                exp_nonpositive(dlt, ex, block)
                lse_step(q, ex, m, sw, rr, cc, M2, T, trb, need_grad)
                if need_grad:
                    welford(P, bk[k], MEAN, rr, cc, sw, acc, M2, want_lap)
                continue
            # z = U_k^T x - a U_k^T mu_k (diagonal: x - a mu_k); z / lambda; quadratic form
            src = XT
            if not diag:
                if use_blas:
                    np.dot(UT[k], XT, P)
                else:
                    small_matmul(UT[k], XT, P)
                src = P
            if per_point:
                quad_rows_per_point(src, Z, mt[k], lamk[k], ab, ab2, s2b, q, ld, pr, trb, lgroup)
                log_weight(q, m, dlt, logw[k] + c0, ld)
            else:
                for c in range(d):
                    amk[c] = a[0] * mt[k, c]
                quad_rows(src, Z, amk, inv[k], q)
                log_weight(q, m, dlt, cst[k], ld)
                trb[:] = trc[k]
            exp_nonpositive(dlt, ex, block)
            lse_step(q, ex, m, sw, rr, cc, M2, T, trb, need_grad)
            if not need_grad:
                continue
            # g_k = -U_k (z / lambda) (diagonal: -z / lambda); Welford update of mean and M2
            Gk = Z
            if not diag:
                if use_blas:
                    np.dot(U[k], Z, P)
                else:
                    small_matmul(U[k], Z, P)
                Gk = P
            welford(Gk, zero, MEAN, rr, cc, sw, acc, M2, want_lap)
        store_logp_score(start, n, m, sw, MEAN, want_logp, want_score, out_logp, out_score,
                         generated)
        if want_lap:
            lap = out_lap[start:start + n]
            for i in range(n):
                lap[i] = (M2[i] - T[i]) / sw[i]
    touch(keep)


@njit(parallel=True, fastmath=False, error_model="numpy", nogil=True, cache=True)
def _fused_kernel(x, U, UT, mt, lamk, logw, inv, cst, trc, CI, bk, amu, a, s2, diag, use_blas,
                  use_inv, passes, lgroup, want_logp, want_score, want_lap, block, nchunks,
                  out_logp, out_score, out_lap):
    """Split the blocks of points into ``nchunks`` contiguous runs, one ``prange`` task each
    (numba's thread count, 4 runs per thread); the work is in :func:`_run_blocks`.

    The runs' lengths differ by at most one block. (They were ceil(nblocks / nchunks) but for
    the last, which took the rest: 84 blocks in 8 runs of 11, 11, ..., 11, 7 gave one thread 44
    blocks and the other 40, and the call took as long as the 44.)"""
    nblocks = (x.shape[0] + block - 1) // block
    for ch in prange(nchunks):
        _run_blocks(ch * nblocks // nchunks, (ch + 1) * nblocks // nchunks, x, U, UT, mt, lamk,
                    logw, inv, cst, trc, CI, bk, amu, a, s2, diag, use_blas, use_inv, passes,
                    lgroup, want_logp, want_score, want_lap, block, out_logp, out_score, out_lap)


@njit(fastmath=False, error_model="numpy", nogil=True, cache=True)
def _serial_kernel(x, U, UT, mt, lamk, logw, inv, cst, trc, CI, bk, amu, a, s2, diag, use_blas,
                   use_inv, passes, lgroup, want_logp, want_score, want_lap, block, out_logp,
                   out_score, out_lap):
    """:func:`_fused_kernel` on the calling thread alone, for small calls (no parallel launch,
    no change of numba's thread count)."""
    nblocks = (x.shape[0] + block - 1) // block
    _run_blocks(0, nblocks, x, U, UT, mt, lamk, logw, inv, cst, trc, CI, bk, amu, a, s2, diag,
                use_blas, use_inv, passes, lgroup, want_logp, want_score, want_lap, block,
                out_logp, out_score, out_lap)


def compiled_for(d: int, per_point: bool, dtype=np.float64, K: int | None = None) -> bool:
    """Whether the kernel a call in ``d`` dimensions on ``dtype`` points for K components would
    run is compiled in this process (the generated one at a common time with d <= 8, else the
    generic one, with its generated passes for d = 9..16 at a common time)."""
    # (mid-sized calls run on the calling thread, in whichever variant is compiled: _launch)
    if not per_point and _generated.applies(d, 1, inverse=True):
        # (either form: which one runs depends on the time; both are precompiled)
        return _generated.is_loaded(d, dtype, K) and bool(_drivers.block_driver_serial.signatures
                                                       or _drivers.block_driver.signatures)
    if not per_point and _passes.applies(d) and not _passes.is_loaded(d, dtype):
        # (only a well-conditioned call takes them; counted as needed either way)
        return False
    return bool(_serial_kernel.signatures or _fused_kernel.signatures)


def _generated_inverse(lam, a, s2) -> bool:
    """Whether the generated kernel takes its inverse form (one product with C_k^-1 / 2 per
    pair; every C_k well-conditioned, as the generic kernel's one-product path) rather than
    the eigenbasis form."""
    var = float(a) * float(a) * lam + float(s2)
    return float((var.max(axis=1) / var.min(axis=1)).max()) <= _INVERSE_MAX_COND


def _generated_applies(d, K, lam, a, s2) -> bool:
    """Whether a common-time call in d dimensions runs a generated kernel (either form)."""
    return (_generated.applies(d, K)
            or (_generated.applies(d, K, inverse=True) and _generated_inverse(lam, a, s2)))


def _generated_terms(x, st, a, s2, want):
    """The common-time case for small d: :mod:`._unrolled_mixture_numba`'s generated kernel."""
    N, d = x.shape
    U, lam, logw = st["U"], st["lam"], st["logw"]
    mt = st.get("projected")
    if mt is None:
        mt = st["projected"] = projected_means(st["means"], U)
    dt = x.dtype  # float64, or float32 for the float32 kernel
    K = logw.shape[0]
    # the last call's constants, kernel address and chunk are kept (a call of a few points
    # spends ~10 us in Python; these would be ~8 us more); keyed on the chunk rule too (a test
    # swaps it)
    key = (float(a), float(s2), dt.char, _generated.chunk_size, _INVERSE_MAX_COND)
    hit = st.get("generated_constants")
    if hit is not None and hit[0] == key:
        P, fn, chunk = hit[1:]
    else:
        inverse = _generated_inverse(lam, a, s2)
        chunk = _generated.chunk_size(d, K, inverse)
        if inverse:
            P = _generated.inverse_constants(U, lam, st["means"], logw, a, s2, dt, chunk)
        else:
            P = _generated.constants(U, lam, mt, logw, a, s2, dt, chunk)
        fn = _generated.block_function(d, dt, K, inverse).address
        st["generated_constants"] = (key, P, fn, chunk)
    out_logp = np.empty(N if "logp" in want else 0, dt)
    out_score = np.empty((N, d) if "score" in want else (0, d), dt)
    out_lap = np.empty(N if "laplacian" in want else 0, dt)
    nk = P.shape[0] // chunk
    flags = ("logp" in want, "score" in want, "laplacian" in want)
    _numba_launch.launch(N * logw.shape[0], _drivers.block_driver_serial, _drivers.block_driver,
            (x, P, nk, fn, *flags), N, _generated.BLOCK, (out_logp, out_score, out_lap))
    out = {"logp": out_logp, "score": out_score, "laplacian": out_lap}
    return {name: out[name] for name in want}


def mixture_terms_numba(x, means, U, lam, logw, a, s2, want=("logp", "score")):
    r"""numba version of :func:`._mixture_numpy.mixture_terms` for ``want`` in logp/score/laplacian.

    Parameters and returns as in the reference (``a``, ``s2`` a float or shape (N,) arrays),
    except that float32 points give float32 results: at a common time computed in float32
    (the generated kernel for d <= 4, the passes below otherwise: twice the lanes per vector,
    a 7-term exponential, ``sgemm``; constants computed in float64 and rounded once; error
    ~1e-6 of the terms' scale near the data), with per-point times in float64 and rounded.
    float64 agreement with it, relative to the size of the summed terms (see the tests):
    ~1e-14 for points near the data, ~3e-11 for points 1e3 standard deviations out, where the
    responsibilities themselves are only defined to ~eps |log N_k| ~ 1e-10. The Laplacian is
    the variance form and stays accurate where the reference's difference of squares cancels.

    Raises
    ------
    ValueError
        ``want`` outside {"logp", "score", "laplacian"}; ``a`` or ``s2`` of the wrong shape;
        a singular component at a time where :math:`a^2 \Lambda + s^2` vanishes (t = 0).
    """
    want = tuple(want)
    if not want or not set(want) <= _WANTS:
        raise ValueError(f"want: expected a non-empty subset of {sorted(_WANTS)}, got {want!r}")
    f32 = np.asarray(x).dtype == np.float32
    x = np.ascontiguousarray(x, dtype=np.float32 if f32 else np.float64)
    N, d = x.shape
    a_arr, s2_arr = _coefficient(a, N, "a"), _coefficient(s2, N, "s2")
    if a_arr.size != s2_arr.size:  # one per-point, the other common: give both per-point
        a_arr, s2_arr = np.broadcast_to(a_arr, (N,)).copy(), np.broadcast_to(s2_arr, (N,)).copy()
    st = _static(means, U, lam, logw)
    lam_min = st["lam_min"]
    if a_arr.size == 1:  # the smallest a^2 Lambda + s^2 (Python floats: no array call)
        singular = float(a_arr[0]) ** 2 * lam_min + float(s2_arr[0]) <= 0.0
    else:
        singular = np.any(a_arr * a_arr * lam_min + s2_arr <= 0.0)
    if singular:
        raise ValueError(
            "t: the density at t = 0 does not exist for singular (point-mass) components; use t > 0"
        )
    means, U, lam, logw = st["means"], st["U"], st["lam"], st["logw"]
    if a_arr.size == 1 and _generated_applies(d, logw.shape[0], lam, a_arr[0], s2_arr[0]):
        return _generated_terms(x, st, a_arr[0], s2_arr[0], want)
    if f32 and a_arr.size != 1:  # per-point times: float64, rounded once
        out = mixture_terms_numba(x.astype(np.float64), means, U, lam, logw, a, s2, want)
        return {name: v.astype(np.float32) for name, v in out.items()}
    diag, lamk, mt, U, UT = _generic_layout(st)
    inv, cst, trc, lgroup, use_inv, CI, bk, amu = _call_constants(
        diag, lamk, U, UT, means, logw, a_arr, s2_arr, _INVERSE_MAX_COND, _LOGDET_GROUP)
    dt = x.dtype
    out_logp = np.empty(N if "logp" in want else 0, dt)
    out_score = np.empty((N, d) if "score" in want else (0, d), dt)
    out_lap = np.empty(N if "laplacian" in want else 0, dt)
    block = _block_size(d)
    consts = (U, UT, mt, lamk, logw, inv, cst, trc, CI, bk, amu, a_arr, s2_arr)
    if f32:  # computed in float64 above, rounded once: the kernel runs in float32 throughout
        consts = tuple(np.ascontiguousarray(c, dtype=np.float32) for c in consts)
    passes = (0, 0)
    if use_inv and _passes.applies(d) and block == _passes.BLOCK:  # (B is compiled in)
        passes = _passes.pass_functions(d, dt)
    args = (x, *consts, diag, (not diag) and d >= _BLAS_MIN_D, use_inv, passes, lgroup,
            "logp" in want, "score" in want, "laplacian" in want, block)
    _numba_launch.launch(N * mt.shape[0], _serial_kernel, _fused_kernel, args, N, block,
                         (out_logp, out_score, out_lap))
    out = {"logp": out_logp, "score": out_score, "laplacian": out_lap}
    return {name: out[name] for name in want}
