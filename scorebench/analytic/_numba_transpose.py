r"""Transposing 8 x 8 tiles in vector registers, for the fused kernels' blocks of points.

The generic mixture kernel (:mod:`._mixture_numba`) holds a block of B points transposed, as a
(d, B) array, and writes the block's scores back as (B, d) rows. Written as scalar loops
(``XT[c, i] = x[i, c]``) both copies run at ~1.3-1.9 cycles per element: every element is a
strided load or a strided store, which LLVM's vectoriser does not turn into shuffles for a
run-time d. :func:`transpose_tile` moves one 8 x 8 tile with eight vector loads, 24 shuffles
(three rounds of pairwise interleaving: elements, pairs, quadruples) and eight vector stores.
Measured on one AMD EPYC (Zen 4) core, d = 16, B = 248 (ns per point):
load 5.7 -> 2.8, store 8.1 -> 2.7 (1.7 -> 0.7 ns per (point, component) pair at K = 8).

:func:`transpose_tile_negated` negates on the way (an exact sign flip): the kernel's generated
passes accumulate the score with the opposite sign (:mod:`._generated_passes_numba`).

Both take arrays and element offsets (``src[so + r * ss + c]`` is row r, column c of the tile;
likewise the destination), which must be C-contiguous: the intrinsics read and write through
the data pointer, and refuse (a typing error) any other layout. float64 tiles are 512-bit
vectors, float32 tiles 256-bit ones.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["transpose_tile", "transpose_tile_negated", "transpose_tiles"]

# shuffle masks of the three interleaving rounds (indices into the concatenation of two
# 8-vectors): element pairs, pairs of pairs, quadruples
_ELEM_LO, _ELEM_HI = (0, 8, 2, 10, 4, 12, 6, 14), (1, 9, 3, 11, 5, 13, 7, 15)
_PAIR_LO, _PAIR_HI = (0, 1, 8, 9, 4, 5, 12, 13), (2, 3, 10, 11, 6, 7, 14, 15)
_QUAD_LO, _QUAD_HI = (0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)


def _tile_codegen(negate):
    def codegen(context, builder, signature, args):
        src_t, _, _, dst_t, _, _ = signature.args
        src, so, ss, dst, do, ds = args
        elt = context.get_value_type(src_t.dtype)
        vec = ir.VectorType(elt, 8)
        align = src_t.dtype.bitwidth // 8
        i32 = ir.IntType(32)

        def mask(m):
            return ir.Constant(ir.VectorType(i32, 8), [ir.Constant(i32, v) for v in m])

        def row_ptr(arr_t, arr, off, stride, r):
            data = context.make_array(arr_t)(context, builder, arr).data
            idx = builder.add(off, builder.mul(stride, ir.Constant(stride.type, r)))
            return builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())

        rows = [builder.load(row_ptr(src_t, src, so, ss, r), align=align) for r in range(8)]
        if negate:
            rows = [builder.fneg(v) for v in rows]
        t = [None] * 8  # round 1: rows 2q, 2q+1 interleaved element by element
        for q in range(4):
            a, b = rows[2 * q], rows[2 * q + 1]
            t[2 * q] = builder.shuffle_vector(a, b, mask(_ELEM_LO))
            t[2 * q + 1] = builder.shuffle_vector(a, b, mask(_ELEM_HI))
        u = [None] * 8  # round 2: pairs
        for base in (0, 4):
            for o in (0, 1):
                a, b = t[base + o], t[base + o + 2]
                u[base + o] = builder.shuffle_vector(a, b, mask(_PAIR_LO))
                u[base + o + 2] = builder.shuffle_vector(a, b, mask(_PAIR_HI))
        for c in range(4):  # round 3: quadruples; column c and column c + 4 of the source
            lo = builder.shuffle_vector(u[c], u[c + 4], mask(_QUAD_LO))
            hi = builder.shuffle_vector(u[c], u[c + 4], mask(_QUAD_HI))
            builder.store(lo, row_ptr(dst_t, dst, do, ds, c), align=align)
            builder.store(hi, row_ptr(dst_t, dst, do, ds, c + 4), align=align)
        return context.get_dummy_value()

    return codegen


def _tile_signature(src, so, ss, dst, do, ds):
    arrays = (src, dst)
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return None
    if src.dtype != dst.dtype or src.dtype not in (types.float64, types.float32):
        return None
    if not all(isinstance(v, types.Integer) for v in (so, ss, do, ds)):
        return None
    return types.void(src, types.intp, types.intp, dst, types.intp, types.intp)


@intrinsic
def transpose_tile(typingctx, src, so, ss, dst, do, ds):
    """``dst[do + c * ds + r] = src[so + r * ss + c]`` for r, c in 0..7 (flat element offsets
    of C-contiguous float64 or float32 arrays of one dtype; no bounds checks: the caller keeps
    the tile inside both arrays)."""
    sig = _tile_signature(src, so, ss, dst, do, ds)
    return None if sig is None else (sig, _tile_codegen(False))


@intrinsic
def transpose_tile_negated(typingctx, src, so, ss, dst, do, ds):
    """:func:`transpose_tile` writing ``-src`` (exact)."""
    sig = _tile_signature(src, so, ss, dst, do, ds)
    return None if sig is None else (sig, _tile_codegen(True))


@njit(error_model="numpy", cache=True)
def transpose_tiles(src, ss, dst, ds, rows, cols, negate):
    """``dst[c * ds + r] = src[r * ss + c]`` (negated with ``negate``) for the 8 x 8 tiles of a
    ``rows`` x ``cols`` region at the start of both arrays: rows and columns up to the last
    multiple of 8; returns that many columns (the caller moves the rest)."""
    r8, c8 = rows - rows % 8, cols - cols % 8
    for r in range(0, r8, 8):
        for c in range(0, c8, 8):
            if negate:
                transpose_tile_negated(src, r * ss + c, ss, dst, c * ds + r, ds)
            else:
                transpose_tile(src, r * ss + c, ss, dst, c * ds + r, ds)
    return c8
