"""Source text of the generated small-d mixture kernels (:mod:`._unrolled_mixture_numba`).

:func:`generate` writes the Python source of one kernel (dimension, dtype, chunk, form) as
straight-line code, every name assigned once (:func:`_single_assignment`); the module docstring
of :mod:`._unrolled_mixture_numba` gives the maths and the measurements. The source embeds a hash
of the helpers it inlines and of the modules that write it (:func:`_helpers_hash`), so that an
edit yields a new cached module.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ._unrolled_mixture_numba import BLOCK, _is_f32, chunk_size, n_params

__all__ = ["generate"]


def _helpers_hash() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in (here / "_numba_exp.py", here / "_numba_intrinsics.py",
              here / "_unrolled_mixture_numba.py", Path(__file__).resolve()):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _chunk_lines(d, chunk, first, ind, inverse=False):
    """Straight-line code of one chunk of ``chunk`` components for one point: into the running
    sums m, sw, M2, mu (``first``), or into mc, swc, M2c, nu followed by the merge. With
    ``inverse`` the gradients g are w = C^-1 (x - a mu) / 2 (the caller scales back)."""
    ks = range(chunk)
    out = []
    for k in ks:
        if inverse:  # delta = x - a mu, w = W delta, l = kap - delta . w
            out += [f"dl{k}_{r} = x{r} - am{k}_{r}" for r in range(d)]
            for r in range(d):
                out.append(f"g{k}_{r} = {_w(k, r, 0)} * dl{k}_0")
                out += [f"g{k}_{r} = fma({_w(k, r, c)}, dl{k}_{c}, g{k}_{r})"
                        for c in range(1, d)]
            out.append(f"l{k} = kap{k}")
            out += [f"l{k} = fma(-dl{k}_{r}, g{k}_{r}, l{k})" for r in range(d)]
            continue
        for r in range(d):
            proj = " + ".join(f"a{k}_{r}_{c} * x{c}" for c in range(d))
            out.append(f"y{k}_{r} = (({proj}) + n{k}_{r}) * h{k}_{r}")
        # l = kap - y_0^2 - ... in that order, each square exact inside an FMA
        out.append(f"l{k} = kap{k}")
        out += [f"l{k} = fma(-y{k}_{r}, y{k}_{r}, l{k})" for r in range(d)]
    mc, sc, mu, m2 = ("m", "sw", "mu", "M2") if first else ("mc", "swc", "nu", "M2c")
    out.append(f"{mc} = l0")
    out += [f"{mc} = l{k} if l{k} > {mc} else {mc}" for k in ks[1:]]
    out += [f"e{k} = lane_exp(l{k} - {mc})" for k in ks]
    out.append(f"{sc} = " + " + ".join(f"e{k}" for k in ks))
    for k in ks if not inverse else ():
        for c in range(d):
            out.append(f"g{k}_{c} = v{k}_0_{c} * y{k}_0")
            out += [f"g{k}_{c} = fma(v{k}_{r}_{c}, y{k}_{r}, g{k}_{c})" for r in range(1, d)]
    out.append(f"rc = ONE / {sc}")
    for c in range(d):
        out.append(f"{mu}{c} = e0 * g0_{c}")
        out += [f"{mu}{c} = fma(e{k}, g{k}_{c}, {mu}{c})" for k in ks[1:]]
        out.append(f"{mu}{c} = {mu}{c} * rc")
    for k in ks:  # e_k (|g_k - mu|^2 - tr_k), summed over the chunk
        out.append(f"q{k} = (g{k}_0 - {mu}0) * (g{k}_0 - {mu}0)")
        out += [f"q{k} = fma(g{k}_{c} - {mu}{c}, g{k}_{c} - {mu}{c}, q{k})" for c in range(1, d)]
    out.append(f"{m2} = e0 * (q0 - tr0)")
    out += [f"{m2} = fma(e{k}, q{k} - tr{k}, {m2})" for k in ks[1:]]
    if not first:  # merge the chunk into the running sums (Chan, Golub and LeVeque)
        out += ["dm = mc - m",
                "up = dm > ZERO",
                "ee = lane_exp(-dm if up else dm)",
                "al = ee if up else ONE",
                "be = ONE if up else ee",
                "m = mc if up else m",
                "sa = sw * al",
                "sb = swc * be",
                "sw = sa + sb",
                "rt = ONE / sw",
                "dd = (nu0 - mu0) * (nu0 - mu0)"]
        out += [f"dd = fma(nu{c} - mu{c}, nu{c} - mu{c}, dd)" for c in range(1, d)]
        out += ["M2 = fma(M2, al, fma(M2c, be, dd * (sa * sb * rt)))"]
        out += [f"mu{c} = fma(sa, mu{c}, sb * nu{c}) * rt" for c in range(d)]
    return [ind + line for line in out]


def _w(k, r, c):
    """Name of the entry (r, c) of component k's symmetric W = C^-1 / 2 (upper triangle)."""
    return f"w{k}_{min(r, c)}_{max(r, c)}"


def generate(d: int, dtype=np.float64, chunk: int | None = None, inverse: bool = False) -> str:
    """:func:`._unrolled_mixture_numba.block_source` (its documentation)."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d: expected an int >= 1, got {d!r}")
    chunk = chunk_size(d, None, inverse) if chunk is None else chunk
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    f32 = _is_f32(dtype)
    npt = "np.float32" if f32 else "np.float64"
    exp_import = ("from scorebench.analytic._numba_exp import fast_exp_f32 as exp_le0"
                  if f32 else "from scorebench.analytic._numba_exp import exp_le0")
    I2, I3, I4, I5 = (" " * n for n in (4, 8, 12, 16))
    B, NP, CHUNK = BLOCK, n_params(d, inverse), int(chunk)
    state = ["m", "sw", "M2"] + [f"mu{c}" for c in range(d)]
    out = [
        f"# generated by scorebench.analytic._unrolled_mixture_numba; helpers {_helpers_hash()}",
        "import numpy as np",
        "from numba import carray, cfunc, njit",
        exp_import,
        "from scorebench.analytic._numba_intrinsics import fma",
        "from scorebench.analytic._unrolled_mixture_numba import block_signature",
        "# literals of the kernel's dtype (a bare 1.0 is a float64 and would promote float32)",
        f"ONE, ZERO = {npt}(1.0), {npt}(0.0)",
        f"MTWO, FOUR = {npt}(-2.0), {npt}(4.0)  # the inverse form's g = -2 w, M2 = 4 M2(w)",
        "",
        "",
        "# a plain call, which LLVM inlines: inlining many copies in numba's IR is slow to compile",
        "@njit(cache=True, fastmath={'contract'})",
        "def lane_exp(x):",
        "    return exp_le0(x)",
        "",
        "",
        "# no contraction (fastmath flags apply to inlined callees too): the projection rounds as",
        "# in the numpy reference; the exponential keeps its FMAs (its own flags)",
        f"@cfunc(block_signature({npt}), cache=True, error_model='numpy')",
        "def block(xp, pp, stp, mp, sp, scp, lapp, nk):",
        f"{I2}X = carray(xp, ({B}, {d}))",
        f"{I2}P = carray(pp, (nk * {CHUNK}, {NP}))",
        f"{I2}ST = carray(stp, ({len(state) + d}, {B}))",
        f"{I2}XT = ST[{len(state)}:]",
        f"{I2}for b in range({B}):  # transposed: one interleaved vector load per row",
        *[f"{I3}XT[{c}, b] = X[b, {c}]" for c in range(d)],
        f"{I2}for j in range(nk):  # chunks of {CHUNK} components",
        f"{I3}o = j * {CHUNK}",
    ]
    for k in range(CHUNK) if inverse else ():
        out += [f"{I3}{_w(k, r, c)} = P[o + {k}, {r * d + c}]"
                for r in range(d) for c in range(r, d)]
        out += [f"{I3}am{k}_{c} = P[o + {k}, {d * d + c}]" for c in range(d)]
        out.append(f"{I3}kap{k} = P[o + {k}, {d * d + d}]")
        out.append(f"{I3}tr{k} = P[o + {k}, {d * d + d + 1}]")
    for k in range(CHUNK) if not inverse else ():
        out += [f"{I3}a{k}_{r}_{c} = P[o + {k}, {r * d + c}]" for r in range(d) for c in range(d)]
        out += [f"{I3}v{k}_{r}_{c} = P[o + {k}, {d * d + r * d + c}]"
                for r in range(d) for c in range(d)]
        out += [f"{I3}n{k}_{c} = P[o + {k}, {2 * d * d + c}]" for c in range(d)]
        out += [f"{I3}h{k}_{c} = P[o + {k}, {2 * d * d + d + c}]" for c in range(d)]
        out.append(f"{I3}kap{k} = P[o + {k}, {2 * d * d + 2 * d}]")
        out.append(f"{I3}tr{k} = P[o + {k}, {2 * d * d + 2 * d + 1}]")
    for first in (True, False):
        out.append(f"{I3}{'if j == 0' if first else 'else'}:")
        out.append(f"{I4}for b in range({B}):")
        out += [f"{I5}x{c} = XT[{c}, b]" for c in range(d)]
        if not first:
            out += [f"{I5}{name} = ST[{i}, b]" for i, name in enumerate(state)]
        out += _chunk_lines(d, CHUNK, first, I5, inverse)
        out += [f"{I5}ST[{i}, b] = {name}" for i, name in enumerate(state)]
    # the outputs, one array per loop (LLVM vectorises a loop only when its arrays provably
    # do not overlap, and gives up beyond a few run-time checks)
    out += [
        f"{I2}M = carray(mp, ({B},))",
        f"{I2}S = carray(sp, ({B},))",
        f"{I2}SC = carray(scp, ({B}, {d}))",
        f"{I2}LAP = carray(lapp, ({B},))",
        f"{I2}for b in range({B}):",
        f"{I3}M[b] = ST[0, b]",
        f"{I2}for b in range({B}):",
        f"{I3}S[b] = ST[1, b]",
        f"{I2}for b in range({B}):",
        f"{I3}LAP[b] = {'FOUR * ' if inverse else ''}(ST[2, b] / ST[1, b])",
        f"{I2}for b in range({B}):  # back to rows: interleaved vector stores",
        *[f"{I3}SC[b, {c}] = {'MTWO * ' if inverse else ''}ST[{3 + c}, b]" for c in range(d)],
    ]
    return "\n".join(_single_assignment(out)) + "\n"


_ASSIGN = re.compile(r"^(\s*)([A-Za-z_]\w*) = (.*)$")


def _single_assignment(lines):
    """The lines with every plain name assigned once: a name's later assignments get new names
    (``name__1``, ...) and its later uses the latest. The same arithmetic, but numba's SSA
    reconstruction has nothing to do: with names reassigned in every step of a chain and in
    both branches of the chunk loop it took most of a kernel's compile time."""
    seen: set = set()
    version: dict = {}
    pattern = None
    out = []
    for line in lines:
        m = _ASSIGN.match(line)
        head, body = (m.group(1), m.group(3)) if m else ("", line)
        if pattern is not None:  # uses of renamed names: the latest version
            body = pattern.sub(lambda t: f"{t.group(0)}__{version[t.group(0)]}", body)
        if not m:
            out.append(body)
            continue
        name = m.group(2)
        if name in seen:
            version[name] = version.get(name, 0) + 1
            pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, version)) + r")\b")
            name = f"{name}__{version[name]}"
        seen.add(m.group(2))
        out.append(f"{head}{name} = {body}")
    return out
