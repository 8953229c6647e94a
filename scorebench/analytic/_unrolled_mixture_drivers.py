r"""Running the generated d <= 4 mixture kernels (:mod:`._unrolled_mixture_numba`) over points.

The generated functions are ``cfunc`` s of :func:`~._unrolled_mixture_numba.block_signature`,
one per (d, dtype); the drivers here are compiled (and cached) once for all of them: each
takes the kernel's address and calls it through :func:`call_block` on blocks of
:data:`~._unrolled_mixture_numba.BLOCK` rows of the points and of the outputs (scratch for a
partial last block). :func:`block_driver` runs the blocks in parallel tasks,
:func:`block_driver_serial` on the calling thread (small calls).

The drivers used to transpose each block into (d, BLOCK) scratch and back with ``x[start + i,
c]``: numba wraps a possibly negative index, so those loops ran scalar at ~8 instructions per
element, 28 % of the d = 2, K = 8 kernel's time (perf). Passing the rows and transposing inside
the generated code (compile-time d: vector shuffles): ns per pair on 2 threads (AMD EPYC Zen 4,
N = 50,000, score and Laplacian, three alternating runs) d = 2, K = 8: float64 1.25-1.44 ->
1.03-1.07, float32 0.73-0.80 -> 0.52-0.53; K = 64 within noise. Results bit-identical.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._numba_intrinsics import array_ptr
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
    r"""Blocks ``bk0 <= b < bk1`` of :data:`BLOCK` points through the generated kernel ``fn``.

    A full block is passed as the rows of ``x`` themselves and its score and Laplacian are
    written straight into the outputs (the kernel transposes in vector loops); a partial block
    is copied into scratch padded with its first point, and so are outputs that are not wanted.
    :math:`\log p = M + \log S` is taken here, in a scalar loop, so the generated loop has no
    ``log`` in it."""
    N, d = x.shape
    B = BLOCK
    XP = np.empty((B, d), x.dtype)  # scratch in the dtype of the points (and of fn)
    SC = np.empty((B, d), x.dtype)
    ST = np.empty((2 * d + 3, B), x.dtype)
    M = np.empty(B, x.dtype)
    S = np.empty(B, x.dtype)
    LAP = np.empty(B, x.dtype)
    for bk in range(bk0, bk1):
        start = bk * B
        n = min(B, N - start)
        full = n == B
        xb = x[start:start + n]
        if not full:
            for i in range(B):
                for c in range(d):
                    XP[i, c] = xb[i if i < n else 0, c]
        sc_direct = want_score and full
        lap_direct = want_lap and full
        call_block(fn, array_ptr(xb) if full else array_ptr(XP), array_ptr(P), array_ptr(ST),
                   array_ptr(M), array_ptr(S),
                   array_ptr(out_score[start:start + n]) if sc_direct else array_ptr(SC),
                   array_ptr(out_lap[start:start + n]) if lap_direct else array_ptr(LAP), nk)
        if want_logp:
            lp = out_logp[start:start + n]
            for i in range(n):
                lp[i] = M[i] + math.log(S[i])
        if want_score and not sc_direct:
            out_score[start:start + n] = SC[:n]
        if want_lap and not lap_direct:
            out_lap[start:start + n] = LAP[:n]


@njit(parallel=True, nogil=True, error_model="numpy", cache=True)
def block_driver(x, P, nk, fn, want_logp, want_score, want_lap, nchunks, out_logp, out_score,
                 out_lap):
    r"""Run the generated kernel at address ``fn`` (``nk`` chunks of components, constants
    ``P``) over blocks of :data:`BLOCK` points, in ``nchunks`` parallel tasks
    (:func:`_drive_blocks` each)."""
    nblocks = (x.shape[0] + BLOCK - 1) // BLOCK
    for ch in prange(nchunks):
        _drive_blocks(ch * nblocks // nchunks, (ch + 1) * nblocks // nchunks, x, P, nk, fn,
                      want_logp, want_score, want_lap, out_logp, out_score, out_lap)


@njit(nogil=True, error_model="numpy", cache=True)
def block_driver_serial(x, P, nk, fn, want_logp, want_score, want_lap, out_logp, out_score,
                        out_lap):
    """:func:`block_driver` on the calling thread alone, for small calls (no parallel launch,
    no change of numba's thread count: ~10 us less per call)."""
    _drive_blocks(0, (x.shape[0] + BLOCK - 1) // BLOCK, x, P, nk, fn, want_logp, want_score,
                  want_lap, out_logp, out_score, out_lap)
