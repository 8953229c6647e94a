r"""The limit of this machine, measured in the same run as the workloads.

Three rates, each the best of numpy and numba on all cores:

* **exponential**: seconds per ``exp`` -- numpy's SIMD ``np.exp`` run on one chunk per thread
  (ufunc loops release the GIL, so the threads really run in parallel) and the branch-free
  :func:`scorebench.solvers._numba_math.fast_exp` (what the fused kernels call; libm's scalar
  ``exp`` is several times slower) in a ``prange`` loop, both streaming a large array, and
  ``fast_exp`` sweeping one cache-resident block per thread (:func:`exp_in_cache`): the
  tighter limit, since the kernels' exponentials never touch memory;
* **normal draws**: seconds per standard normal -- numpy's ``Generator.standard_normal`` (one
  generator per thread), the fused kernels' xoshiro256++ ziggurat in a ``prange`` loop, and
  their lane-vectorised Box–Muller pairs (what the fused EM draws);
* **matrix multiply**: flops per second -- numpy's BLAS ``dgemm`` on a square product (BLAS's
  own threads), and numba on the shape the mixture kernels multiply, a batch of (64, 64) x
  (64, 64) products in a ``prange`` loop, one single-threaded ``dgemm`` per block (what
  :mod:`scorebench.analytic._mixture_numba` does from d = 8).

A workload's bound is the time its operation count implies at these rates
(:func:`bound_seconds`; counts in :mod:`.workloads`), and its *fraction of the bound* is
``bound / wall`` (1 = at the limit). The bench measures the rates several times over its run
and keeps the best of each (:func:`best_of`), so that a slow second on a shared machine does
not lower the bound's rates and flatter every fraction.

The float32 kernels' own limit is measured too, by the same methods in float32:
:func:`scorebench.analytic._numba_exp.fast_exp_f32` in cache (twice the lanes per vector, a
7-term polynomial) and ``sgemm`` on the same blocks. Every row's fraction is against the float64
bound (so that rows compare); float32 rows also give their fraction of the float32 bound.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numba
import numpy as np
from numba import njit, prange

from scorebench.analytic._numba_exp import fast_exp_f32
from scorebench.solvers._lane_normals_numba import lanes_normal_pairs
from scorebench.solvers._numba_math import fast_exp, seed_stream, standard_normal

__all__ = ["MachineBounds", "measure_bounds", "best_of", "bound_seconds", "exp_in_cache",
           "exp_in_cache_f32", "normals_in_lanes"]

_BLOCK = 8192


@njit(cache=True, parallel=True, fastmath={"contract"})
def _exp_fast(x, out):
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            out[i] = fast_exp(x[i])


@njit(cache=True, parallel=True, fastmath={"contract"})
def exp_in_cache(x, out, sweeps):
    """``sweeps`` passes of ``out[j] = fast_exp(x[j])`` over one cache-resident block per thread.

    ``x`` and ``out`` have shape (threads, block): each thread exponentiates its own row again
    and again, so the rate is the arithmetic limit of the kernels' exponential (whose arguments
    and results live in registers and L1), not the memory bandwidth that streaming a large
    array measures. Counts ``threads * block * sweeps`` exponentials.
    """
    for r in prange(x.shape[0]):
        for _ in range(sweeps):
            for j in range(x.shape[1]):
                out[r, j] = fast_exp(x[r, j])


@njit(cache=True, parallel=True, fastmath={"contract"})
def exp_in_cache_f32(x, out, sweeps):
    """:func:`exp_in_cache` for float32 ``x`` and ``out`` with ``fast_exp_f32``."""
    for r in prange(x.shape[0]):
        for _ in range(sweeps):
            for j in range(x.shape[1]):
                out[r, j] = fast_exp_f32(x[r, j])


@njit(cache=True, parallel=True)
def normals_in_lanes(out, seed):
    """Normals by :func:`~scorebench.solvers._lane_normals_numba.lanes_normal_pairs` (what the
    fused EM kernel draws): 64 lanes seeded once per chunk, chunks in parallel; ``out.size``
    must be a multiple of 128 times the 64 chunks."""
    nchunks, per_round = 64, 2 * 64
    rounds = out.shape[0] // (nchunks * per_round)
    for c in prange(nchunks):
        rs = np.empty((4, 64), np.uint64)
        for b in range(64):
            rs[0, b], rs[1, b], rs[2, b], rs[3, b] = seed_stream(seed, c * 64 + b)
        Z = np.empty((2, 64))
        base = c * rounds * per_round
        for r in range(rounds):
            lanes_normal_pairs(rs, Z, 0, 64)
            o = base + r * per_round
            for k in range(2):
                for b in range(64):
                    out[o + k * 64 + b] = Z[k, b]


@njit(cache=True, parallel=True)
def _normals(out, seed):
    n = out.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        st = seed_stream(seed, b)
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            z, st = standard_normal(st)
            out[i] = z


@njit(cache=True, parallel=True)
def _batched_dot(M, X, out):
    """out[k] = M[k] @ X[k] through BLAS, one single-threaded dgemm per block (as the kernels)."""
    for k in prange(X.shape[0]):
        np.dot(M[k], X[k], out[k])


@dataclass(frozen=True)
class MachineBounds:
    """Best measured rates on all cores (see the module docstring).

    Attributes
    ----------
    t_exp : float
        Seconds per exponential.
    t_normal : float
        Seconds per standard normal draw.
    r_mm : float
        Matrix-multiply flops per second.
    t_exp32, r_mm32 : float
        The same two rates in float32 (``fast_exp_f32`` in cache; batched ``sgemm``).
    measurements : int
        How many :func:`measure_bounds` runs these are the best of (:func:`best_of`).
    threads : int
        numba threads used.
    detail : dict
        Every measured rate by implementation (the best of each family is the bound).
    """

    t_exp: float
    t_normal: float
    r_mm: float
    threads: int
    detail: dict
    t_exp32: float = math.nan
    r_mm32: float = math.nan
    measurements: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


def _best(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _threaded(fn, n_threads: int):
    """Run ``fn(i)`` for i < n_threads on a thread pool; returns a callable."""
    def run():
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(fn, range(n_threads)))
    return run


def measure_bounds(n: int = 1 << 23, repeats: int = 5, matmul_n: int = 1024) -> MachineBounds:
    """Measure the exponential, normal-draw and matrix-multiply rates of this machine now.

    Parameters
    ----------
    n : int
        Exponentials and normal draws per timed call. Every timed call should take well over
        the ~10 ms a parallel region can wait for descheduled threads on a shared machine.
    repeats : int
        Best of this many timed calls (after one untimed warm-up that also compiles).
    matmul_n : int
        Size of the square ``dgemm``.
    """
    threads = numba.get_num_threads()
    x = -30.0 * np.random.default_rng(0).random(n)  # the range log-sum-exp weights live in
    out = np.empty_like(x)
    chunks = np.array_split(np.arange(n), threads)
    spans = [(c[0], c[-1] + 1) for c in chunks]

    def np_exp(i):
        lo, hi = spans[i]
        np.exp(x[lo:hi], out=out[lo:hi])

    gens = [np.random.default_rng(i) for i in range(threads)]

    def np_normal(i):
        lo, hi = spans[i]
        gens[i].standard_normal(out=out[lo:hi])

    xc = np.ascontiguousarray(x[:threads * _BLOCK // 2].reshape(threads, _BLOCK // 2))
    outc = np.empty_like(xc)
    sweeps = max(1, n // xc.size)
    detail = {}
    for name, fn in (
        ("exp numpy (threads)", _threaded(np_exp, threads)),
        ("exp numba fast_exp", lambda: _exp_fast(x, out)),
        ("exp numba fast_exp (in cache)", lambda: exp_in_cache(xc, outc, sweeps)),
        ("normal numpy (threads)", _threaded(np_normal, threads)),
        ("normal numba ziggurat", lambda: _normals(out, np.uint64(7))),
        ("normal numba Box-Muller lanes", lambda: normals_in_lanes(out, np.uint64(7))),
    ):
        fn()  # warm-up / compile
        count = xc.size * sweeps if name.endswith("(in cache)") else n
        detail[name] = _best(fn, repeats) / count  # seconds per element
    A = np.random.default_rng(1).standard_normal((matmul_n, matmul_n))
    B = np.random.default_rng(2).standard_normal((matmul_n, matmul_n))
    A @ B
    detail["matmul numpy dgemm (flop/s)"] = 2.0 * matmul_n**3 / _best(lambda: A @ B, repeats)
    # the kernels' shape: (d, d) x (d, B) blocks, d = B = 64 (OpenBLAS keeps a product this
    # small on the calling thread), blocks in parallel over numba's threads
    d, bsz, nb = 64, 64, 2048
    M = np.random.default_rng(3).standard_normal((nb, d, d))
    X = np.random.default_rng(4).standard_normal((nb, d, bsz))
    Y = np.empty_like(X)
    flops = 2.0 * d * d * bsz * nb
    _batched_dot(M, X, Y)
    detail["matmul numba + BLAS dgemm, 64x64x64 blocks (flop/s)"] = (
        flops / _best(lambda: _batched_dot(M, X, Y), repeats))
    # float32: the same cache-resident exponential sweep and batched products
    xc32, outc32 = xc.astype(np.float32), np.empty(xc.shape, np.float32)
    M32, X32, Y32 = M.astype(np.float32), X.astype(np.float32), np.empty(X.shape, np.float32)
    exp_in_cache_f32(xc32, outc32, sweeps)
    _batched_dot(M32, X32, Y32)
    detail[_F32_EXP] = (
        _best(lambda: exp_in_cache_f32(xc32, outc32, sweeps), repeats) / (xc.size * sweeps))
    detail[_F32_MM] = flops / _best(lambda: _batched_dot(M32, X32, Y32), repeats)
    return _from_detail(detail, threads)


_F32_EXP = "float32 exp numba fast_exp_f32 (in cache)"
_F32_MM = "float32 matmul numba + BLAS sgemm, 64x64x64 blocks (flop/s)"


def _from_detail(detail: dict, threads: int, measurements: int = 1) -> MachineBounds:
    """The bounds from every measured rate: the best of each family (float32 apart)."""
    f64 = {k: v for k, v in detail.items() if not k.startswith("float32")}
    return MachineBounds(
        t_exp=min(v for k, v in f64.items() if k.startswith("exp")),
        t_normal=min(v for k, v in f64.items() if k.startswith("normal")),
        r_mm=max(v for k, v in f64.items() if k.startswith("matmul")),
        threads=threads, detail=dict(detail), t_exp32=detail[_F32_EXP],
        r_mm32=detail[_F32_MM], measurements=measurements)


def best_of(measured) -> MachineBounds:
    """The best rate of each implementation over several :func:`measure_bounds` results.

    A bound is what the machine can do; on a shared machine one measurement can fall in a
    slow second (another tenant, a descheduled thread) and then make every fraction of the
    bound look better than it is: one quick-bench run measured exp at 0.72 ns and dgemm at
    54 GFLOP/s where the runs around it measured 0.37 ns and 104 GFLOP/s. Rates in flop/s take
    the largest value, seconds per element the smallest.
    """
    measured = list(measured)
    if not measured:
        raise ValueError("measured: expected at least one MachineBounds")
    detail: dict = {}
    for b in measured:
        for k, v in b.detail.items():
            better = max if k.endswith("(flop/s)") else min
            detail[k] = v if k not in detail else better(detail[k], v)
    return _from_detail(detail, measured[0].threads,
                        sum(b.measurements for b in measured))


def bound_seconds(bounds: MachineBounds, exps: float = 0.0, normals: float = 0.0,
                  flops: float = 0.0, precision: str = "float64") -> float:
    """Time the operation count implies: ``exps t_exp + normals t_normal + flops / R_mm``,
    with the float32 rates ``t_exp32``, ``r_mm32`` for ``precision="float32"`` (the normal
    draws' rate is float64's either way)."""
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision: expected 'float64' or 'float32', got {precision!r}")
    t_exp, r_mm = ((bounds.t_exp32, bounds.r_mm32) if precision == "float32"
                   else (bounds.t_exp, bounds.r_mm))
    return exps * t_exp + normals * bounds.t_normal + flops / r_mm
