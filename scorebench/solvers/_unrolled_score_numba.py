r"""Register-resident mixture score for small diagonal, shared-shape mixtures, generated per (d, K).

:func:`~._mixture_lanes_numba.lanes_score_diag_shared` loops over components and dimensions
outside the loop over lanes, so every (component, dimension) pass streams (K, B) and (d, B)
arrays through L1: for d = 2, K = 8 about 30 of its 42 ns per lane are loads and stores around
8 exponentials that cost 13 ns. When d and K are small, this module writes the same maths as
straight-line code, one loop over lanes whose body keeps the point, the K log-weights and the
running sums in registers:

.. math::

    v_i = a^2\lambda_i + s^2,\quad
    \ell_k = \log w_k - \tfrac12\textstyle\sum_i (x_i - a\mu_{ki})^2/v_i,\quad
    e_k = \exp(\ell_k - \max_j \ell_j),\quad S = \textstyle\sum_k e_k,

score :math:`s_i = -\sum_k e_k (x_i - a\mu_{ki}) / (S v_i)`, or without the Laplacian
:math:`s_i = (a \sum_k e_k\mu_{ki}/S - x_i)/v_i`; Laplacian
:math:`\sum_i \big(\sum_k e_k (x_i - a\mu_{ki})^2/(S v_i) - 1\big)/v_i - |s|^2`.
The lane loop is vectorised by LLVM (4 float64 or 8 float32 lanes per AVX2 register). Operation
count per lane: d divisions, 3Kd + K flops for the log-weights, K exponentials, 2K for the
softmax, 2Kd (score only) or 4Kd + 5d (with the Laplacian). Same-process microbenchmark on one
Zen 3 core, 64 lanes, score and Laplacian (ns per lane, generic -> generated):
d = 2, K = 8: 43 -> 21; d = 8, K = 8: 124 -> 58; d = 2, K = 32: 151 -> 115; and
d = 16, K = 8: 125 -> 219 (registers spill), hence :func:`applies`.

The samplers call the score with all lanes at one time; their variant (``common_time``, see
:func:`_common_time_body`) moves the divisions and every time-only constant out of the lane
loop and drops the component-independent :math:`\sum_i x_i^2/(2 v_i)` from the log-weights:
d = 2, K = 8, score only, on one Rocket Lake core: fused EM 19 -> 17 ns per sample and step.

The generated functions are numba ``cfunc`` s with one C signature per dtype
(:func:`score_signature`), so the fused kernels take them as a function *address* argument
(:func:`call_score`) and are compiled (and cached on disk) once for every shape; each generated function is compiled
once per (d, K, dtype, Laplacian or not, common time or not) and cached through
:mod:`scorebench.analytic._generated_modules`. The
source carries a hash of the helper modules it inlines (``fast_exp`` and friends), so editing
them yields a new file instead of a stale cached kernel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import cfunc, types
from numba.extending import intrinsic

from ..analytic._generated_modules import import_generated
from ..analytic._numba_intrinsics import array_ptr

__all__ = ["applies", "array_ptr", "call_score", "score_args", "score_signature",
           "score_function", "score_source", "noop_score", "MAX_D", "MAX_K", "MAX_DK"]

MAX_D, MAX_K, MAX_DK = 8, 16, 64  # the generated score is used when d <= 8, K <= 16, d K <= 64

_DTYPES = {np.dtype(np.float64): types.float64, np.dtype(np.float32): types.float32}


def _nb_dtype(dtype):
    try:
        return _DTYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"dtype: expected float64 or float32, got {dtype!r}") from None


def score_signature(dtype):
    """C signature ``void(X, A, S2, mT, lamT, logw, SC, LAP, B)`` with pointers to ``dtype``.

    ``X``, ``SC`` (d, B) and ``lamT``, ``mT`` (d, K) are row-major with row strides B and K;
    ``A``, ``S2``, ``LAP`` (B,); ``logw`` (K,); ``B`` the number of lanes.
    """
    p = types.CPointer(_nb_dtype(dtype))
    return types.void(p, p, p, p, p, p, p, p, types.intp)


@intrinsic
def call_score(typingctx, addr, xp, ap, s2p, mp, lp, wp, scp, lapp, B):
    """Call the generated score at address ``addr`` (an int) with the arguments of
    :func:`score_signature` (pointers of the kernel's dtype, then the lane count).

    The fused kernels take the score's address rather than the ``cfunc`` object: a first-class
    function argument is typed by numba's dispatcher on every call (~7 us a call, measured; 1 %
    of a 2,000-point likelihood).
    """
    ptrs = (xp, ap, s2p, mp, lp, wp, scp, lapp)
    if not all(isinstance(p, types.CPointer) and p == xp for p in ptrs):
        return None
    sig = types.void(types.intp, *ptrs, types.intp)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(),
                               [context.get_value_type(t) for t in signature.args[1:]])
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        return context.get_dummy_value()

    return sig, codegen


def applies(lay) -> bool:
    """Whether the generated score serves this :class:`~._mixture_lanes_numba.MixtureLayout`."""
    d, K = lay.mT.shape
    return bool(lay.diag and lay.shared and d <= MAX_D and K <= MAX_K and d * K <= MAX_DK)


def _helpers_hash() -> str:
    here = Path(__file__).resolve().parent
    files = [here / "_numba_math.py", here / "_numba_precision.py",
             here.parent / "analytic" / "_numba_exp.py", Path(__file__).resolve()]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def score_source(d: int, K: int, dtype, want_lap: bool, common_time: bool = False) -> str:
    """Python source of the generated score for (d, K, dtype, want_lap) (see the docstring).

    With ``common_time`` every lane is at the time of lane 0 (``A[0]``, ``S2[0]``; the other
    entries are not read), as in the fused samplers: see :func:`_common_time_body`.
    """
    for name, v in (("d", d), ("K", K)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    nbt = _nb_dtype(dtype)
    npt = "np.float32" if nbt == types.float32 else "np.float64"
    exp_mod, exp_fn = (("_numba_precision", "fast_exp_f32") if nbt == types.float32
                       else ("_numba_math", "fast_exp"))
    I2, I3 = " " * 4, " " * 8
    out = [
        f"# generated by scorebench.solvers._unrolled_score_numba; helpers {_helpers_hash()}",
        "import numpy as np",
        "from numba import carray, cfunc, njit",
        f"from scorebench.solvers.{exp_mod} import {exp_fn}",
        "from scorebench.solvers._unrolled_score_numba import score_signature",
        f"ONE, HALF = {npt}(1.0), {npt}(0.5)",
        "",
        "",
        "# a plain call, which LLVM inlines: inlining K copies in numba's IR is slow to compile",
        f"@njit(cache=True, fastmath={{'contract'}})",
        "def lane_exp(x):",
        f"    return {exp_fn}(x)",
        "",
        f"@cfunc(score_signature({npt}), cache=True, fastmath={{'contract', 'reassoc'}}, "
        "error_model='numpy')",
        "def score(xp, ap, s2p, mp, lp, wp, scp, lapp, B):",
        f"{I2}X = carray(xp, ({d}, B))",
        f"{I2}SC = carray(scp, ({d}, B))",
        f"{I2}A = carray(ap, (B,))",
        f"{I2}S2 = carray(s2p, (B,))",
        f"{I2}LAP = carray(lapp, (B,))",
        f"{I2}mT = carray(mp, ({d}, {K}))",
        f"{I2}lamT = carray(lp, ({d}, {K}))",
        f"{I2}logw = carray(wp, ({K},))",
    ]
    out += [f"{I2}lam{i} = lamT[{i}, 0]" for i in range(d)]
    out += [f"{I2}w{k} = logw[{k}]" for k in range(K)]
    out += [f"{I2}m{i}_{k} = mT[{i}, {k}]" for k in range(K) for i in range(d)]
    if common_time:
        return "\n".join(out + _common_time_body(d, K, want_lap)) + "\n"
    out.append(f"{I2}for b in range(B):")
    out.append(f"{I3}a = A[b]")
    out.append(f"{I3}s2 = S2[b]")
    for i in range(d):
        out.append(f"{I3}x{i} = X[{i}, b]")
        out.append(f"{I3}v{i} = ONE / (a * a * lam{i} + s2)")
        out.append(f"{I3}h{i} = HALF * v{i}")
    for k in range(K):
        terms = " + ".join(f"(x{i} - a * m{i}_{k}) * (x{i} - a * m{i}_{k}) * h{i}"
                           for i in range(d))
        out.append(f"{I3}l{k} = w{k} - ({terms})")
    out.append(f"{I3}m = l0")
    out += [f"{I3}m = l{k} if l{k} > m else m" for k in range(1, K)]
    out += [f"{I3}e{k} = lane_exp(l{k} - m)" for k in range(K)]
    out.append(f"{I3}r = ONE / (" + " + ".join(f"e{k}" for k in range(K)) + ")")
    if not want_lap:
        for i in range(d):
            mix = " + ".join(f"e{k} * m{i}_{k}" for k in range(K))
            out.append(f"{I3}SC[{i}, b] = (a * (({mix}) * r) - x{i}) * v{i}")
    else:
        out.append(f"{I3}lap = -(" + " + ".join(f"v{i}" for i in range(d)) + ")")
        for i in range(d):
            z = [f"z{i}_{k}" for k in range(K)]
            out += [f"{I3}z{i}_{k} = x{i} - a * m{i}_{k}" for k in range(K)]
            out.append(f"{I3}p1 = " + " + ".join(f"e{k} * {z[k]}" for k in range(K)))
            out.append(f"{I3}p2 = " + " + ".join(f"e{k} * {z[k]} * {z[k]}" for k in range(K)))
            out.append(f"{I3}s{i} = -p1 * r * v{i}")
            out.append(f"{I3}SC[{i}, b] = s{i}")
            out.append(f"{I3}lap += p2 * r * v{i} * v{i} - s{i} * s{i}")
        out.append(f"{I3}LAP[b] = lap")
    return "\n".join(out) + "\n"


def _common_time_body(d: int, K: int, want_lap: bool) -> list:
    r"""Lines of the lane loop when all lanes share (a, s^2): everything that depends on the
    time only is computed once, before the loop.

    With :math:`h_i = v_i/2` common to the components (shared diagonal), the term
    :math:`\sum_i h_i x_i^2` of every :math:`\ell_k` is the same for all k and cancels in the
    softmax, so

    .. math::

        \ell'_k = \beta_k + \textstyle\sum_i u_i \mu_{ki},\qquad u_i = a v_i x_i,\qquad
        \beta_k = \log w_k - \tfrac{a^2}{2}\textstyle\sum_i v_i \mu_{ki}^2,

    d FMAs per component and lane instead of 3d, and no division in the loop. Score
    :math:`s_i = (a\,\bar\mu_i - x_i) v_i` with :math:`\bar\mu_i = \sum_k e_k\mu_{ki}/S`;
    Laplacian :math:`\sum_i v_i^2 a^2 (\overline{\mu^2}_i - \bar\mu_i^2) - \sum_i v_i`
    (the posterior variance of :math:`a\mu_i`, :math:`\overline{\mu^2}_i` from the constants
    :math:`\mu_{ki}^2`). Per lane: d + dK + K flops for the log-weights, K exponentials, 2K for
    the softmax, dK + 3d for the score, 2dK + 4d more for the Laplacian.

    Rounding: :math:`\ell'_k` is :math:`\ell_k` shifted by :math:`h|x|^2`, so its absolute
    rounding error is about :math:`(d + 2)\,\epsilon\,(|\beta_k| + \sum_i |u_i\mu_{ki}|)`
    rather than :math:`\epsilon` times the size of :math:`\ell_k` itself; the weights carry
    that error relatively (a few ulp for points near a mean, 1e-14 relative at worst on the
    benchmarks' ring at t = eps). The tests bound it from these sizes.
    """
    I2, I3 = " " * 4, " " * 8
    out = [f"{I2}a = A[0]", f"{I2}s2 = S2[0]"]
    for i in range(d):
        out.append(f"{I2}v{i} = ONE / (a * a * lam{i} + s2)")
        out.append(f"{I2}c{i} = a * v{i}")
    for k in range(K):
        terms = " + ".join(f"v{i} * (m{i}_{k} * m{i}_{k})" for i in range(d))
        out.append(f"{I2}beta{k} = w{k} - HALF * (a * a) * ({terms})")
    if want_lap:
        out += [f"{I2}q{i}_{k} = m{i}_{k} * m{i}_{k}" for k in range(K) for i in range(d)]
        out.append(f"{I2}vsum = " + " + ".join(f"v{i}" for i in range(d)))
    out.append(f"{I2}for b in range(B):")
    for i in range(d):
        out.append(f"{I3}x{i} = X[{i}, b]")
        out.append(f"{I3}u{i} = c{i} * x{i}")
    for k in range(K):
        out.append(f"{I3}l{k} = beta{k} + " + " + ".join(f"u{i} * m{i}_{k}" for i in range(d)))
    out.append(f"{I3}m = l0")
    out += [f"{I3}m = l{k} if l{k} > m else m" for k in range(1, K)]
    out += [f"{I3}e{k} = lane_exp(l{k} - m)" for k in range(K)]
    out.append(f"{I3}r = ONE / (" + " + ".join(f"e{k}" for k in range(K)) + ")")
    if want_lap:
        out.append(f"{I3}lap = -vsum")
    for i in range(d):
        out.append(f"{I3}p{i} = (" + " + ".join(f"e{k} * m{i}_{k}" for k in range(K)) + ") * r")
        out.append(f"{I3}SC[{i}, b] = (a * p{i} - x{i}) * v{i}")
        if want_lap:
            out.append(f"{I3}q{i} = (" + " + ".join(f"e{k} * q{i}_{k}" for k in range(K))
                       + ") * r")
            out.append(f"{I3}lap += (a * v{i}) * (a * v{i}) * (q{i} - p{i} * p{i})")
    if want_lap:
        out.append(f"{I3}LAP[b] = lap")
    return out


_FUNCTIONS: dict = {}


def score_function(d: int, K: int, dtype, want_lap: bool, common_time: bool = False):
    """The generated ``cfunc`` for (d, K, dtype, want_lap, common_time), compiled (or loaded)
    once."""
    key = (int(d), int(K), np.dtype(dtype), bool(want_lap), bool(common_time))
    fn = _FUNCTIONS.get(key)
    if fn is None:
        prefix = (f"sb_score_d{d}_K{K}_{np.dtype(dtype).name}_{'lap' if want_lap else 'only'}"
                  f"{'_common' if common_time else ''}")
        fn = _FUNCTIONS[key] = import_generated(prefix, score_source(*key)).score
    return fn


def _noop(xp, ap, s2p, mp, lp, wp, scp, lapp, B):  # pragma: no cover - never called
    return


_NOOPS: dict = {}


def noop_score(dtype):
    """A do-nothing ``cfunc`` of :func:`score_signature` to pass when the generic score runs."""
    key = np.dtype(dtype)
    if key not in _NOOPS:
        _NOOPS[key] = cfunc(score_signature(key), cache=True)(_noop)
    return _NOOPS[key]


def score_args(lay, dtype, want_lap: bool, common_time: bool = False):
    """The fused kernels' ``(unrolled, score_fn)`` arguments for layout ``lay`` in ``dtype``:
    ``(True, address of the generated score)`` when :func:`applies`, else
    ``(False, address of noop_score(dtype))`` (the kernels call it through :func:`call_score`).
    ``common_time``: the kernel calls the score with every lane at one time (the samplers)."""
    if applies(lay):
        d, K = lay.mT.shape
        return True, score_function(d, K, dtype, want_lap, common_time).address
    return False, noop_score(dtype).address
