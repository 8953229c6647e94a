"""Precision-generic numba code: ``like(value, ref)``, a constant in the floating type of ``ref``.

A float literal is a float64 in numba, so ``0.5 * z`` or ``w = 1.0 if up else e`` in a loop
over float32 lanes promotes every lane operation it touches to float64 (half the lanes per
vector, and conversions). Kernels written once for float64 and float32 arrays write
``like(0.5, z)`` instead, which numba resolves at compile time to ``np.float32(0.5)`` or
``np.float64(0.5)`` (:mod:`scorebench.solvers._numba_precision` re-exports it).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["like"]


def like(value, ref):
    """``value`` as the floating type of ``ref`` (pure-Python fallback; see :func:`_like`)."""
    return np.asarray(ref).dtype.type(value)


@overload(like, inline="always")
def _like(value, ref):
    dt = ref.dtype if isinstance(ref, types.Array) else ref
    if dt == types.float32:
        return lambda value, ref: np.float32(value)
    return lambda value, ref: np.float64(value)
