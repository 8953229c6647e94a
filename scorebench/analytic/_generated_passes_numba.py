r"""The generic mixture kernel's per-component passes, generated for each d from 9 to 16.

On its one-product path (full covariances at a common time, every :math:`C_k(t)` with
condition number <= 100) the generic kernel (:mod:`._mixture_numba`) computes per block of B
points and per component :math:`W = C_k^{-1} X` with one BLAS product, then

1. the quadratic form and the log-weight (:func:`qf_weight`):
   :math:`q = (x - a\mu_k)\cdot(W - b_k)`, :math:`\ell_k = \kappa_k - q/2` with
   :math:`b_k = C_k^{-1} a\mu_k`, and the exponent :math:`-|\ell_k - m|` of the online
   log-sum-exp against the running maximum m;
2. the exponentials (:func:`._numba_exp.exp_nonpositive`, as before);
3. the log-sum-exp step and the weighted Welford update (:func:`lse_welford`): with
   :math:`h = W - b_k = C_k^{-1}(x - a\mu_k) = -g_k`, weights :math:`r = w/S'`,
   :math:`c = S/S'` (old and new weight sums),

   .. math::

       \bar h \leftarrow c\, \bar h + r\, h, \qquad
       M_2 \leftarrow M_2 + w c\, |h - \bar h_{old}|^2,

   so that :math:`\bar h = -s` (the score with the opposite sign: the caller negates it on the
   way out, an exact operation) and :math:`M_2/S` is the weighted variance of the gradients.

The stage functions of :mod:`._numba_stages` do the same with a run-time d, four rows of the
(d, B) arrays per loop (the running sums held in a register for four rows) and one loop per
stage. Here d and B are compile-time constants: each pass is *one* loop over the block's points
whose body covers all d rows, the row offsets are constants (LLVM proves the rows of an array
disjoint, so it vectorises without run-time overlap checks between them; with a run-time row
stride the same code ran scalar at 2.3x the time), the sums stay in registers across all rows,
and the log-weight and log-sum-exp steps ride in the loops of the quadratic form and of
Welford's update instead of passes of their own. The products and sums use explicit fused
multiply-adds (:func:`._numba_intrinsics.fma`: one rounding each), and the mean is kept as
:math:`\bar h` rather than :math:`-\bar h`, which saves a negation per element.

Operation counts per (point, component) pair (flops; an FMA counts 2): quadratic form 4d,
log-weight 4; log-sum-exp 11 and 1 division; Welford 8d + 5 with the Laplacian, 4d without.
Measured (one AMD EPYC Zen 4 core, d = 16, K = 8, the whole kernel, ns per pair, A/B in one
process): the stage functions at B = 256 22.2-22.6; at B = 248 21.5; these passes 20.4 (with
FMAs 19.9); with the tiled transposes of :mod:`._numba_transpose` as well 19.6-20.1.

Numbers: every subset of the outputs (log-density, score, Laplacian) runs the same arithmetic
for what they share (the modes of ``lse_welford`` differ only in what they skip), so they
agree bit for bit; against the stage functions they differ by rounding (the FMAs).

Each d and dtype is a module of two ``cfunc`` s written by :func:`source`, compiled once and
cached on disk (:mod:`._generated_modules`), called by address (:func:`call_qf_weight`,
:func:`call_lse_welford`) so that the kernel itself compiles once for every d.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._generated_modules import import_generated
from ._mixture_numba_prep import block_size

__all__ = ["MIN_D", "MAX_D", "BLOCK", "applies", "source", "pass_functions", "is_loaded",
           "qf_signature", "welford_signature", "call_qf_weight", "call_lse_welford"]

# from the first d that the generated small-d kernel leaves to the generic one on this path
# (._unrolled_mixture_numba.MAX_D_INVERSE + 1) to the largest whose block is the fixed one
# (block_size): the passes' B is a compile-time constant, and beyond 16 the block shrinks
MIN_D, MAX_D = 9, 16
BLOCK = block_size(MAX_D)  # points per block, a compile-time constant of the passes
# lse_welford's modes: log-density only; and the score; and the Laplacian
MODE_LOGP, MODE_SCORE, MODE_LAPLACIAN = 0, 1, 2


def applies(d: int) -> bool:
    """Whether the generated passes serve dimension d (whose block is :data:`BLOCK`)."""
    return MIN_D <= d <= MAX_D and block_size(d) == BLOCK


def _is_f32(dtype) -> bool:
    return np.dtype(dtype) == np.float32


def _ptr(dtype):
    return types.CPointer(types.float32 if _is_f32(dtype) else types.float64)


def qf_signature(dtype=np.float64):
    """``void(W, XT, bk, amu, LR, M, DLT, kappa)``: pointers to ``dtype`` and a ``dtype``."""
    p = _ptr(dtype)
    return types.void(p, p, p, p, p, p, p, p.dtype)


def welford_signature(dtype=np.float64):
    """``void(W, bk, HBAR, LR, EX, M, SW, M2, T, tr, mode)``: pointers to ``dtype``, a
    ``dtype`` and an int."""
    p = _ptr(dtype)
    return types.void(p, p, p, p, p, p, p, p, p, p.dtype, types.intp)


def _helpers_hash() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in (here / "_numba_intrinsics.py", Path(__file__).resolve()):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _lse_lines(ind, grad):
    """The online log-sum-exp step for point i (``grad``: also r, c and the new weight sum)."""
    out = [f"{ind}e = EX[i]",
           f"{ind}up = LR[i] > M[i]",
           f"{ind}w = ONE if up else e",
           f"{ind}sc = e if up else ONE",
           f"{ind}M[i] = LR[i] if up else M[i]"]
    if not grad:
        return out + [f"{ind}SW[i] = SW[i] * sc + w"]
    return out + [f"{ind}swo = SW[i] * sc",
                  f"{ind}swn = swo + w",
                  f"{ind}SW[i] = swn",
                  f"{ind}isw = ONE / swn",
                  f"{ind}r = w * isw",
                  f"{ind}co = swo * isw"]


def source(d: int, dtype=np.float64) -> str:
    """Python source of the two passes for dimension d and ``dtype`` (float64 or float32:
    every value of the float32 passes is a float32)."""
    if not applies(int(d)):
        raise ValueError(f"d: the generated passes serve {MIN_D} <= d <= {MAX_D}, got {d!r}")
    d = int(d)
    B = BLOCK
    npt = "np.float32" if _is_f32(dtype) else "np.float64"
    I1, I2, I3 = (" " * n for n in (4, 8, 12))
    out = [
        f"# generated by scorebench.analytic._generated_passes_numba; helpers {_helpers_hash()}",
        "import numpy as np",
        "from numba import carray, cfunc",
        "from scorebench.analytic._numba_intrinsics import fma",
        ("from scorebench.analytic._generated_passes_numba import qf_signature, "
         "welford_signature"),
        "# literals of the passes' dtype (a bare 1.0 is a float64 and would promote float32)",
        f"ONE, ZERO, HALF = {npt}(1.0), {npt}(0.0), {npt}(0.5)",
        "",
        "",
        f"@cfunc(qf_signature({npt}), cache=True, error_model='numpy')",
        "def qf_weight(wp, xtp, bkp, amup, lrp, mp, dltp, kappa):",
        f"{I1}W = carray(wp, ({d}, {B}))",
        f"{I1}XT = carray(xtp, ({d}, {B}))",
        f"{I1}BK = carray(bkp, ({d},))",
        f"{I1}AM = carray(amup, ({d},))",
        f"{I1}LR = carray(lrp, ({B},))",
        f"{I1}M = carray(mp, ({B},))",
        f"{I1}DLT = carray(dltp, ({B},))",
        *[f"{I1}b{c} = BK[{c}]" for c in range(d)],
        *[f"{I1}a{c} = AM[{c}]" for c in range(d)],
        f"{I1}for i in range({B}):",
        f"{I2}q = (XT[0, i] - a0) * (W[0, i] - b0)",
        *[f"{I2}q = fma(XT[{c}, i] - a{c}, W[{c}, i] - b{c}, q)" for c in range(1, d)],
        f"{I2}lr = kappa - HALF * q",
        f"{I2}LR[i] = lr",
        f"{I2}dl = lr - M[i]",
        f"{I2}DLT[i] = -dl if dl > ZERO else dl",
        "",
        "",
        f"@cfunc(welford_signature({npt}), cache=True, error_model='numpy')",
        "def lse_welford(wp, bkp, hp, lrp, exp_, mp, swp, m2p, tp, tr, mode):",
        f"{I1}W = carray(wp, ({d}, {B}))",
        f"{I1}BK = carray(bkp, ({d},))",
        f"{I1}H = carray(hp, ({d}, {B}))",
        f"{I1}LR = carray(lrp, ({B},))",
        f"{I1}EX = carray(exp_, ({B},))",
        f"{I1}M = carray(mp, ({B},))",
        f"{I1}SW = carray(swp, ({B},))",
        f"{I1}M2 = carray(m2p, ({B},))",
        f"{I1}T = carray(tp, ({B},))",
        *[f"{I1}b{c} = BK[{c}]" for c in range(d)],
        f"{I1}if mode == {MODE_LOGP}:",
        f"{I2}for i in range({B}):",
        *_lse_lines(I3, False),
        f"{I2}return",
        f"{I1}if mode == {MODE_SCORE}:",
        f"{I2}for i in range({B}):",
        *_lse_lines(I3, True),
    ]
    for c in range(d):
        out += [f"{I3}h = W[{c}, i] - b{c}",
                f"{I3}H[{c}, i] = fma(co, H[{c}, i], r * h)"]
    out += [f"{I2}return",
            f"{I1}for i in range({B}):",
            *_lse_lines(I2, True),
            f"{I2}T[i] = T[i] * sc + w * tr"]
    for c in range(d):
        out += [f"{I2}h = W[{c}, i] - b{c}",
                f"{I2}dv = h - H[{c}, i]",
                f"{I2}H[{c}, i] = fma(co, H[{c}, i], r * h)",
                f"{I2}s = dv * dv" if c == 0 else f"{I2}s = fma(dv, dv, s)"]
    out.append(f"{I2}M2[i] = M2[i] * sc + (r * swn) * co * s")
    return "\n".join(out) + "\n"


_FUNCTIONS: dict = {}


def is_loaded(d: int, dtype=np.float64) -> bool:
    """Whether the passes for dimension d and ``dtype`` are compiled (or loaded) in this
    process."""
    return (int(d), _is_f32(dtype)) in _FUNCTIONS


def pass_functions(d: int, dtype=np.float64) -> tuple:
    """Addresses ``(qf_weight, lse_welford)`` of the passes for dimension d and ``dtype``,
    compiled (or loaded from disk) once."""
    key = (int(d), _is_f32(dtype))
    fns = _FUNCTIONS.get(key)
    if fns is None:
        name = ("sb_passes_f32_" if key[1] else "sb_passes_") + f"d{key[0]}"
        mod = import_generated(name, source(key[0], dtype))
        fns = _FUNCTIONS[key] = (mod.qf_weight.address, mod.lse_welford.address)
    return fns


def _call_codegen():
    def codegen(context, builder, signature, args):
        argtys = [context.get_value_type(t) for t in signature.args[1:]]
        fnty = ir.FunctionType(ir.VoidType(), argtys)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, args[1:])
        return context.get_dummy_value()

    return codegen


def _pointer_args(ptrs):
    first = ptrs[0]
    if not isinstance(first, types.CPointer) or any(p != first for p in ptrs):
        return None
    return first


@intrinsic
def call_qf_weight(typingctx, addr, wp, xtp, bkp, amup, lrp, mp, dltp, kappa):
    """Call the ``qf_weight`` at address ``addr`` (an int; pointers of one float dtype and a
    scalar of it)."""
    p = _pointer_args((wp, xtp, bkp, amup, lrp, mp, dltp))
    if p is None:
        return None
    sig = types.void(types.intp, *([p] * 7), p.dtype)
    return sig, _call_codegen()


@intrinsic
def call_lse_welford(typingctx, addr, wp, bkp, hp, lrp, exp_, mp, swp, m2p, tp, tr, mode):
    """Call the ``lse_welford`` at address ``addr`` (an int; pointers of one float dtype, a
    scalar of it and the mode)."""
    p = _pointer_args((wp, bkp, hp, lrp, exp_, mp, swp, m2p, tp))
    if p is None:
        return None
    sig = types.void(types.intp, *([p] * 9), p.dtype, types.intp)
    return sig, _call_codegen()
