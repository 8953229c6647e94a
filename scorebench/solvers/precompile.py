"""Compile the fused numba kernels ahead of their first use, several processes at a time.

numba compiles a kernel on its first call and caches the machine code on disk; the fused
kernels take 20-35 s each on one core (float64 and float32 apiece), so the first likelihood or
sampling call after an install waits minutes. :func:`precompile` runs the compilations in
parallel worker processes (one per CPU by default), each group calling the public entry points on
a few points so that exactly the signatures later calls use get compiled and cached. Groups are
split by top-level kernel (numba keeps one cache index per function, and two processes adding
different signatures to one index could lose one of them).

``scorebench precompile`` runs it from the command line (every group, every kernel);
``scorebench bench`` runs it first when the kernels of this installation were never compiled,
for what the bench itself runs (:data:`BENCH_GROUPS`, scope ``"bench"``: ~100 s on 2 cores
against ~125 s for everything). A marker file in the generated-kernel cache directory
(:mod:`scorebench.analytic._generated_modules`), named by a hash of the solver and oracle
sources, the numba version and the groups and scope, records a completed run.

Run ``python -m scorebench.solvers.precompile GROUP [SCOPE]`` to compile one group in that
process.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["GROUPS", "BENCH_GROUPS", "SCOPES", "compile_group", "is_precompiled",
           "precompile"]

# longest first, so that two processes finish together (seconds, cold, two at a time on the
# 2-vCPU AMD EPYC machine, bench scope): oracle ~63 (float64 and float32 kernels), likelihood
# ~46 (float64) and likelihood_f32 ~41 (the same kernel in float32: one group took 80-97 s and
# was the whole critical path; the two signatures can compile in parallel because workers
# serialise their writes to numba's cache index, _serialise_cache_index_writes), pc ~43,
# em ~27; generated ~65 (the oracle's generated kernels of every d and form: 1-4 s each; the
# generic kernel's passes for d = 9..15: ~1.3 s each)
GROUPS = ("oracle", "generated", "likelihood", "likelihood_f32", "pc", "em")
# what ``scorebench bench`` compiles before it runs (it needs no other generated kernel than
# the oracle group's; the generated group would add ~20 s to its 3 minutes from an install),
# in the "bench" scope of compile_group
BENCH_GROUPS = ("oracle", "likelihood", "likelihood_f32", "pc", "em")
_LIKELIHOOD_DTYPES = {"likelihood": np.float64, "likelihood_f32": np.float32}
SCOPES = ("all", "bench")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the directory holding scorebench/


def _ring(K=8):
    from scorebench.analytic.mixture import GaussianMixture

    ang = 2 * np.pi * np.arange(K) / K
    return GaussianMixture.isotropic(np.ones(K), 2.0 * np.c_[np.cos(ang), np.sin(ang)],
                                     np.full(K, 0.05))


def _full(d=5, K=2):  # the generic lanes kernels; the oracle: generated (inverse form) or generic
    from scorebench.analytic.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    A = rng.standard_normal((K, d, d))
    return GaussianMixture(np.ones(K), rng.standard_normal((K, d)),
                           A @ A.transpose(0, 2, 1) / d + 0.1 * np.eye(d))


def _bench_skips(name: str, mix_name: str, dt) -> bool:
    """What ``scorebench bench`` never runs: the generic lanes kernels (the d = 5 mixture) of
    the samplers, and of the likelihood in float32 (its 16-D case is float64); ~30 s of the
    compile on 2 cores, which would otherwise push the bench past 3 minutes from an install."""
    return mix_name == "full" and (name in ("em", "pc")
                                   or (name == "likelihood_f32" and dt == np.float32))


def compile_group(name: str, scope: str = "all") -> None:
    """Call the entry points of group ``name`` (one of :data:`GROUPS`) on a few points: every
    kernel a call may need (``scope="all"``) or those ``scorebench bench`` runs (``"bench"``)."""
    from scorebench.analytic.oracle import MixtureOracle
    from scorebench.analytic.sde import VPSDE

    from .fused_likelihood_numba import dopri5_loglik_numba
    from .fused_sampling_numba import em_sample_numba, pc_sample_numba
    from .grids import time_grid

    if name not in GROUPS:
        raise ValueError(f"name: expected one of {GROUPS}, got {name!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope: expected one of {SCOPES}, got {scope!r}")
    _serialise_cache_index_writes()
    grid = time_grid("uniform", 3, 1.0, 1e-3)
    # the generated score and the generic lanes kernels (the generated group has its own)
    for mix_name, mix in (("ring", _ring()), ("full", _full())) if name != "generated" else ():
        oracle = MixtureOracle(mix, VPSDE(), backend="numba")
        x = np.random.default_rng(1).standard_normal((8, mix.d))
        for dt in (np.float64, np.float32):
            xd = x.astype(dt)
            if scope == "bench" and _bench_skips(name, mix_name, dt):
                continue
            if name in _LIKELIHOOD_DTYPES and dt != _LIKELIHOOD_DTYPES[name]:
                continue
            if name == "em":
                em_sample_numba(oracle, xd, grid, seed=1)
                pc_sample_numba(oracle, xd, grid, seed=1, norm="sample")
            elif name == "pc":
                pc_sample_numba(oracle, xd, grid, seed=1)
            elif name in _LIKELIHOOD_DTYPES:
                dopri5_loglik_numba(oracle, xd, 1e-3, prior="exact")  # + its prior pass
        if name == "oracle":  # common time: a generated kernel (d <= 8); per point: generic
            # small calls run the serial drivers, from 2^15 (point, component) pairs the parallel
            # ones; the bench's small calls are float64 at a common time (its N curve), and
            # without the serial generic kernel a small call runs the parallel one on one
            # thread (_numba_launch): the bench scope skips the rest (~10 s of its compile)
            oracle.score_and_laplacian(x, 0.5)
            if scope == "all":
                oracle.score_and_laplacian(x, np.full(x.shape[0], 0.5))
            oracle.log_prob(x, 0.5)
            oracle.sample(8, 0.5, np.random.default_rng(2))
            big = np.random.default_rng(3).standard_normal(((1 << 15) // mix.K + 1, mix.d))
            oracle.score_and_laplacian(big, 0.5)
            oracle.score_and_laplacian(big, np.full(big.shape[0], 0.5))
            # float32 points: the float32 kernels (generated for d <= 8, generic above)
            if scope == "all":
                oracle.score_and_laplacian(x.astype(np.float32), 0.5)
            oracle.score_and_laplacian(big.astype(np.float32), 0.5)
    if name == "oracle":  # d = 9: the generic kernel at a common time too (BLAS products)
        from scorebench.analytic._unrolled_mixture_numba import block_function

        for K in (1, 2, 4):  # fewer components than a chunk, in 2-D (the bench's K curve; ~1 s)
            block_function(2, np.float64, K, True)
        block_function(8, np.float64, 8, True)  # the bench's d curve
        from scorebench.analytic._generated_passes_numba import pass_functions

        for dt in (np.float64, np.float32):  # the generic kernel's passes for the bench's d = 16
            pass_functions(16, dt)
        big = _full(9, 3)
        oracle = MixtureOracle(big, VPSDE(), backend="numba")
        x = np.random.default_rng(4).standard_normal(((1 << 15) // big.K + 1, big.d))
        for dt in (np.float64, np.float32):
            if scope == "all":
                oracle.score_and_laplacian(x[:8].astype(dt), 0.5)
            oracle.score_and_laplacian(x.astype(dt), 0.5)
    if name == "generated":  # the oracle's generated kernels, each its own module (1-4 s each)
        from scorebench.analytic import _generated_passes_numba as passes
        from scorebench.analytic._unrolled_mixture_numba import (MAX_D, MAX_D_INVERSE,
                                                                 block_function)

        # the generic kernel's generated passes (~1.3 s each; d = 16: the oracle group's)
        for d in range(passes.MAX_D - 1, passes.MIN_D - 1, -1):
            for dt in (np.float64, np.float32):
                passes.pass_functions(d, dt)

        # largest first: the oracle group compiles the ring's (d = 2) and d = 5 ones itself
        for d in range(MAX_D_INVERSE, 0, -1):
            for dt in (np.float64, np.float32):
                block_function(d, dt, None, True)
                if d <= MAX_D:
                    block_function(d, dt, None, False)


def _serialise_cache_index_writes() -> None:
    """Make this process's writes to numba's on-disk cache indexes exclusive (``flock`` on a
    lock file beside each index) for the rest of the process.

    numba saves a compiled signature by loading the function's index, adding the entry and
    writing the index back; two processes compiling signatures of one function (the
    likelihood kernel in float64 and in float32) could interleave those steps, and one entry
    (and its data file, whose name is picked from the index) would be lost and compiled again
    on first use. Under the lock each save sees the other's entries. Without ``fcntl`` (not
    POSIX) nothing changes.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX machines have it
        return
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if getattr(cls.save, "_scorebench_locked", False):
        return
    unlocked = cls.save

    def save(self, key, data):
        with open(self._index_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                unlocked(self, key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    save._scorebench_locked = True
    cls.save = save


def _source_hash() -> str:
    import numba
    from numba.core import config

    h = hashlib.sha256(numba.__version__.encode())
    # the code generator's target (scorebench._vector_width may set it): numba caches kernels
    # per CPU name and features, so a process configured otherwise has not been precompiled for
    h.update(f"{config.CPU_NAME}|{config.CPU_FEATURES}".encode())
    root = Path(__file__).resolve().parent.parent
    for sub in ("solvers", "analytic"):
        for f in sorted((root / sub).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _marker(groups=GROUPS, scope="all") -> Path:
    from ..analytic._generated_modules import cache_dir

    tag = "" if set(groups) == set(GROUPS) else "-" + "-".join(sorted(groups))
    tag += "" if scope == "all" else f"-{scope}"
    return cache_dir() / f"precompiled-{_source_hash()}{tag}"


def is_precompiled(groups=GROUPS, scope="all") -> bool:
    """Whether :func:`precompile` completed ``groups`` in ``scope`` (or every group in every
    scope) for these sources and this numba version."""
    return _marker().exists() or _marker(groups, scope).exists()


def _worker_command(group: str, scope: str = "all") -> list:
    """The command of the worker compiling ``group``.

    Workers import this very scorebench, not one that a ``-m`` run would find first in the
    working directory (a source checkout there would compile into its own cache).
    """
    code = (f"import sys; sys.path.insert(0, {str(_PACKAGE_ROOT)!r}); "
            "from scorebench.solvers.precompile import compile_group; "
            f"compile_group({group!r}, {scope!r})")
    return [sys.executable, "-c", code]


def precompile(processes: int | None = None, groups=GROUPS, scope: str = "all") -> dict:
    """Compile ``groups`` in worker processes, ``processes`` at a time (default: CPU count), in
    ``scope`` (see :func:`compile_group`).

    Returns ``{group: seconds}``; a group whose worker failed maps to its error message (the
    kernels then compile on first use, as without this step). Writes the marker of
    :func:`is_precompiled` for ``groups`` when every one of them succeeded.
    """
    if processes is None:
        processes = os.cpu_count() or 1
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes: expected an int >= 1, got {processes!r}")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"groups: unknown {unknown}; expected some of {GROUPS}")
    if scope not in SCOPES:
        raise ValueError(f"scope: expected one of {SCOPES}, got {scope!r}")
    pending = list(groups)
    running: dict = {}
    result: dict = {}
    while pending or running:
        while pending and len(running) < processes:
            g = pending.pop(0)
            # stderr to a file, not a pipe: a worker warning past the pipe's buffer would block
            err = tempfile.TemporaryFile("w+")
            running[g] = (subprocess.Popen(_worker_command(g, scope), stdout=subprocess.DEVNULL,
                                           stderr=err, text=True), err, time.perf_counter())
        time.sleep(0.05)
        for g, (proc, errfile, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
            del running[g]
            if proc.returncode == 0:
                result[g] = time.perf_counter() - t0
            else:
                last = err.strip().splitlines()[-1] if err.strip() else ""
                result[g] = f"exit status {proc.returncode}: {last}"
    if all(isinstance(v, float) for v in result.values()):
        _marker(groups, scope).write_text("".join(f"{g} {result[g]:.1f} s\n" for g in groups))
    return result


if __name__ == "__main__":  # pragma: no cover - run in the worker processes
    compile_group(*sys.argv[1:3])
