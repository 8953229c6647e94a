r"""Standard normals for a block of lanes at once: SIMD xoshiro256++ and Box–Muller.

The scalar ziggurat of :mod:`._numba_math` branches per draw, so a loop of draws over lanes
stays scalar (~6 ns a draw on one core). Here every lane keeps its own xoshiro256++ state in a
column of ``rs`` (4, B) and one pass over the lanes draws a *pair* of normals per lane with
branch-free arithmetic that LLVM vectorises (64-bit shifts, xors and adds are AVX2 operations):

.. math::

    z_1 = \rho\cos\theta,\quad z_2 = \rho\sin\theta,\qquad
    \rho = \sqrt{-2\log u},\quad u = 1 - k\,2^{-52}\in(0, 1],\quad
    \theta = q\,\tfrac{\pi}{2} + \tfrac{\pi}{4} + \varphi,

with :math:`k` the top 52 bits of one draw, and from a second draw the quadrant :math:`q` (2
bits) and :math:`\varphi = \tfrac{\pi}{2}(f - \tfrac12)`, :math:`f` uniform on [0, 1) (52
bits), so :math:`\theta` is uniform on :math:`[0, 2\pi)`. With :math:`|\varphi| \le \pi/4` the
Taylor polynomials of :math:`\sin\varphi` (to degree 15) and :math:`\cos\varphi` (degree 16)
are exact to below 5e-17; :math:`(\cos, \sin)` of :math:`\pi/4 + \varphi` follow by one
rotation, and the quadrant by selects. :math:`\log` is the branch-free ``fast_log``.
Box–Muller is exact in exact arithmetic (Box & Muller 1958): :math:`z_1, z_2` are independent
N(0, 1); here :math:`|z| \le \sqrt{2 \cdot 52 \ln 2} = 8.49` (the law beyond has probability
2e-17). Integers become floats through the mantissa of a number in [1, 2), not a conversion
instruction (AVX2 has none for 64-bit integers).

Cost per pair: two generator steps and ~60 flops in float64, 4 lanes per AVX2 instruction.

References
----------
G. E. P. Box and M. E. Muller, "A Note on the Generation of Random Normal Deviates", Ann. Math.
Statist. 29 (1958).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from scorebench.analytic._numba_exp import i64_as_f64 as _i64_as_f64

from ._numba_math import fast_log, xoshiro_step

__all__ = ["lanes_normal_pairs"]

_U2, _U12, _U62 = np.uint64(2), np.uint64(12), np.uint64(62)
_U1, _U63 = np.uint64(1), np.uint64(63)
_ONE_BITS = 0x3FF0000000000000  # IEEE bits of 1.0
_HALF_PI = 0.5 * math.pi
_SQRT_HALF = math.sqrt(0.5)
_S = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(8))  # sin: phi^1 .. phi^15
_C = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(9))  # cos: phi^0 .. phi^16


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def lanes_normal_pairs(rs, Z, i, nb):
    """``Z[i, b], Z[i + 1, b]`` = two independent N(0, 1) for lanes ``b < nb``, from ``rs[:, b]``.

    ``Z`` is (rows, B) float64 or float32 with ``i + 1 < rows`` (an odd dimension d needs a spare
    row: its second normal is drawn and not used). ``rs`` (4, B) uint64 advances two steps per
    lane.
    """
    for b in range(nb):
        r1, s0, s1, s2, s3 = xoshiro_step(rs[0, b], rs[1, b], rs[2, b], rs[3, b])
        r2, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
        rs[0, b] = s0
        rs[1, b] = s1
        rs[2, b] = s2
        rs[3, b] = s3
        # uniforms from the top 52 bits as the mantissa of a number in [1, 2): no int -> float
        # conversion (none is SIMD on AVX2)
        u = 2.0 - _i64_as_f64(np.int64(r1 >> _U12) | _ONE_BITS)  # (0, 1]
        rho = math.sqrt(-2.0 * fast_log(u))
        f = _i64_as_f64(np.int64((r2 << _U2) >> _U12) | _ONE_BITS) - 1.0  # [0, 1)
        phi = _HALF_PI * (f - 0.5)
        p2 = phi * phi
        sp = (((((((_S[7] * p2 + _S[6]) * p2 + _S[5]) * p2 + _S[4]) * p2 + _S[3]) * p2
                + _S[2]) * p2 + _S[1]) * p2 + _S[0]) * phi
        cp = ((((((((_C[8] * p2 + _C[7]) * p2 + _C[6]) * p2 + _C[5]) * p2 + _C[4]) * p2
                 + _C[3]) * p2 + _C[2]) * p2 + _C[1]) * p2 + _C[0])
        c = _SQRT_HALF * (cp - sp)  # cos(pi/4 + phi)
        s = _SQRT_HALF * (cp + sp)  # sin(pi/4 + phi)
        # rotate by q = top 2 bits of r2 quarter turns: (c, s), (-s, c), (-c, -s), (s, -c)
        odd = (r2 >> _U62) & _U1
        sign = -1.0 if (r2 >> _U63) else 1.0
        cq = sign * (-s if odd else c)
        sq = sign * (c if odd else s)
        Z[i, b] = rho * cq
        Z[i + 1, b] = rho * sq
