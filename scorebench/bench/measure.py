r"""Measurement primitives of ``scorebench bench``: wall time, peak memory, accuracy, scaling fits.

* **Time**: :func:`time_repeats` runs a callable ``repeats`` times (fewer when a time budget is
  spent) and returns the median with the min–max range. Warm-up (numba compilation, torch's
  first-call caches) is the caller's job and is never timed.
* **Peak memory**: :class:`PeakMemory` measures the growth of the process's resident set during
  a call. On Linux the kernel's high-water mark is reset by writing ``5`` to
  ``/proc/self/clear_refs`` and read back as ``VmHWM`` from ``/proc/self/status`` (memory the
  allocator keeps after a previous call is first handed back with ``malloc_trim(0)``, so it is
  not silently reused); the growth is ``VmHWM - VmRSS`` before the call. This sees every
  allocation (numpy, numba, torch, BLAS threads). Where ``/proc`` is not writable the fallback
  is :mod:`tracemalloc` (Python and numpy allocations only; torch and numba scratch are not
  traced), and the method used is recorded with each figure.
* **Accuracy**: :func:`abs_errors` gives the max and mean absolute error against the exact
  oracle; speed is never reported without it.
* **Chunks**: :func:`chunked` applies a batched function to consecutive chunks of the points
  and joins the results, so a 1e6-point likelihood needs memory for one chunk only.
* **Scaling**: :func:`fit_exponent` is the least-squares slope of log time against log size
  with its 95 % confidence interval.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import statistics
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "time_repeats", "PeakMemory", "abs_errors", "chunked", "fit_exponent"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs: median, min, max and every run."""

    median: float
    min: float
    max: float
    times: tuple

    @property
    def repeats(self) -> int:
        return len(self.times)


def time_repeats(fn, repeats: int, budget_s: float = math.inf, memory=None):
    """Time ``fn()`` up to ``repeats`` times; returns ``(Timing, last result, peak bytes)``.

    Parameters
    ----------
    fn : callable
        No arguments; its result of the last run is returned.
    repeats : int
        Number of timed runs (>= 1). Runs stop early, after at least one, once their total time
        exceeds ``budget_s`` (slow peers are then timed fewer times; the count is recorded).
    budget_s : float
        Time budget of all runs together.
    memory : PeakMemory, optional
        When given, the first run's peak memory growth is measured (with the ``/proc`` method
        this costs nothing; the tracemalloc fallback slows that run, so it is then an extra,
        untimed run).

    Returns
    -------
    Timing, object, int or None
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected an int >= 1, got {repeats!r}")
    peak = None
    if memory is not None and not memory.free_of_overhead:
        _, peak = memory.measure(fn)
    times, out = [], None
    for i in range(repeats):
        if memory is not None and peak is None:
            t0 = time.perf_counter()
            out, peak = memory.measure(fn)
        else:
            t0 = time.perf_counter()
            out = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) >= budget_s:
            break
    timing = Timing(statistics.median(times), min(times), max(times), tuple(times))
    return timing, out, peak


def _read_status(key: str):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back
        pass


class PeakMemory:
    """Peak resident-memory growth of a call (``/proc`` high-water mark, else tracemalloc).

    Attributes
    ----------
    method : str
        ``"VmHWM"`` or ``"tracemalloc"``.
    free_of_overhead : bool
        True for ``"VmHWM"`` (the call runs at full speed while measured).
    """

    def __init__(self, method: str = "auto"):
        if method not in ("auto", "VmHWM", "tracemalloc"):
            raise ValueError(f"method: expected 'auto', 'VmHWM' or 'tracemalloc', got {method!r}")
        if method == "auto":
            method = "VmHWM" if self._proc_works() else "tracemalloc"
        self.method = method
        self.free_of_overhead = method == "VmHWM"

    @staticmethod
    def _proc_works() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            _read_status("VmHWM")
            _read_status("VmRSS")
            return True
        except OSError:
            return False

    def measure(self, fn):
        """``(fn(), peak growth in bytes)`` of one call."""
        if self.method == "VmHWM":
            _malloc_trim()
            base = _read_status("VmRSS")
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            out = fn()
            return out, max(0, _read_status("VmHWM") - base)
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            out = fn()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if not was_tracing:
                tracemalloc.stop()
        return out, max(0, peak - base)


def abs_errors(estimate, exact):
    """``(max, mean)`` of ``|estimate - exact|`` (inf when any entry is not finite).

    Raises
    ------
    ValueError
        When the shapes differ or the arrays are empty.
    """
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(exact, dtype=np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"estimate: shape {est.shape} does not match the exact values' {ref.shape}")
    if est.size == 0:
        raise ValueError("estimate: empty")
    err = np.abs(est - ref)
    if not np.all(np.isfinite(err)):
        return math.inf, math.inf
    return float(err.max()), float(err.mean())


def _join(parts, n_rows):
    first = parts[0]
    if isinstance(first, np.ndarray) or type(first).__module__.startswith("torch"):
        if first.ndim >= 1 and first.shape[0] == n_rows[0]:
            if isinstance(first, np.ndarray):
                return np.concatenate(parts, axis=0)
            import torch

            return torch.cat(parts, dim=0)
        return first
    if isinstance(first, (bool, str)) or first is None:
        return first
    if isinstance(first, (int, float, np.integer, np.floating)):
        return max(parts)  # counts such as NFE: a chunked run needs the largest chunk's count
    return first


def chunked(fn, x, chunk: int):
    """Apply ``fn`` to consecutive row chunks of ``x`` and join the results.

    Parameters
    ----------
    fn : callable
        ``fn(x_chunk)`` returning an array whose first axis is the chunk's rows, a tuple or
        NamedTuple of such, or a dataclass (e.g. :class:`~scorebench.solvers.likelihood.LikelihoodResult`).
    x : ndarray or Tensor, shape (N, ...)
    chunk : int
        Rows per call (>= 1). Peak memory is then that of one chunk plus the joined output.

    Returns
    -------
    The joined result: arrays with one row per point are concatenated; numbers take the
    largest value over the chunks (an NFE count is the count of the hardest chunk); anything
    else is taken from the first chunk.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    if not hasattr(x, "shape") or len(x.shape) < 1 or x.shape[0] < 1:
        raise ValueError(f"x: expected an array with at least one row, got {type(x).__name__}")
    n = int(x.shape[0])
    outs, rows = [], []
    for i in range(0, n, int(chunk)):
        part = x[i:i + int(chunk)]
        outs.append(fn(part))
        rows.append(int(part.shape[0]))
    first = outs[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        joined = {f.name: _join([getattr(o, f.name) for o in outs], rows)
                  for f in dataclasses.fields(first)}
        return dataclasses.replace(first, **joined)
    if isinstance(first, tuple):
        fields = [_join([o[j] for o in outs], rows) for j in range(len(first))]
        return type(first)(*fields) if hasattr(first, "_fields") else tuple(fields)
    return _join(outs, rows)


def fit_exponent(sizes, times):
    """Least-squares slope of log(times) against log(sizes) and its 95 % confidence interval.

    Returns
    -------
    dict
        ``{"exponent", "ci": [lo, hi], "points"}``; the interval uses Student's t with
        ``points - 2`` degrees of freedom (``null`` with only two points).
    """
    s = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if s.shape != t.shape or s.ndim != 1 or s.size < 2:
        raise ValueError(f"sizes: need >= 2 sizes matching times, got {s.shape} and {t.shape}")
    if np.any(s <= 0) or np.any(t <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times: sizes and times must be finite and > 0 for a log-log fit")
    lx, ly = np.log(s), np.log(t)
    A = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    slope = float(coef[0])
    ci = None
    if s.size > 2:
        from scipy.stats import t as student

        resid = ly - A @ coef
        dof = s.size - 2
        sxx = float(np.sum((lx - lx.mean()) ** 2))
        se = math.sqrt(float(resid @ resid) / dof / sxx) if sxx > 0 else math.inf
        q = float(student.ppf(0.975, dof))
        ci = [slope - q * se, slope + q * se]
    return {"exponent": slope, "ci": ci, "points": int(s.size)}
