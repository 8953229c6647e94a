"""Run the bench: bounds, cases, scaling curves; rows with ratios computed within the run.

:func:`run_bench` returns the whole report as a JSON-ready dict (``rows``, ``curves``,
``work_precision``, ``targets``, ``bounds``, ``environment``); :mod:`.report` writes it. An
implementation that raises becomes a row with ``status: "error"`` and the message; one that is
not installed a row with ``status: "skipped"`` and a note; the bench goes on either way.

Ratios, per case, from the median wall times of the rows that ran: ``speedup_vs_best_peer`` is
the fastest peer's time (peers and the seed-style baseline) over the row's, and
``speedup_vs_baseline`` the baseline's time over the row's (> 1: faster). ``fraction_of_bound``
is the bound the row's own operation count implies over its median time (1 = at the limit).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time

import numpy as np

from .bounds import best_of, bound_seconds, measure_bounds
from .case import Case, Curve
from .measure import PeakMemory, fit_exponent, time_repeats
from .targets import evaluate_targets, work_precision_summary
from .workloads import sizes_for

__all__ = ["run_bench", "run_case", "run_curve", "choose_torch_threads", "passive_openmp"]


def _note(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]


def passive_openmp() -> dict:
    """Make idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``, unless set).

    numba's parallel kernels (the ``omp`` threading layer, the system's libgomp) and torch (its
    own bundled libgomp) are two OpenMP runtimes in one process. With the default active
    waiting, the threads of one spin after each parallel region and starve the other's:
    measured here, a 5,000-point score call took 12 ms instead of 0.35 ms after torch had run,
    torch calls 0.3 s instead of 4 ms after numba had, and the d = 128 kernel 16 s instead of
    0.09 s. Both runtimes read the variable when they load, so it is set before either does;
    whether that held is recorded. ``GOMP_SPINCOUNT=20000`` (~0.2 ms of spinning before a thread
    sleeps) keeps back-to-back parallel regions fast without that starvation (see
    ``scorebench/__init__.py`` for the measurements).
    """
    def loaded():
        try:
            with open("/proc/self/maps") as fh:
                return "libgomp" in fh.read()
        except OSError:
            return None

    before = loaded()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")  # short spin: see scorebench/__init__.py
    # OpenBLAS's idle threads: the same starvation after every numpy peer's threaded BLAS call
    # (read when numpy loads: set by scorebench/__init__.py before that, recorded here)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
    return {"OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
            "GOMP_SPINCOUNT": os.environ["GOMP_SPINCOUNT"],
            "OPENBLAS_THREAD_TIMEOUT": os.environ["OPENBLAS_THREAD_TIMEOUT"],
            "openmp_loaded_before": before}


def choose_torch_threads() -> dict:
    """Give torch peers their best intra-op thread count: time a score-sized op at 1 and at all.

    On a machine shared with other work, torch's OpenMP threads can be many times slower than
    one thread; the peers get whichever is faster (the choice is recorded).
    """
    import torch

    full = torch.get_num_threads()
    x = torch.randn(4000, 2, dtype=torch.float64)
    m = torch.randn(8, 2, dtype=torch.float64)
    best, times = full, {}
    for n in sorted({1, full}):
        torch.set_num_threads(n)
        for _ in range(3):
            torch.softmax(x @ m.T, dim=1) @ m
        t0 = time.perf_counter()
        for _ in range(30):
            torch.softmax(x @ m.T, dim=1) @ m
        times[n] = time.perf_counter() - t0
    best = min(times, key=times.get)
    torch.set_num_threads(best)
    return {"threads": best, "probe_s": times}


def _set_bound(row: dict, bounds) -> None:
    """The row's bound at ``bounds`` (None without bounds or an operation count) and, once it
    is timed, its fraction of it: every row against the float64 bound; float32 rows
    (``work["precision"]``) also against the float32 one."""
    work = row.get("work") or {}
    work64 = {k: v for k, v in work.items() if k != "precision"}
    bound = bound_seconds(bounds, **work64) if (work and bounds is not None) else None
    bound32 = (bound_seconds(bounds, **work)
               if bound is not None and work.get("precision") == "float32" else None)
    median = row.get("wall_median_s")
    row.update(bound_s=bound, bound_float32_s=bound32,
               fraction_of_bound=None if bound is None or median is None else bound / median,
               fraction_of_float32_bound=(None if bound32 is None or median is None
                                          else bound32 / median))


def run_case(case: Case, sizes, bounds, memory, progress=None) -> list:
    """Time every implementation of ``case``; returns its rows with ratios filled in.

    Each implementation is warmed up and run once (its output gives the accuracy and, for a
    work-precision sweep, whether its family reached the target); the remaining repeats then
    go round-robin over the implementations (:func:`_interleaved_repeats`), so that a change of
    load on a shared machine during the case falls on all rows alike and the ratios between
    them, the figures the bench is for, stay fair. A call whose first run took under 0.5 s runs
    a second time, warm, before the rounds: that run sizes the bursts, and a call faster than
    10 ms is timed in bursts of back-to-back calls lasting ~10 ms (``calls_per_timing`` in its
    row), per call; a slower one has the warm run as its first timing (the cold first run,
    which also measured memory, is in no timing). Calls from 0.5 s on keep their first run as
    a timing (the budget).
    """
    rows, reached, timed = [], set(), []
    for impl in case.impls:
        if case.target is not None and impl.family in reached:
            continue  # work-precision: this family already reached the target at a looser rtol
        row = dict(workload=case.workload, case=case.name, implementation=impl.label,
                   kind=impl.kind, family=impl.family, params={**case.params, **impl.params},
                   status="ok", note=impl.note, unit=case.unit, error_metric=case.error_metric)
        if impl.run is None:
            row["status"] = "skipped"
        else:
            try:
                if impl.warmup is not None:
                    impl.warmup()
                first, out, peak = time_repeats(impl.run, 1, memory=memory)
                max_err, mean_err = case.errors(out.values)
                extra = out.extra if case.details is None else {**out.extra,
                                                                **case.details(out.values)}
                row.update(nfe=out.nfe, peak_mb=None if peak is None else peak / 2**20,
                           memory_method=memory.method, max_err=max_err, mean_err=mean_err,
                           work=out.work, extra=extra)
                _set_bound(row, bounds)
                # a short call's timings are bursts of calls (timeit's way), per call, sized from
                # a second, warm call: the first one ran cold and measured memory (a 2.6 ms call
                # took 12.8 ms cold, was then timed alone after each peer's run, and lost a
                # third of its speed to cold caches); a slow call keeps its first run as a timing
                times = list(first.times)
                if first.times[0] < _WARM_PROBE_S:
                    t0 = time.perf_counter()
                    impl.run()
                    times = [time.perf_counter() - t0]
                calls = _calls_per_timing(min(times[0], first.times[0]))
                row["calls_per_timing"] = calls
                timed.append((row, impl.run, times if calls == 1 else []))
                if case.target is not None and max_err <= case.target:
                    reached.add(impl.family)
            except Exception as exc:  # a failing implementation is a row, not the end of the bench
                row.update(status="error", note=_note(exc))
        rows.append(row)
    _interleaved_repeats(timed, sizes.repeats, sizes.budget_s,
                         getattr(sizes, "min_burst_repeats", sizes.repeats))
    for row, _, times in timed:
        if row["status"] != "ok":
            continue
        median = float(np.median(times))
        row.update(repeats=len(times), wall_median_s=median, wall_min_s=min(times),
                   wall_max_s=max(times), throughput=case.items / median)
        _set_bound(row, bounds)
    _ratios(rows)
    if progress is not None:
        for row in rows:
            progress(row)
    return rows


# calls shorter than this are timed in bursts lasting about this long, reported per call: a
# sub-millisecond kernel timed once per round measures the wake-up of idle threads and caches
# cooled by the other implementations more than the kernel itself
_BURST_S = 0.01
_MAX_CALLS = 1000
_WARM_PROBE_S = 0.5  # first runs shorter than this get a second, warm run before timing


def _calls_per_timing(first_s: float) -> int:
    """Calls per timing for a call that took ``first_s`` once: 1 from :data:`_BURST_S` on."""
    if first_s >= _BURST_S:
        return 1
    return int(min(_MAX_CALLS, math.ceil(_BURST_S / max(first_s, 1e-7))))


def _interleaved_repeats(timed, repeats: int, budget_s: float, min_burst: int = 1) -> None:
    """Rounds up to ``repeats`` timings: one timing of each implementation per round, in turn.

    ``timed`` holds ``(row, run, times)``; ``times`` grows in place (it starts with the first
    run's time, or empty for a burst-timed implementation: ``row["calls_per_timing"]`` calls per
    timing, each timing recorded per call). An implementation drops out once its runs have used
    ``budget_s`` (slow peers are timed fewer times; the count is recorded), or if a repeat
    raises (its row becomes an error). A burst-timed implementation gets at least
    ``min_burst`` timings (~10 ms each; ``Sizes.min_burst_repeats``): its median then rests on
    more than a 30 ms window of a shared machine (a neighbour's busy spell made one 0.16 ms
    kernel measure 0.30 ms in all three of its bursts).
    """
    def wanted(row):
        return repeats if row.get("calls_per_timing", 1) == 1 else max(repeats, min_burst)

    for _ in range(max([repeats] + [wanted(row) for row, _, _ in timed])):
        for row, run, times in timed:
            if row["status"] != "ok" or len(times) >= wanted(row):
                continue
            calls = row.get("calls_per_timing", 1)
            if sum(times) * calls >= budget_s:
                continue
            try:
                t0 = time.perf_counter()
                for _ in range(calls):
                    run()
                times.append((time.perf_counter() - t0) / calls)
            except Exception as exc:
                row.update(status="error", note="on a repeat: " + _note(exc))


def _ratios(rows) -> None:
    ok = [r for r in rows if r["status"] == "ok"]
    peer_t = [r["wall_median_s"] for r in ok if r["kind"] in ("peer", "baseline")]
    base_t = [r["wall_median_s"] for r in ok if r["kind"] == "baseline"]
    best_peer = min(peer_t) if peer_t else None
    baseline = min(base_t) if base_t else None
    for r in rows:
        r["speedup_vs_best_peer"] = r["speedup_vs_baseline"] = None
        if r["status"] != "ok":
            continue
        if best_peer is not None:
            r["speedup_vs_best_peer"] = best_peer / r["wall_median_s"]
        if baseline is not None:
            r["speedup_vs_baseline"] = baseline / r["wall_median_s"]


# Below this a call's time on a shared machine is mostly thread-scheduling latency (a parallel
# region waits for a 4 ms scheduler tick per descheduled worker): such sizes are left out of the
# fit and listed, as in the order fits of the verification suite.
MIN_FIT_TIME_S = 0.05


def _fit_points(sizes, times):
    keep = [i for i, t in enumerate(times) if t >= MIN_FIT_TIME_S]
    if len(keep) < 2:
        keep = list(range(len(sizes)))[-2:]
    return keep


def run_curve(curve: Curve, sizes, memory, progress=None) -> dict:
    """Time ``curve.run`` at each size; fit the time exponent (and memory per unit of size).

    The time exponent is fitted to the minimum time of each size (the least load-affected
    estimate) over the sizes whose time is at least :data:`MIN_FIT_TIME_S` (at least the two
    largest); the work exponent (the run's operation count: exponentials + normal draws +
    flops) over all sizes.
    """
    out = dict(workload=curve.workload, name=curve.name, param=curve.param, params=curve.params,
               sizes=[], wall_median_s=[], wall_min_s=[], peak_mb=[], max_err=[], mean_err=[],
               nfe=[], work=[], status="ok", note="")
    try:
        curve.run(min(curve.sizes))  # warm-up: compilation and caches
        for size in curve.sizes:
            if curve.prepare is not None:
                curve.prepare(size)
            timing, res, peak = time_repeats(lambda: curve.run(size), sizes.repeats,
                                             sizes.budget_s, memory if curve.memory else None)
            errs = curve.errors(size, res.values) if curve.errors else (None, None)
            out["sizes"].append(size)
            out["wall_median_s"].append(timing.median)
            out["wall_min_s"].append(timing.min)
            out["peak_mb"].append(None if peak is None else peak / 2**20)
            out["max_err"].append(errs[0])
            out["mean_err"].append(errs[1])
            out["nfe"].append(res.nfe)
            out["work"].append(sum(res.work.values()))
            if progress is not None:
                progress({"case": curve.name, "implementation": f"{curve.param}={size}",
                          "status": "ok", "wall_median_s": timing.median})
        keep = _fit_points(out["sizes"], out["wall_min_s"])
        out["fit"] = fit_exponent([out["sizes"][i] for i in keep], [out["wall_min_s"][i] for i in keep])
        out["fit"]["left_out"] = [s for i, s in enumerate(out["sizes"]) if i not in keep]
        if all(w for w in out["work"]):
            out["work_fit"] = fit_exponent(out["sizes"], out["work"])
        if curve.memory and all(p is not None for p in out["peak_mb"]):
            s = np.asarray(out["sizes"], dtype=float)
            b = np.asarray(out["peak_mb"], dtype=float) * 2**20
            slope, icpt = np.polyfit(s, b, 1)
            out["memory_fit"] = {"bytes_per_unit": float(slope), "intercept_mb": float(icpt) / 2**20,
                                 "method": memory.method}
            if np.all(b > 0):
                out["memory_fit"].update(fit_exponent(s, b))
    except Exception as exc:
        out.update(status="error", note=_note(exc))
    return out


def _simd() -> dict:
    """The CPU LLVM compiles the numba kernels for, and the SIMD extensions it has.

    Vector width decides the fused kernels' speed (4 float64 lanes with AVX2 or AVX-512 at
    LLVM's default 256-bit preference, 8 with 512-bit vectors; float <-> int64 conversions
    vectorise only with AVX-512DQ), so ratios measured on different CPUs are only comparable
    with this at hand.
    """
    import llvmlite.binding as llvm
    from numba.core import config

    from .. import _vector_width

    feats = llvm.get_host_cpu_features()
    wanted = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512dq")
    # the width numba's code generator was configured with (scorebench._vector_width)
    lifted = "-prefer-256-bit" in (config.CPU_FEATURES or "")
    bits = 512 if lifted else (256 if feats.get("avx") else 128)
    from numba.core.base import BaseContext

    return {"cpu": llvm.get_host_cpu_name(), "simd": [f for f in wanted if feats.get(f)],
            "vector_bits": bits, "vector_choice": _vector_width.STATE.get("reason"),
            "array_alignment": BaseContext.get_preferred_array_alignment(None, None)}


def _environment(torch_choice) -> dict:
    import numba
    import scipy
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(),
            **_simd(),
            "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "torch_threads": torch_choice, "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "torch": torch.__version__,
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def run_bench(profile: str = "quick", with_peers: bool = False, seed: int = 0,
              progress=None) -> dict:
    """Run every workload of ``profile`` and return the report dict (see the module docstring)."""
    from .cases_kernels import kernel_cases, kernel_scaling_curves
    from .cases_ode import likelihood_cases, likelihood_scaling_curve, work_precision_case
    from .cases_sde import sampling_cases

    sizes = sizes_for(profile)
    start = time.perf_counter()
    openmp = passive_openmp()
    env = _environment(choose_torch_threads())
    env["openmp"] = openmp
    tiny = profile == "tiny"

    def measure():
        return measure_bounds(n=1 << (21 if tiny else 23), repeats=3 if tiny else 5,
                              matmul_n=512 if tiny else 1024)

    # the bounds are measured before each group of cases and kept at the best of each rate
    # (bounds.best_of: one slow second on a shared machine must not flatter every fraction);
    # every row's fraction is recomputed at the end against the final bounds
    measured = [measure()]
    memory = PeakMemory()
    groups = [likelihood_cases(sizes, with_peers, seed) + [work_precision_case(sizes, with_peers,
                                                                                seed)],
              sampling_cases(sizes, with_peers, profile, seed), kernel_cases(sizes, seed)]
    rows = []
    for i, group in enumerate(groups):
        if i and not tiny:
            measured.append(measure())
        for case in group:
            rows += run_case(case, sizes, best_of(measured), memory, progress)
    bounds = best_of(measured)
    for row in rows:
        if row["status"] == "ok":
            _set_bound(row, bounds)
    curves = [run_curve(c, sizes, memory, progress)
              for c in [likelihood_scaling_curve(sizes, seed)] + kernel_scaling_curves(sizes, seed)]
    wp = work_precision_summary(rows)
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "profile": profile, "peers": with_peers, "seed": seed, "command": " ".join(sys.argv),
        "wall_s": time.perf_counter() - start, "environment": env, "bounds": bounds.to_dict(),
        "rows": rows, "curves": curves, "work_precision": wp,
        "targets": evaluate_targets(rows, wp),
        "notes": [n for n in {r["note"] for r in rows if r["status"] == "skipped"} if n],
    }

