r"""Scalar building blocks for the fused numba kernels: vectorisable ``exp``/``log``, a normal RNG.

``fast_exp``
    LLVM cannot vectorise a loop that calls libm's ``exp`` (numba has no SVML here), and a scalar
    ``exp`` costs ~6 ns, eight times numpy's SIMD ``exp``. ``fast_exp`` is branch-free, so a loop
    over lanes (samples) compiles to SIMD code: Cody–Waite reduction
    :math:`x = n \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, the degree-12 Taylor polynomial of
    :math:`e^r` (truncation :math:`(\ln 2/2)^{13}/13! < 2 \cdot 10^{-16}`) and :math:`2^n` built in
    the exponent bits. Relative error below 4e-16 on :math:`[-708, 709]`; arguments are clamped to
    that range (below -708 it returns :math:`e^{-708} \approx 3 \cdot 10^{-308}` instead of a
    smaller number -- the kernels only exponentiate log-weights relative to their maximum, so
    this is invisible). NaN propagates. ``fast_expm1`` (same reduction, cancellation-free) and
    ``fast_log`` (exponent split and an atanh series) are built the same way.
``standard_normal`` / ``uniform``
    Per-stream xoshiro256++ generators (Blackman & Vigna 2021) seeded by SplitMix64 from
    ``(seed, stream)``, and the 256-layer ziggurat of Marsaglia & Tsang (2000) with numpy's
    tables (``ki``, ``wi``, ``fi`` built here and checked against numpy's constants in the tests).
    A stream is identified by its index (a sample number), so the draws a sample sees do not
    depend on how samples are split across threads.

References
----------
Cody & Waite, "Software Manual for the Elementary Functions", 1980.
Marsaglia & Tsang, "The Ziggurat Method for Generating Random Variables", J. Stat. Softw. 2000.
Blackman & Vigna, "Scrambled Linear Pseudorandom Number Generators", ACM TOMS 2021.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from scorebench.analytic._numba_exp import f64_as_i64 as _f64_as_i64
from scorebench.analytic._numba_exp import i64_as_f64 as _i64_as_f64

__all__ = ["fast_exp", "fast_exp_expm1", "fast_expm1", "fast_log", "log_parts", "log_of_parts",
           "seed_stream", "xoshiro_step",
           "next_u64", "uniform", "standard_normal", "ziggurat_tables"]


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * _LN2_HI is exact for |n| < 2^11
_LN2_LO = 1.90821492927058770002e-10


_SHIFTER = 6755399441055744.0  # 1.5 * 2^52: (y + S) - S is y rounded to the nearest integer
_SHIFTER_BITS = 0x4338000000000000  # the IEEE bits of _SHIFTER
_C = tuple(1.0 / math.factorial(k) for k in range(13))
_FM = {"contract"}  # allow FMA contraction, nothing that could reorder the Cody-Waite reduction


@njit(cache=True, fastmath=_FM, inline="always")
def _exp_parts(x):
    """``(2^n, e^r - 1)`` with :math:`x = n \\ln 2 + r`, :math:`|r| \\le \\ln 2 / 2`."""
    # explicit selects: numba's builtin min/max defeat its reference-count pruning in callers
    x = -708.0 if x < -708.0 else x
    x = 709.0 if x > 709.0 else x
    # round to nearest by the 1.5 * 2^52 shifter: ys holds n in its low mantissa bits, so n and
    # float(n) come without a float <-> int64 conversion (no such SIMD instruction before
    # AVX-512DQ: LLVM would scalarise the loop's conversions and halve its speed on AVX2)
    ys = x * _LOG2E + _SHIFTER
    nf = ys - _SHIFTER
    n = _f64_as_i64(ys) - _SHIFTER_BITS
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    # e^r - 1 by Estrin's scheme: a short dependency chain so independent lanes overlap.
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p23 = _C[2] + _C[3] * r
    p45 = _C[4] + _C[5] * r
    p67 = _C[6] + _C[7] * r
    p89 = _C[8] + _C[9] * r
    p1011 = _C[10] + _C[11] * r
    p03 = r + r2 * p23
    p47 = p45 + r2 * p67
    p812 = (p89 + r2 * p1011) + r4 * _C[12]
    q = (p03 + r4 * p47) + r8 * p812
    return _i64_as_f64((n + 1023) << 52), q


@njit(cache=True, fastmath=_FM, inline="always")
def fast_exp(x):
    """exp(x) for float64 x, branch-free (see the module docstring for range and accuracy)."""
    two_n, q = _exp_parts(x)
    return two_n * q + two_n


@njit(cache=True, fastmath=_FM, inline="always")
def fast_exp_expm1(x):
    """``(exp(x), expm1(x))`` from one range reduction and polynomial: :func:`fast_exp` and
    :func:`fast_expm1` of the same ``x`` at the cost of one."""
    two_n, q = _exp_parts(x)
    return two_n * q + two_n, two_n * q + (two_n - 1.0)


@njit(cache=True, fastmath=_FM, inline="always")
def fast_expm1(x):
    """expm1(x) = exp(x) - 1, branch-free: :math:`2^n (e^r - 1) + (2^n - 1)`.

    Exact cancellation-free form: for :math:`|x| \\le \\ln 2/2` (n = 0) it is the polynomial
    :math:`e^r - 1` itself; otherwise :math:`|e^x - 1| > 0.29` and both terms are rounded once.
    Relative error below 1e-15 on [-708, 709].
    """
    two_n, q = _exp_parts(x)
    return two_n * q + (two_n - 1.0)


_SQRT2 = 1.4142135623730951
_MANT = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_TWO52_BITS = 0x4330000000000000  # the IEEE bits of 2^52


@njit(cache=True, fastmath=_FM, inline="always")
def log_parts(x):
    """``(m, e)`` with ``x = m 2^e``, ``m`` in [1, 2) and ``e`` an integer-valued float, for a
    positive normal float64 ``x``: from the IEEE bits, branch-free. A product of up to 8 such
    ``m`` stays in [1, 256), so :func:`log_of_parts` takes the log of a product of up to 8
    numbers of any normal size with one logarithm."""
    bits = _f64_as_i64(x)
    e = _i64_as_f64((bits >> 52) | _TWO52_BITS) - (4503599627370496.0 + 1023.0)
    return _i64_as_f64((bits & _MANT) | _ONE_BITS), e


@njit(cache=True, fastmath=_FM, inline="always")
def log_of_parts(m, e):
    """``log(m 2^e)`` for ``m`` >= 1 (a product of :func:`log_parts` mantissas) and an
    integer-valued ``e`` (``e ln2_hi`` is exact for ``|e| < 2^11``, else within 1e-12)."""
    return fast_log(m) + (e * _LN2_HI + e * _LN2_LO)


@njit(cache=True, fastmath=_FM, inline="always")
def fast_log(x):
    """log(x) for positive normal float64 x, branch-free; relative error below 4e-16.

    :math:`x = 2^e m` with :math:`m \\in [\\sqrt{1/2}, \\sqrt 2)`, then
    :math:`\\log m = 2\\,\\mathrm{atanh}\\, s = 2(s + s^3/3 + \\dots + s^{21}/21)`,
    :math:`s = (m-1)/(m+1)`, :math:`|s| \\le 0.172` (truncation below 1e-17).
    Zero, negative, subnormal and non-finite inputs are outside its domain.
    """
    bits = _f64_as_i64(x)
    # biased exponent as a float without an int64 -> float conversion: 2^52 + e_biased
    # has e_biased in its low mantissa bits
    eb = _i64_as_f64((bits >> 52) | _TWO52_BITS) - (4503599627370496.0 + 1023.0)
    m = _i64_as_f64((bits & _MANT) | _ONE_BITS)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    ef = eb + 1.0 if big else eb
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = 1.0 / 21.0
    p = p * s2 + 1.0 / 19.0
    p = p * s2 + 1.0 / 17.0
    p = p * s2 + 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    return ef * _LN2_HI + (ef * _LN2_LO + 2.0 * s * (1.0 + s2 * p))


# ---------------------------------------------------------------------------------------------
# random numbers
# ---------------------------------------------------------------------------------------------
_ZIG_R = 3.6541528853610088  # start of the tail of the 256-layer ziggurat for N(0, 1)
# Area of each layer: the base strip r f(r) plus the tail beyond r, f(x) = exp(-x^2 / 2).
_ZIG_V = (_ZIG_R * math.exp(-0.5 * _ZIG_R ** 2)
          + math.sqrt(0.5 * math.pi) * math.erfc(_ZIG_R / math.sqrt(2.0)))


def ziggurat_tables():
    """The 256-layer ziggurat tables ``(ki, wi, fi)`` of numpy's ``standard_normal`` (52-bit form).

    Layer ``i`` has right edge ``x_i``; ``wi = x_i / 2^52``, ``ki = floor(2^52 x_{i-1} / x_i)``
    (the fast-accept threshold) and ``fi = exp(-x_i^2 / 2)``, following Marsaglia & Tsang's
    recurrence :math:`x_{i-1} = \\sqrt{-2 \\log(v / x_i + f(x_i))}`. With the layer area ``v``
    computed from ``r`` in double precision they agree with numpy's tables to ~1e-14 relative.
    """
    m = 2.0 ** 52
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = _ZIG_R
    q = _ZIG_V / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64(int((dn / q) * m))
    ki[1] = np.uint64(0)
    wi[0] = q / m
    wi[255] = dn / m
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64(int((dn / tn) * m))
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


_KI, _WI, _FI = ziggurat_tables()
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_U8, _U11, _U17, _U19, _U23, _U27, _U30, _U31, _U41, _U45, _U64_1 = (
    np.uint64(8), np.uint64(11), np.uint64(17), np.uint64(19), np.uint64(23), np.uint64(27),
    np.uint64(30), np.uint64(31), np.uint64(41), np.uint64(45), np.uint64(1),
)
_U0xFF = np.uint64(0xFF)


@njit(cache=True)
def _splitmix64(z):
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@njit(cache=True)
def seed_stream(seed, stream):
    """State (a 4-tuple of uint64) of stream ``stream`` of ``seed``, by SplitMix64 expansion.

    The generator state is carried as a tuple, never an array, so it lives in registers and
    costs no reference counting in the hot loops.
    """
    z = np.uint64(seed) * _GOLDEN + _splitmix64(np.uint64(stream) + _GOLDEN)
    z1 = z + _GOLDEN
    z2 = z1 + _GOLDEN
    z3 = z2 + _GOLDEN
    z4 = z3 + _GOLDEN
    return (_splitmix64(z1), _splitmix64(z2), _splitmix64(z3), _splitmix64(z4))


@njit(cache=True, inline="always")
def xoshiro_step(s0, s1, s2, s3):
    """``(bits, s0, s1, s2, s3)``: one xoshiro256++ step on the four state words.

    Shifts, xors and adds only (rotations written out), so a loop of independent streams over
    lanes vectorises (:mod:`._lane_normals_numba`).
    """
    x = s0 + s3
    result = ((x << _U23) | (x >> _U41)) + s0
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U45) | (s3 >> _U19)
    return result, s0, s1, s2, s3


@njit(cache=True)
def next_u64(st):
    """``(bits, new_state)``: the next 64 bits of the xoshiro256++ generator in state ``st``."""
    result, s0, s1, s2, s3 = xoshiro_step(st[0], st[1], st[2], st[3])
    return result, (s0, s1, s2, s3)


@njit(cache=True)
def uniform(st):
    """``(u, new_state)`` with u uniform on [0, 1) (53 random bits)."""
    r, st = next_u64(st)
    return np.float64(r >> _U11) * (1.0 / 9007199254740992.0), st


@njit(cache=True)
def _normal_slow(st, idx, rabs, x):
    """Ziggurat rejection branch: the tail (layer 0) or the wedge of layer ``idx``."""
    while True:
        if idx == 0:
            while True:
                u1, st = uniform(st)
                u2, st = uniform(st)
                xx = -(1.0 / _ZIG_R) * math.log1p(-u1)
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    x = _ZIG_R + xx
                    return (-x if (rabs >> _U8) & _U64_1 else x), st
        u, st = uniform(st)
        if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < math.exp(-0.5 * x * x):
            return x, st
        r, st = next_u64(st)
        idx = np.int64(r & _U0xFF)
        r >>= _U8
        rabs = (r >> _U64_1) & _MASK52
        x = np.float64(rabs) * _WI[idx]
        if r & _U64_1:
            x = -x
        if rabs < _KI[idx]:
            return x, st


@njit(cache=True)
def standard_normal(st):
    """``(z, new_state)``: a standard normal draw (ziggurat; ~99.3 % take the fast path)."""
    r, st = next_u64(st)
    idx = np.int64(r & _U0xFF)
    r >>= _U8
    rabs = (r >> _U64_1) & _MASK52
    x = np.float64(rabs) * _WI[idx]
    if r & _U64_1:
        x = -x
    if rabs < _KI[idx]:
        return x, st
    return _normal_slow(st, idx, rabs, x)
