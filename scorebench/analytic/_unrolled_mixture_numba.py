r"""Register-resident mixture log-density, score and Laplacian for small d, generated per d.

The generic fused kernel (:mod:`._mixture_numba`) runs about fifteen vectorised passes over
(d, B) and (B,) arrays per component, each bound by loads and stores; for d = 2 that is ~6 ns
per (point, component) pair on one Zen 3 core, several times the exponential it needs. For
small d this module writes the same maths as straight-line code: one loop over the points of a
block whose body keeps the point, a chunk of components' log-weights and gradients and the
running sums in registers; LLVM vectorises the loop over points (4 float64 per AVX2 register).
The code depends on d, the dtype and the chunk only: components come in chunks of
:func:`chunk_size` through a run-time loop, so one compiled function serves every K from 4 (or
8) up; fewer components get a chunk of their own size.

Maths, at a common time (``a``, ``s^2``), with :math:`\lambda_k = a^2\Lambda_k + s^2`,
:math:`z_k = U_k^\top x - a U_k^\top \mu_k` and :math:`y'_k = z_k / \sqrt{2\lambda_k}`:

.. math::

    \ell_k = \kappa_k - |y'_k|^2, \quad
    g_k = -\sqrt2\, U_k \mathrm{diag}(\lambda_k^{-1/2})\, y'_k = -C_k^{-1}(x - a\mu_k),

with :math:`\kappa_k = \log w_k - \tfrac12\log\det C_k - \tfrac d2\log 2\pi`; then
:math:`\log p = m + \log S` with :math:`m = \max_k \ell_k`, :math:`S = \sum_k e^{\ell_k - m}`, the
score :math:`s = \sum_k \pi_k g_k` and the Laplacian as a weighted variance (no cancellation
between :math:`\sum \pi_k |g_k|^2` and :math:`|s|^2` far from the data):

.. math::

    \Delta \log p = \sum_k \pi_k \big(|g_k - s|^2 - \mathrm{tr}\, C_k^{-1}\big).

**Two forms.** The *eigenbasis* form above (d <= :data:`MAX_D`) serves any covariances,
singular data at small t included. Where every :math:`C_k(t)` has condition number <= 100 (the
generic kernel's rule for its one-product path), the *inverse* form (d <= :data:`MAX_D_INVERSE`)
takes one product per pair with :math:`W_k = \tfrac12 C_k^{-1}` (formed once per time):

.. math::

    \delta_k = x - a\mu_k, \quad w_k = W_k \delta_k = -g_k/2, \quad
    \ell_k = \kappa_k - \delta_k \cdot w_k,

and runs the rest in units of :math:`w` (score :math:`-2\bar w`, Laplacian :math:`4 M_w / S`:
exact powers of two). Per pair d subtractions and d^2 + d fused multiply-adds before the
exponential, against 2 d^2 + 3 d (projection, scaling) and d^2 (gradient) in the eigenbasis
form. Its rounding: the explicit inverse carries ~eps / lambda_min per entry, so the gradient
is within ~cond(C_k) eps of its scale (<= 100 eps), as in the generic kernel. ns per pair, 2
threads, N = 50,000, AMD Zen 4, eigenbasis -> inverse: d = 2, K = 8 0.93 -> 0.81 (float32
0.58 -> 0.40); d = 3, K = 8 1.52 -> 0.99 (chunks of 8); d = 4, K = 64 1.95 -> 1.10 (chunks of 8,
see :func:`chunk_size`). Against the generic kernel (its one-product path), N = 20,000, K = 8:
d = 5 4.8 -> 1.8, d = 6 4.8 -> 2.2, d = 8 5.0 -> 3.3; d = 12 7.3 -> 6.5 and d = 16 11.2 ->
12.7, where BLAS's product wins: hence d <= 8.

Within a chunk, two passes (the chunk's maximum, then the exponentials, the mean and the sum of
squared deviations); chunks are merged with Chan, Golub and LeVeque's pairwise update (one
exponential and one division per chunk): with weight sums :math:`S_a, S_b` rescaled to a common
maximum, means :math:`\bar g_a, \bar g_b` and sums :math:`M_a, M_b`,

.. math::

    \bar g = (S_a \bar g_a + S_b \bar g_b)/S, \quad
    M = M_a + M_b + |\bar g_b - \bar g_a|^2 S_a S_b / S, \quad S = S_a + S_b.

Rounding. The projection :math:`z_k` is computed in the numpy reference's order and without
FMA contraction (numba's fastmath flags reach inlined callees, so the generated function has
none; the exponential it calls keeps its own): where :math:`\lambda_k` is tiny (singular data at
t = 1e-5) :math:`z_k` carries ~1e-9 relative rounding from cancellation in *any* evaluation, and
only the same order of operations reproduces the reference's numbers to the 1e-10 that
``tests/analytic/test_backends.py`` asks for (contracted, or scaled before subtracting, it
moved by up to 1e-9, measured). Everything after the projection -- the log-weights'
:math:`\kappa_k - \sum_r y'^2_{kr}`, the gradients, the chunk's mean and deviations, the merge
-- is written with explicit fused multiply-adds (:func:`._numba_intrinsics.fma`, LLVM's
``llvm.fma``), each rounding once where the unfused form rounds twice: 2-10 % faster for
d = 1..4, both dtypes (one core, measured), and the same numbers to the tests' 1e-12.

Operation count per pair, eigenbasis form: 2d^2 (projection) + 2d^2 (gradient) + ~4d + 4
flops, 1 exponential (~35 flops), 2d for the mean and 3d + 2 for the variance; inverse form:
2d^2 + 3d + 1 (deviation, product, log-weight) in place of the first 4d^2 + 4d + 4; per chunk
and point 1 exponential, 2 divisions and ~8d flops. (The eigenbasis-form figures below predate
the inverse form.) Measured by ``benchmarks/bench_oracle_generated.py`` on one Zen 3
core, N = 20000, score and Laplacian, ns per pair, generic -> generated (K = 8; K = 64):
d = 1: 5.7 -> 3.4; 4.1 -> 3.2. d = 2: 7.9 -> 4.2; 6.9 -> 3.8. d = 3: 8.9 -> 5.7; 7.3 -> 5.2.
d = 4: 13.9 -> 10.7; 12.3 -> 7.8 (1.3-1.9x). Beyond d = 4 the chunk's registers spill (d = 8
ran at half the generic kernel's speed), hence :data:`MAX_D`.

**float32.** Each d also has a float32 kernel (float32 points; every constant, lane and sum in
float32, the exponential :func:`._numba_exp.fast_exp_f32`, constants computed in float64
and rounded once): twice the lanes per vector and a 7-term exponential instead of 14. One
Sapphire-Rapids-class core, 512-bit vectors, ns per pair, float64 -> float32: d = 2, K = 8:
2.5 -> 1.5; K = 64: 2.1 -> 1.0; d = 4, K = 8: 4.0 -> 2.4. Error against the float64 reference,
relative to the terms' scale: ~1e-6 near the data (the log-weights carry ~eps |l_k|, and each
gradient ~eps (|x| + a |mu_k|) / lambda_min, which is relative to the inputs rather than to
the gradient); far from the data (|l_k| ~ 1e4) the responsibilities are only defined to
~1e-3 in float32.

The generated functions are numba ``cfunc`` s of one C signature (:func:`block_signature`),
called by address from the drivers of :mod:`._unrolled_mixture_drivers`, which are compiled
and cached once for every d; each generated function compiles once per (d, dtype) (1-5 s) and
is cached on disk through :mod:`._generated_modules`.

References
----------
T. F. Chan, G. H. Golub, R. J. LeVeque, "Algorithms for computing the sample variance: analysis
and recommendations", The American Statistician 37 (1983).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from scorebench import _vector_width

from ._generated_modules import import_generated
from ._numba_intrinsics import array_ptr, fma  # noqa: F401 (fma: for the generated source)

__all__ = ["applies", "block_signature", "block_source", "block_function", "constants",
           "inverse_constants", "is_loaded", "n_params", "chunk_size", "BLOCK", "MAX_D",
           "MAX_D_INVERSE"]

MAX_D = 4  # the chunk's code grows as d^2; beyond this its registers spill (measured)
# the inverse form keeps fewer values per component: 1.6-2.8x faster than the generic kernel
# for d = 5..8 (K = 8, one product with C_k^-1 there too), 12 % at d = 12 and 13 % slower at
# d = 16, where the generic kernel's BLAS product wins (AMD Zen 4, 2 threads, measured); 8
# keeps its compile time to ~4 s per dtype
MAX_D_INVERSE = 8
BLOCK = 128  # points per call of a generated kernel (a compile-time constant in its loops)
_LOG_2PI = float(np.log(2.0 * np.pi))


def block_signature(dtype=np.float64):
    r"""C signature ``void(X, P, ST, M, S, SC, LAP, nk)``: pointers to ``dtype`` (float64 or
    float32) and an int.

    ``X`` the block's points and ``SC`` their scores, (BLOCK, d) row-major (the rows of the
    caller's arrays themselves: the kernel transposes in vectorised loops); ``P``
    (nk chunk_size(d), n_params(d)) the per-component constants of :func:`constants`; ``ST``
    (2d + 3, BLOCK) scratch for the running sums and the transposed points; ``M``, ``S``,
    ``LAP`` (BLOCK,): the maximum log-weight and the weight sum (so :math:`\log p = M + \log
    S`), and the Laplacian; ``nk`` the number of chunks.
    """
    p = types.CPointer(types.float32 if _is_f32(dtype) else types.float64)
    return types.void(p, p, p, p, p, p, p, types.intp)


def _is_f32(dtype) -> bool:
    """Whether ``dtype`` is float32 (anything else that reaches here is float64)."""
    return np.dtype(dtype) == np.float32


def chunk_size(d: int, K: int | None = None, inverse: bool = False) -> int:
    """Components per two-pass chunk of the kernel for dimension d (a compile-time constant),
    for a mixture of K components (None: the chunk of large K), in the eigenbasis or the
    ``inverse`` form.

    The chunk's log-weights and gradients live in vector registers. With 16 of them (AVX2)
    4 components beat 1, 2 and 8 for d = 2..4 (one Zen 3 core, measured). Compiled for 512-bit
    vectors (:mod:`scorebench._vector_width`: AVX-512, 32 registers) 8 components run
    10-20 % faster than 4 for d <= 3 and K = 64, 0-12 % for K = 8, and 15-25 % slower for d = 4
    (one Sapphire-Rapids-class core, float64 and float32, measured). A mixture of fewer
    components gets the smallest power of two that holds them (padding components cost a full
    component each: K = 1 in chunks of 4 took 4x the time it needs).

    The inverse form keeps fewer values per component (no eigenbasis projection): at 512 bits
    8 components run 10-16 % faster than 4 for d = 4 too (AMD Zen 4, N = 50,000, both dtypes,
    measured); for d = 5..8 they run 6-10 % faster but take twice as long to compile (d = 8:
    9.6 s against 3.7 s), so those keep 4.
    """
    small = d <= 3 or (inverse and d <= 4)
    full = 8 if small and _vector_width.STATE.get("bits") == 512 else 4
    if K is None:
        return full
    chunk = 1
    while chunk < min(K, full):
        chunk *= 2
    return chunk


def applies(d: int, K: int, inverse: bool = False) -> bool:
    """Whether the generated kernel serves a mixture of K components in d dimensions, in the
    eigenbasis or the ``inverse`` form."""
    return 1 <= d <= (MAX_D_INVERSE if inverse else MAX_D) and K >= 1


def n_params(d: int, inverse: bool = False) -> int:
    """Constants per component: U^T, V (d^2 each), n, h (d each), kappa and tr; with
    ``inverse``, C^-1 / 2 (d^2), a mu (d), kappa and tr / 4."""
    return (d * d + d + 2) if inverse else (2 * d * d + 2 * d + 2)


def constants(U, lam, mt, logw, a, s2, dtype=np.float64, chunk=None):
    r"""The per-component constants at a common time, padded to a multiple of ``chunk``
    (default :func:`chunk_size` for the mixture's K).

    Row k holds :math:`U_k^\top` and :math:`V_k = -\sqrt2\, \mathrm{diag}(\lambda_k^{-1/2})
    U_k^\top` (row-major), :math:`n_k =
    -a U_k^\top \mu_k`, :math:`h_k = (2\lambda_k)^{-1/2}`, :math:`\kappa_k` and
    :math:`\mathrm{tr}\,C_k^{-1}`, so that :math:`y'_k = h_k \odot (U_k^\top x + n_k) =
    y_k/\sqrt2`, :math:`\ell_k = \kappa_k - |y'_k|^2` and :math:`g_k = V_k^\top y'_k`. The
    projection :math:`z = U_k^\top x - a U_k^\top\mu_k` is rounded as in the numpy reference
    and the generic kernel; folding the scale into the matrix first or subtracting first
    (:math:`x - a\mu_k`, then projecting) moves the result away from theirs by up to
    ~1e-9 relative where :math:`\lambda_k` is tiny (singular data at t = 1e-5, measured).
    Padding rows have :math:`\kappa = -\infty` and zeros elsewhere: their weight is exactly 0.
    ``mt`` holds the projected means :math:`U_k^\top \mu_k` (as the reference computes them).
    Computed in float64 and rounded once to ``dtype`` (float32 for the float32 kernel).
    """
    K, d = mt.shape
    ch = chunk_size(d, K) if chunk is None else chunk
    P = np.zeros((-(-K // ch) * ch, n_params(d)))
    _fill_constants(U, lam, mt, logw, float(a), float(s2), P)
    return P.astype(np.float32) if _is_f32(dtype) else P


def inverse_constants(U, lam, means, logw, a, s2, dtype=np.float64, chunk=None):
    r"""The per-component constants of the inverse form (:func:`block_source` with
    ``inverse=True``) at a common time, padded to a multiple of ``chunk`` as :func:`constants`.

    Row k holds :math:`W_k = \tfrac12 C_k^{-1}` (row-major; :math:`C_k^{-1} = U_k
    \mathrm{diag}(1/\lambda_k) U_k^\top`, exactly symmetric as formed), :math:`a\mu_k`,
    :math:`\kappa_k` and :math:`\tfrac14 \mathrm{tr}\, C_k^{-1}`, so that with
    :math:`\delta_k = x - a\mu_k` and :math:`w_k = W_k \delta_k = -g_k / 2`:
    :math:`\ell_k = \kappa_k - \delta_k \cdot w_k`. The factors 1/2 and 1/4 are exact
    (powers of two): the kernel's sums in units of :math:`w` scale back exactly. Computed in
    float64 and rounded once to ``dtype``; padding rows as in :func:`constants`.
    """
    K, d = means.shape
    ch = chunk_size(d, K, True) if chunk is None else chunk
    P = np.zeros((-(-K // ch) * ch, n_params(d, True)))
    _fill_inverse_constants(U, lam, means, logw, float(a), float(s2), P)
    return P.astype(np.float32) if _is_f32(dtype) else P


@njit(error_model="numpy", cache=True)
def _fill_inverse_constants(U, lam, means, logw, a, s2, P):
    """Rows of :func:`inverse_constants`."""
    K, d = means.shape
    for k in range(K):
        logdet, tr = 0.0, 0.0
        for j in range(d):
            var = a * a * lam[k, j] + s2
            logdet += math.log(var)
            tr += 1.0 / var
        for r in range(d):
            for c in range(d):
                acc = 0.0
                for j in range(d):
                    acc += U[k, r, j] * U[k, c, j] / (a * a * lam[k, j] + s2)
                P[k, r * d + c] = 0.5 * acc
            P[k, d * d + r] = a * means[k, r]
        P[k, d * d + d] = logw[k] - 0.5 * logdet - 0.5 * d * _LOG_2PI
        P[k, d * d + d + 1] = 0.25 * tr
    for k in range(K, P.shape[0]):
        P[k, d * d + d] = -np.inf


@njit(error_model="numpy", cache=True)
def _fill_constants(U, lam, mt, logw, a, s2, P):
    """Rows of :func:`constants` (a compiled loop: ~2 us against ~30 us of numpy calls)."""
    K, d = mt.shape
    r2 = math.sqrt(2.0)
    for k in range(K):
        logdet, tr = 0.0, 0.0
        for r in range(d):
            var = a * a * lam[k, r] + s2
            isd = 1.0 / math.sqrt(var)
            logdet += math.log(var)
            tr += 1.0 / var
            for c in range(d):
                P[k, r * d + c] = U[k, c, r]
                P[k, d * d + r * d + c] = -r2 * isd * U[k, c, r]  # V_k
            P[k, 2 * d * d + r] = -(a * mt[k, r])
            P[k, 2 * d * d + d + r] = isd / r2
        P[k, 2 * d * d + 2 * d] = logw[k] - 0.5 * logdet - 0.5 * d * _LOG_2PI
        P[k, 2 * d * d + 2 * d + 1] = tr
    for k in range(K, P.shape[0]):
        P[k, 2 * d * d + 2 * d] = -np.inf


def block_source(d: int, dtype=np.float64, chunk: int | None = None,
                 inverse: bool = False) -> str:
    """Python source of the generated kernel for dimension d, ``dtype`` (float64 or float32:
    every value of the float32 kernel is a float32; see the module docstring), ``chunk``
    components per chunk (default :func:`chunk_size` of large K), in the eigenbasis form
    (constants of :func:`constants`) or the ``inverse`` form (:func:`inverse_constants`)."""
    from ._unrolled_mixture_source import generate  # (it imports this module)

    return generate(d, dtype, chunk, inverse)


_FUNCTIONS: dict = {}


def is_loaded(d: int, dtype=np.float64, K: int | None = None,
              inverse: bool | None = None) -> bool:
    """Whether the generated kernel for dimension d, ``dtype``, a mixture of K components
    (None: large K) and the form (``inverse`` or eigenbasis; None: either) is compiled (or
    loaded) in this process."""
    forms = (False, True) if inverse is None else (bool(inverse),)
    return any((int(d), _is_f32(dtype), chunk_size(int(d), K, form), form) in _FUNCTIONS
               for form in forms)


def block_function(d: int, dtype=np.float64, K: int | None = None, inverse: bool = False):
    """The generated ``cfunc`` for dimension d, ``dtype``, a mixture of K components (its
    chunk is :func:`chunk_size`; None: large K) and the form (``inverse`` or eigenbasis),
    compiled (or loaded from disk) once."""
    if not applies(int(d), 1, inverse):
        raise ValueError(f"d: the {'inverse' if inverse else 'eigenbasis'} form serves d <= "
                         f"{MAX_D_INVERSE if inverse else MAX_D}, got {d!r}")
    chunk = chunk_size(int(d), K, inverse)
    key = (int(d), _is_f32(dtype), chunk, bool(inverse))
    fn = _FUNCTIONS.get(key)
    if fn is None:
        name = (("sb_mixture_f32_" if key[1] else "sb_mixture_") + ("inv_" if inverse else "")
                + f"d{key[0]}_c{chunk}")
        fn = _FUNCTIONS[key] = import_generated(
            name, block_source(key[0], dtype, chunk, key[3])).block
    return fn
