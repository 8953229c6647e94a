r"""Running the generated d <= 4 mixture kernels (:mod:`._unrolled_mixture_numba`) over points.

The generated functions are ``cfunc`` s of :func:`~._unrolled_mixture_numba.block_signature`,
one per (d, dtype); the drivers here are compiled (and cached) once for all of them: each
takes the kernel's address, transposes blocks of :data:`~._unrolled_mixture_numba.BLOCK`
points into scratch of the points' dtype, calls the kernel through :func:`call_block` and
writes the outputs back. :func:`block_driver` runs the blocks in parallel tasks,
:func:`block_driver_serial` on the calling thread (small calls).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._numba_intrinsics import array_ptr
from ._numba_stages import load_transposed, store_logp_score
from ._unrolled_mixture_numba import BLOCK

__all__ = ["call_block", "block_driver", "block_driver_serial"]


@intrinsic
def call_block(typingctx, addr, xp, pp, stp, mp, sp, scp, lapp, nk):
    """Call the ``cfunc`` of :func:`block_signature` at address ``addr`` (an int).

    Passing the address instead of the ``cfunc`` object saves the driver's dispatcher from
    typing a first-class function on every call (~70 us, measured: more than the whole kernel
    for a few thousand points).
    """
    ptr = xp  # float64 or float32 pointers, as the generated function of that dtype takes
    if not isinstance(ptr, types.CPointer) or any(p != ptr for p in (pp, stp, mp, sp, scp, lapp)):
        return None
    sig = types.void(types.intp, ptr, ptr, ptr, ptr, ptr, ptr, ptr, types.intp)

    def codegen(context, builder, signature, args):
        lp = context.get_value_type(ptr)
        fnty = ir.FunctionType(ir.VoidType(), [lp] * 7 + [context.get_value_type(types.intp)])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, args[1:])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, error_model="numpy", cache=True)
def _drive_blocks(bk0, bk1, x, P, nk, fn, want_logp, want_score, want_lap, out_logp, out_score,
                  out_lap):
    r"""Blocks ``bk0 <= b < bk1`` of :data:`BLOCK` points through the generated kernel ``fn``:
    each transposed into (d, BLOCK) scratch (a partial block padded with its first point), the
    kernel called, the outputs written back; :math:`\log p = M + \log S` is taken here, in a
    scalar loop, so the generated loop has no ``log`` in it."""
    N, d = x.shape
    B = BLOCK
    XT = np.empty((d, B), x.dtype)  # scratch in the dtype of the points (and of fn)
    SC = np.empty((d, B), x.dtype)
    ST = np.empty((d + 3, B), x.dtype)
    M = np.empty(B, x.dtype)
    S = np.empty(B, x.dtype)
    LAP = np.empty(B, x.dtype)
    for bk in range(bk0, bk1):
        start = bk * B
        n = min(B, N - start)
        load_transposed(x, start, n, XT)
        call_block(fn, array_ptr(XT), array_ptr(P), array_ptr(ST), array_ptr(M),
                   array_ptr(S), array_ptr(SC), array_ptr(LAP), nk)
        store_logp_score(start, n, M, S, SC, want_logp, want_score, out_logp, out_score)
        if want_lap:
            for i in range(n):
                out_lap[start + i] = LAP[i]


@njit(parallel=True, nogil=True, error_model="numpy", cache=True)
def block_driver(x, P, nk, fn, want_logp, want_score, want_lap, nchunks, out_logp, out_score,
                 out_lap):
    r"""Run the generated kernel at address ``fn`` (``nk`` chunks of components, constants
    ``P``) over blocks of :data:`BLOCK` points, in ``nchunks`` parallel tasks
    (:func:`_drive_blocks` each)."""
    nblocks = (x.shape[0] + BLOCK - 1) // BLOCK
    per_chunk = (nblocks + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        _drive_blocks(ch * per_chunk, min(nblocks, (ch + 1) * per_chunk), x, P, nk, fn,
                      want_logp, want_score, want_lap, out_logp, out_score, out_lap)


@njit(nogil=True, error_model="numpy", cache=True)
def block_driver_serial(x, P, nk, fn, want_logp, want_score, want_lap, out_logp, out_score,
                        out_lap):
    """:func:`block_driver` on the calling thread alone, for small calls (no parallel launch,
    no change of numba's thread count: ~10 us less per call)."""
    _drive_blocks(0, (x.shape[0] + BLOCK - 1) // BLOCK, x, P, nk, fn, want_logp, want_score,
                  want_lap, out_logp, out_score, out_lap)
