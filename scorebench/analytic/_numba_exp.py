r"""Vectorisable float64 and float32 exponentials for numba loops (non-positive arguments).

numba lowers ``math.exp`` to a scalar libm call, which stops LLVM from vectorising the loop
around it; on the 2-core reference machine that costs ~6 ns per exponential against ~0.9 ns
for numpy's SIMD ``np.exp``. The log-sum-exp of the mixture kernels only ever needs
:math:`e^{x}` for :math:`x \le 0`, so this module computes it in plain arithmetic that LLVM
turns into SIMD code:

.. math::

    n = \mathrm{round}(x / \ln 2), \quad r = (x - n\,\ln2_{hi}) - n\,\ln2_{lo} \in
    [-\tfrac12\ln 2, \tfrac12 \ln 2], \quad e^{x} = 2^{n}\, \sum_{j=0}^{13} r^j / j!,

with the Cody-Waite split of :math:`\ln 2` (fdlibm's constants, so :math:`n \ln2_{hi}` is exact),
round-to-nearest by the :math:`1.5 \cdot 2^{52}` shifter (exact: no reassociation), the degree-13
Taylor polynomial in Horner form (truncation :math:`0.347^{14}/14! < 5 \cdot 10^{-18}`), and
:math:`2^n` built from its IEEE bits: the shifted sum :math:`x/\ln 2 + 1.5 \cdot 2^{52}` holds
:math:`n` in its low mantissa bits, so neither :math:`n` nor :math:`2^n` needs a float-to-int64
conversion (which has no SIMD instruction before AVX-512DQ: on an AVX2 machine LLVM scalarises
it and the loop runs at half speed). Arguments below -708 return 0 (the true value is below
:math:`3 \cdot 10^{-308}` and only ever multiplies a weight relative to the largest one, which
is 1). Measured error against ``np.exp`` on 8 million points in [-50, 0]: at most 1 ulp.

Cost per element: ~35 flops (the 13 Horner steps FMA-contracted). This one function is
compiled with ``fastmath={"contract"}``: contraction only (no reassociation, no finite-math
or sign-of-zero assumptions), which rounds each Horner step once instead of twice and makes
the loop ~1.8x faster (1.1-1.2 ns per element on one core with 256-bit vectors, AVX2 or
AVX-512, against ~6 ns for ``math.exp``; numpy's ``np.exp`` took 0.9 ns with AVX-512 and 5 ns
on an AVX2-only machine). With 512-bit vectors (:mod:`scorebench._vector_width`, on a
Sapphire-Rapids-class core) the same loop takes ~0.5 ns per element.

**float32.** ``fast_exp_f32`` is the float32 counterpart of :func:`exp_le0`, used by the float32
mixture kernels and by the float32 fused solvers (:mod:`scorebench.solvers._numba_precision`
re-exports it): Cody–Waite reduction :math:`x = n\ln 2 + r` with Cephes' two-part
:math:`\ln 2` (0.693359375 is exact in 9 bits, so :math:`n \ln2_{hi}` is exact for
:math:`|n| \le 128`), round-to-nearest by the :math:`1.5 \cdot 2^{23}` shifter, whose low
mantissa bits then hold :math:`n` (no float-to-int conversion), Cephes' degree-7 polynomial for
:math:`e^r` on :math:`|r| \le \ln 2/2`, and :math:`2^n` from its IEEE bits. Arguments above 88
are clamped to 88; arguments below -80 (``-inf`` included) give exactly 0 (the kernels only
exponentiate log-weights relative to their maximum, where a weight below
:math:`e^{-80} \approx 1.8 \cdot 10^{-35}` is far below float32's resolution). Not
:math:`e^{-87}`: a weight that small times a mean or a coordinate is subnormal, and every
arithmetic operation on a subnormal costs ~100 cycles on x86 (the float32 likelihood kernel ran
slower than float64 until weights were flushed here). NaN propagates. Measured relative error
against float64 ``exp`` on [-80, 0]: below 1e-7 (1 ulp). A vector register holds twice as many
float32 lanes as float64 ones, and the polynomial has 7 terms against 14.

References
----------
S. L. Moshier, Cephes Mathematical Library, ``expf.c``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from scorebench._vector_width import align_numba_arrays

from ._numba_dtype import by_precision

align_numba_arrays()  # 64-byte scratch arrays with 512-bit vectors (before any kernel compiles)

__all__ = ["exp_le0", "exp_nonpositive", "fast_exp_f32", "exp_expm1_f32", "lane_exp_le0",
           "bitcast", "f64_as_i64",
           "i64_as_f64"]

_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: x + S - S rounds x to the nearest integer
_SHIFTER_BITS = 0x4338000000000000  # its IEEE bits: (bits of x + S) - _SHIFTER_BITS = round(x)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_X_MIN = -708.0


def bitcast(src, dst, doc: str):
    """An intrinsic reinterpreting the bits of a ``src`` value as a ``dst`` (LLVM bitcast)."""
    def impl(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    impl.__doc__ = doc
    return intrinsic(impl)


f64_as_i64 = bitcast(types.float64, types.int64, "The bits of a float64 as an int64.")
i64_as_f64 = bitcast(types.int64, types.float64, "The bits of an int64 as a float64.")

_f32_as_i32 = bitcast(types.float32, types.int32, "The bits of a float32 as an int32.")
_i32_as_f32 = bitcast(types.int32, types.float32, "The bits of an int32 as a float32.")

_F = np.float32
_SHIFTER32 = _F(12582912.0)  # 1.5 * 2^23
_SHIFTER_BITS32 = np.int32(0x4B400000)
_LOG2E32 = _F(1.4426950408889634)
_LN2_HI32 = _F(0.693359375)
_LN2_LO32 = _F(-2.12194440e-4)
_X_LO, _X_HI = _F(-80.0), _F(88.0)
_P = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                           1.6666665459e-1, 5.0000001201e-1))
_ONE, _ZERO = _F(1.0), _F(0.0)
_BIAS = np.int32(127)
_MANT_BITS = np.int32(23)


@njit(cache=True, fastmath={"contract"}, inline="always")
def _exp_parts_f32(x):
    r"""``(r, P(r), 2^n)`` for a float32 ``x`` in [-80, 88]: :math:`x = n \ln 2 + r` (Cody-Waite
    with Cephes' two-part :math:`\ln 2`, round to nearest by the shifter) and Cephes'
    polynomial, :math:`e^r = 1 + r + r^2 P(r)`."""
    ys = x * _LOG2E32 + _SHIFTER32
    nf = ys - _SHIFTER32
    n = _f32_as_i32(ys) - _SHIFTER_BITS32
    r = (x - nf * _LN2_HI32) - nf * _LN2_LO32
    p = _P[0]
    p = p * r + _P[1]
    p = p * r + _P[2]
    p = p * r + _P[3]
    p = p * r + _P[4]
    p = p * r + _P[5]
    return r, p, _i32_as_f32((n + _BIAS) << _MANT_BITS)


@njit(cache=True, fastmath={"contract"}, inline="always")
def fast_exp_f32(x):
    """exp(x) for float32 x in float32, branch-free; 0 below -80 (see the module docstring)."""
    flush = x < _X_LO
    x = _X_LO if flush else x
    x = _X_HI if x > _X_HI else x  # explicit select (see _numba_math._exp_parts)
    r, p, two_n = _exp_parts_f32(x)
    y = p * (r * r) + r + _ONE
    y = y * two_n
    return _ZERO if flush else y


@njit(cache=True, fastmath={"contract"}, inline="always")
def exp_expm1_f32(x):
    r"""``(exp(x), expm1(x))`` for a float32 ``x`` in float32, from one reduction and
    polynomial, each accurate to its own size (~1 ulp): :math:`q = e^r - 1 = r + r^2 P(r)` with
    Cephes' polynomial of :func:`fast_exp_f32`, then :math:`2^n q + 2^n` and
    :math:`2^n q + (2^n - 1)` (for n = 0 the polynomial itself: no cancellation near 0).
    Arguments are clamped to [-80, 88] (no flush to 0 here). A caller that rounds a float64
    argument to float32 first adds :math:`|x| 2^{-24}` relative error to both (4e-7 at
    x = 6, 1e-6 at x = 18)."""
    x = _X_LO if x < _X_LO else x
    x = _X_HI if x > _X_HI else x
    r, p, two_n = _exp_parts_f32(x)
    q = p * (r * r) + r
    return two_n * q + two_n, two_n * q + (two_n - _ONE)


@njit(fastmath={"contract"}, error_model="numpy", cache=True, inline="always")
def exp_le0(xv):
    """``exp(xv)`` for one ``xv <= 0`` (``-inf`` allowed): the scalar body of
    :func:`exp_nonpositive`, for straight-line code that LLVM vectorises around it."""
    xc = xv if xv > _X_MIN else _X_MIN
    ys = xc * _LOG2E + _SHIFTER
    nf = ys - _SHIFTER
    r = (xc - nf * _LN2_HI) - nf * _LN2_LO
    p = 1.6059043836821613e-10  # 1/13!
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2^n from the low mantissa bits of ys (no float -> int64 conversion: it has no SIMD
    # instruction before AVX-512DQ, and LLVM would scalarise the loop around it)
    scale = i64_as_f64((f64_as_i64(ys) - _SHIFTER_BITS + 1023) << 52)
    return p * scale if xv >= _X_MIN else 0.0


lane_exp_le0 = by_precision(exp_le0, fast_exp_f32, """``exp(x)`` for ``x <= 0`` in the
precision of ``x``: :func:`exp_le0` for float64, :func:`fast_exp_f32` for float32.""")


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def exp_nonpositive(xin, out, n):
    """``out[:n] = exp(xin[:n])`` for ``xin <= 0`` (``-inf`` allowed), vectorised, in the
    precision of ``xin`` (float64: :func:`exp_le0`; float32: :func:`fast_exp_f32`).

    Parameters
    ----------
    xin : ndarray, shape (>= n,)
        Arguments, all <= 0 (positive arguments are not supported: no overflow handling).
    out : ndarray, shape (>= n,)
        Receives the exponentials.
    n : int
        Number of elements.
    """
    for i in range(n):
        out[i] = lane_exp_le0(xin[i])
