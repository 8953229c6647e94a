"""Precision-generic numba code: constants and functions chosen by the floating type.

``like(value, ref)`` is a constant in the floating type of ``ref``, chosen at compile time. A
float literal is a float64 in numba, so ``0.5 * z`` or ``w = 1.0 if up else e`` in a loop
over float32 lanes promotes every lane operation it touches to float64 (half the lanes per
vector, and conversions). Kernels written once for float64 and float32 arrays write
``like(0.5, z)`` instead, which numba resolves at compile time to ``np.float32(0.5)`` or
``np.float64(0.5)`` (:mod:`scorebench.solvers._numba_precision` re-exports it).

``by_precision(f64, f32, doc)`` makes a function that numba code calls as ``f(x)`` and that
compiles to ``f64(x)`` for a float64 ``x`` and to ``f32(x)`` for a float32 one (the
exponentials of :mod:`._numba_exp` and :mod:`scorebench.solvers._numba_precision`).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["like", "by_precision"]


def like(value, ref):
    """``value`` as the floating type of ``ref`` (pure-Python fallback; see :func:`_like`)."""
    return np.asarray(ref).dtype.type(value)


@overload(like, inline="always")
def _like(value, ref):
    dt = ref.dtype if isinstance(ref, types.Array) else ref
    if dt == types.float32:
        return lambda value, ref: np.float32(value)
    return lambda value, ref: np.float64(value)


def by_precision(f64, f32, doc: str):
    """A function ``f(x)`` that numba compiles to ``f64(x)`` or ``f32(x)`` by the type of ``x``
    (both numba functions of one float argument, inlined); called from Python it is ``np.exp``
    (the functions made here are exponentials: the fallback keeps them usable outside numba)."""
    def f(x):
        return np.exp(x)

    @overload(f, inline="always")
    def _f(x):
        if x == types.float32:
            return lambda x: f32(x)
        return lambda x: f64(x)

    f.__doc__ = doc
    return f
