"""Two LLVM-level helpers for numba code: an array's data pointer and a fused multiply-add.

``array_ptr(arr)``
    The pointer to the first element of a contiguous array, to pass arrays to a numba ``cfunc``
    called by address (the generated kernels of :mod:`._unrolled_mixture_numba` and
    :mod:`scorebench.solvers._unrolled_score_numba`) and to build meminfo-less aliases
    (:mod:`._bare_arrays_numba`).
``fma(a, b, c)``
    ``a * b + c`` rounded once: LLVM's ``llvm.fma``, which vectorises like any arithmetic. Code
    compiled without fastmath (so that the rest of it rounds as written) uses it where a fused
    multiply-add is wanted.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["array_ptr", "fma"]


@intrinsic
def array_ptr(typingctx, arr):
    """Pointer to the first element of a contiguous array (for calling a ``cfunc``)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(arr)(context, builder, args[0]).data

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``, which vectorises), for float64 or
    float32 arguments of one type (see the module docstring)."""
    if not (isinstance(a, types.Float) and a == b and b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen
