r"""The float32 exponential for numba loops: branch-free, so loops around it vectorise.

``fast_exp_f32`` is the float32 counterpart of :func:`._numba_exp.exp_le0`, used by the float32
mixture kernels here and by the float32 fused solvers (:mod:`scorebench.solvers._numba_precision`
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

from ._numba_exp import bitcast

__all__ = ["fast_exp_f32"]

_f32_as_i32 = bitcast(types.float32, types.int32, "The bits of a float32 as an int32.")
_i32_as_f32 = bitcast(types.int32, types.float32, "The bits of an int32 as a float32.")

_F = np.float32
_SHIFTER = _F(12582912.0)  # 1.5 * 2^23
_SHIFTER_BITS = np.int32(0x4B400000)
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
_X_LO, _X_HI = _F(-80.0), _F(88.0)
_P = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                           1.6666665459e-1, 5.0000001201e-1))
_ONE, _ZERO = _F(1.0), _F(0.0)
_BIAS = np.int32(127)
_MANT_BITS = np.int32(23)


@njit(cache=True, fastmath={"contract"}, inline="always")
def fast_exp_f32(x):
    """exp(x) for float32 x in float32, branch-free; 0 below -80 (see the module docstring)."""
    flush = x < _X_LO
    x = _X_LO if flush else x
    x = _X_HI if x > _X_HI else x  # explicit select (see _numba_math._exp_parts)
    ys = x * _LOG2E + _SHIFTER
    nf = ys - _SHIFTER
    n = _f32_as_i32(ys) - _SHIFTER_BITS
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    p = _P[0]
    p = p * r + _P[1]
    p = p * r + _P[2]
    p = p * r + _P[3]
    p = p * r + _P[4]
    p = p * r + _P[5]
    y = p * (r * r) + r + _ONE
    y = y * _i32_as_f32((n + _BIAS) << _MANT_BITS)
    return _ZERO if flush else y
