"""The machine's limits for the fused workloads, measured in the same run: exp and normal draws.

The fused samplers and the likelihood kernel spend their time on K exponentials per score
evaluation and (samplers) d normal draws per step; everything else is a few flops per
component. The bound of a workload is

    bound = n_exp * t_exp + n_normal * t_normal,

with n_exp = N K (evaluations per sample), n_normal = N d steps, and t_exp, t_normal the time
per element of the fastest implementation measured here:

* ``np.exp`` on a float64 array (one thread; numpy's SIMD exp) and the fused kernels'
  branch-free ``fast_exp`` on all numba threads, each sweeping a cache-resident block
  (:func:`scorebench.bench.bounds.exp_in_cache`: the kernels' exponentials never touch memory,
  so a streamed array would measure the memory bandwidth instead) (wall time per element);
* ``numpy.random.Generator.standard_normal`` (PCG64, ziggurat; one thread) and the fused
  kernels' xoshiro256++ normals on all numba threads (the better of the scalar ziggurat and the
  lane-vectorised Box–Muller pairs).

The issue's reference bound (1.5 s for workload c on 2 cores, 5 ms of exp for 92 likelihood
evaluations) is the numpy single-thread one; both are reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from scorebench.bench.bounds import exp_in_cache, normals_in_lanes
from scorebench.solvers._numba_math import seed_stream, standard_normal

__all__ = ["Rates", "measure_rates"]

_N = 1 << 22  # elements per measurement: 32 MB, far beyond the caches


@njit(cache=True, parallel=True)
def _normals_all_threads(out, seed):
    nchunks = 64
    per = out.size // nchunks
    for c in prange(nchunks):
        state = seed_stream(seed, c)
        for i in range(c * per, (c + 1) * per):
            out[i], state = standard_normal(state)


def _best(fn, repeats=5):
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@dataclass
class Rates:
    """Seconds per element of each primitive (see the module docstring)."""

    exp_numpy: float
    exp_numba: float
    normal_numpy: float
    normal_numba: float
    threads: int

    @property
    def exp(self) -> float:
        return min(self.exp_numpy, self.exp_numba)

    @property
    def normal(self) -> float:
        return min(self.normal_numpy, self.normal_numba)

    def bound(self, n_exp: float, n_normal: float = 0.0) -> float:
        """Seconds for the given numbers of exponentials and normal draws at the best rates."""
        return n_exp * self.exp + n_normal * self.normal

    def bound_numpy(self, n_exp: float, n_normal: float = 0.0) -> float:
        """The same at numpy's single-thread rates (the issue's reference definition)."""
        return n_exp * self.exp_numpy + n_normal * self.normal_numpy

    def as_dict(self) -> dict:
        return {"exp_numpy_ns": self.exp_numpy * 1e9, "exp_numba_ns": self.exp_numba * 1e9,
                "normal_numpy_ns": self.normal_numpy * 1e9,
                "normal_numba_ns": self.normal_numba * 1e9, "threads": self.threads}


def measure_rates(n: int = _N) -> Rates:
    """Measure the four rates (best of 5 repeats each)."""
    x = -30.0 * np.random.default_rng(0).random(n)  # the range log-sum-exp weights live in
    out = np.empty(n)
    gen = np.random.default_rng(1)
    threads = numba.get_num_threads()
    xc = np.ascontiguousarray(x[:threads * 4096].reshape(threads, 4096))  # 32 KB per thread
    outc = np.empty_like(xc)
    sweeps = max(1, n // xc.size)
    return Rates(
        exp_numpy=_best(lambda: np.exp(x, out=out)) / n,
        exp_numba=_best(lambda: exp_in_cache(xc, outc, sweeps)) / (xc.size * sweeps),
        normal_numpy=_best(lambda: gen.standard_normal(out=out)) / n,
        normal_numba=min(_best(lambda: _normals_all_threads(out, np.uint64(2))),
                         _best(lambda: normals_in_lanes(out, np.uint64(2)))) / n,
        threads=numba.get_num_threads(),
    )
