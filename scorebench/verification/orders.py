"""Convergence-order estimation: least-squares slopes over an automatically chosen asymptotic range.

A method of order p has error ``e(h) ≈ C h^p`` as ``h -> 0``, so ``log e = log C + p log h`` and the
order is the slope of a straight line through the points ``(log h_i, log e_i)``. Two things spoil
that line, and :func:`fit_order` removes both before fitting, listing every point it leaves out:

* **the floor** — at fine steps the error stops falling because it is swamped by round-off
  (errors below ``1e3 · eps · scale``) or by Monte Carlo noise (an error within ``k`` standard errors
  of zero is indistinguishable from zero);
* **the pre-asymptotic range** — at coarse steps the higher-order terms of the error expansion are
  not yet small, and the local slope differs from ``p``.

The fit is ordinary least squares on the logs of the kept points, with a two-sided
``confidence``-level interval from Student's t with ``n - 2`` degrees of freedom (exact when the
log-errors carry independent Gaussian noise of common variance), and the finest-pair estimate
``log(e_2/e_1)/log(h_2/h_1)`` beside it. :func:`order_verdict` turns a fit and a declared order into
``"pass"``/``"fail"`` with an explicitly derived tolerance.

References
----------
Roache, P. J. (1998). *Verification and Validation in Computational Science and Engineering*.
Kloeden, P. E. & Platen, E. (1992). *Numerical Solution of Stochastic Differential Equations*, §9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["ExcludedPoint", "OrderFit", "OrderVerdict", "fit_order", "order_verdict", "roundoff_floor"]

#: Round-off floor factor: errors at or below ``ROUNDOFF_FACTOR * eps * scale`` are round-off.
ROUNDOFF_FACTOR = 1e3
#: Smallest tolerance of an order verdict, by kind (peers hand-tune 0.2 for ODEs, 0.3-0.4 for SDEs).
MIN_TOLERANCE = {"ode": 0.2, "sde": 0.3}
#: Largest derived tolerance: a CI wider than this is inconclusive and fails (below half an order).
MAX_TOLERANCE = {"ode": 0.45, "sde": 0.45}


@dataclass(frozen=True)
class ExcludedPoint:
    """One point left out of an order fit: its index in the caller's arrays and why."""

    index: int
    step_size: float
    error: float
    reason: str


@dataclass(frozen=True)
class OrderFit:
    """Result of :func:`fit_order`.

    Attributes
    ----------
    order, intercept : float
        Least-squares slope ``p`` and intercept ``log C`` of ``log e = log C + p log h`` over the
        used points (NaN when fewer than two points are usable).
    stderr : float
        Standard error of the slope (NaN with fewer than three points).
    ci : tuple of float
        Two-sided ``confidence`` interval ``order ± t_{(1+confidence)/2, n-2} · stderr``.
    last_pair_order : float
        Slope through the two finest used points.
    used : tuple of int
        Indices (into the caller's arrays) of the fitted points, finest first.
    excluded : tuple of ExcludedPoint
        Every other point with the reason it was left out.
    ok : bool
        True when at least ``min_points`` points were fitted; otherwise ``reason`` says why not.
    floor : float
        The absolute round-off floor applied.
    """

    order: float
    intercept: float
    stderr: float
    ci: tuple[float, float]
    confidence: float
    last_pair_order: float
    used: tuple[int, ...]
    excluded: tuple[ExcludedPoint, ...]
    ok: bool
    reason: str
    floor: float

    @property
    def n_used(self) -> int:
        return len(self.used)

    @property
    def ci_halfwidth(self) -> float:
        return 0.5 * (self.ci[1] - self.ci[0])


class OrderVerdict(NamedTuple):
    """``(verdict, tolerance, reason)`` as returned by :func:`order_verdict`."""

    verdict: str
    tolerance: float
    reason: str


def roundoff_floor(scale: float = 1.0, eps: float = float(np.finfo(np.float64).eps)) -> float:
    """Absolute round-off floor ``1e3 · eps · scale`` (``scale`` = magnitude of the solution)."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a finite positive number, got {scale!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite positive number, got {eps!r}")
    return ROUNDOFF_FACTOR * eps * scale


def _as_1d(name: str, values, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values (one per step size), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()
        raise ValueError(f"{name}: non-finite values at indices {bad}")
    return arr


def _ols(logh: np.ndarray, loge: np.ndarray, confidence: float):
    n = logh.size
    xm, ym = logh.mean(), loge.mean()
    sxx = float(np.sum((logh - xm) ** 2))
    slope = float(np.sum((logh - xm) * (loge - ym)) / sxx)
    intercept = float(ym - slope * xm)
    if n < 3:
        return slope, intercept, math.nan, (math.nan, math.nan)
    resid = loge - (intercept + slope * logh)
    stderr = math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx)
    half = float(stats.t.ppf(0.5 * (1.0 + confidence), n - 2)) * stderr
    return slope, intercept, stderr, (slope - half, slope + half)


def fit_order(
    step_sizes,
    errors,
    floor: float | None = None,
    *,
    error_se=None,
    se_multiple: float = 3.0,
    scale: float = 1.0,
    eps: float = float(np.finfo(np.float64).eps),
    max_step: float | None = None,
    agreement_abs: float = 0.15,
    agreement_rel: float = 0.1,
    confidence: float = 0.95,
    min_points: int = 3,
) -> OrderFit:
    """Fit the convergence order ``p`` of ``e(h) ≈ C h^p`` over the asymptotic range.

    Points are left out, in this order, and listed in ``OrderFit.excluded`` with the reason:

    1. *round-off floor*: ``error <= floor``; ``floor=None`` means ``1e3 · eps · scale``
       (``floor=0`` still drops exact zeros, whose logarithm is undefined);
    2. *Monte Carlo floor* (when ``error_se`` is given): ``error <= se_multiple · error_se``;
    3. *outside the asymptotic range by assumption* (when ``max_step`` is given): ``h > max_step``;
    4. *pre-asymptotic* (deterministic rule): sort the remaining points finest first and compute the
       local slopes ``p_j = log(e_{j+1}/e_j) / log(h_{j+1}/h_j)``. The three finest points are always
       kept. For ``j = 2, 3, ...`` point ``j+1`` is kept when
       ``|p_j − median(p_0..p_{j-1})| <= max(agreement_abs, agreement_rel · |median|) + se_multiple · σ_j``,
       ``σ_j`` the delta-method standard error of ``p_j`` from ``error_se`` (0 without it). At the
       first rejection that point and every coarser one are excluded (the range stays contiguous).

    Parameters
    ----------
    step_sizes : array_like, shape (n,)
        Distinct, finite, positive step sizes (any order).
    errors : array_like, shape (n,)
        Finite, non-negative errors at those steps.
    floor : float, optional
        Absolute round-off floor; default ``1e3 · eps · scale``.
    error_se : array_like, shape (n,), optional
        Monte Carlo standard errors of ``errors``.
    se_multiple : float
        ``k`` in the Monte Carlo floor and in the slope-noise allowance.
    scale, eps : float
        Solution magnitude and machine epsilon for the default floor.
    max_step : float, optional
        Steps above it are outside the asymptotic range (e.g. where ``h g²/s²`` is not small).
    agreement_abs, agreement_rel : float
        Local-slope agreement band of rule 4.
    confidence : float
        Level of the t-interval on the slope, in (0, 1).
    min_points : int
        Fewer usable points than this gives ``ok=False`` (never an exception); at least 3.

    Returns
    -------
    OrderFit

    Raises
    ------
    ValueError
        Non-finite, negative or mismatched inputs, or repeated step sizes, naming the parameter.
    """
    h = _as_1d("step_sizes", step_sizes)
    n = h.size
    e = _as_1d("errors", errors, n)
    if np.any(h <= 0):
        raise ValueError(f"step_sizes: expected positive values, got {h.tolist()}")
    if np.unique(h).size != n:
        raise ValueError(f"step_sizes: expected distinct values, got {h.tolist()}")
    if np.any(e < 0):
        raise ValueError(f"errors: expected non-negative values, got {e.tolist()}")
    se = None if error_se is None else _as_1d("error_se", error_se, n)
    if se is not None and np.any(se < 0):
        raise ValueError(f"error_se: expected non-negative values, got {se.tolist()}")
    if floor is None:
        floor = roundoff_floor(scale, eps)
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor: expected a finite non-negative number, got {floor!r}")
    if not (math.isfinite(se_multiple) and se_multiple >= 0):
        raise ValueError(f"se_multiple: expected a finite non-negative number, got {se_multiple!r}")
    if max_step is not None and not (math.isfinite(max_step) and max_step > 0):
        raise ValueError(f"max_step: expected a finite positive number, got {max_step!r}")
    if not (agreement_abs >= 0 and agreement_rel >= 0):
        raise ValueError(f"agreement_abs, agreement_rel: expected >= 0, got {agreement_abs}, {agreement_rel}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    if int(min_points) != min_points or min_points < 3:
        raise ValueError(f"min_points: expected an integer >= 3, got {min_points!r}")

    excluded: dict[int, str] = {}
    for i in range(n):
        if e[i] <= floor:
            excluded[i] = f"at the round-off floor (error {e[i]:.3g} <= {floor:.3g})"
        elif se is not None and e[i] <= se_multiple * se[i]:
            excluded[i] = (
                f"at the Monte Carlo floor (error {e[i]:.3g} <= {se_multiple:g} standard errors "
                f"= {se_multiple * se[i]:.3g})"
            )
        elif max_step is not None and h[i] > max_step:
            excluded[i] = f"outside the asymptotic range (h = {h[i]:.3g} > max_step = {max_step:.3g})"

    cand = [int(i) for i in np.argsort(h) if int(i) not in excluded]
    if len(cand) >= min_points:
        logh, loge = np.log(h[cand]), np.log(e[cand])
        slopes = np.diff(loge) / np.diff(logh)
        if se is not None:
            rel = se[cand] / e[cand]
            sigma = np.sqrt(rel[:-1] ** 2 + rel[1:] ** 2) / np.abs(np.diff(logh))
        else:
            sigma = np.zeros_like(slopes)
        stop = len(cand)
        for j in range(2, len(slopes)):
            ref = float(np.median(slopes[:j]))
            band = max(agreement_abs, agreement_rel * abs(ref)) + se_multiple * sigma[j]
            if abs(slopes[j] - ref) > band:
                stop = j + 1
                first = cand[stop]
                excluded[first] = (
                    f"pre-asymptotic (local slope {slopes[j]:.3g} from the next finer point differs from "
                    f"the median {ref:.3g} of the finer local slopes by more than {band:.3g})"
                )
                for i in cand[stop + 1 :]:
                    excluded[i] = f"pre-asymptotic (coarser than the first pre-asymptotic point h = {h[first]:.3g})"
                break
        cand = cand[:stop]

    used = tuple(cand)
    excl = tuple(
        ExcludedPoint(index=i, step_size=float(h[i]), error=float(e[i]), reason=excluded[i]) for i in sorted(excluded)
    )
    nan2 = (math.nan, math.nan)
    if len(used) < 2:
        reason = f"fewer than {min_points} usable points ({len(used)} of {n}; {len(excl)} excluded)"
        return OrderFit(math.nan, math.nan, math.nan, nan2, confidence, math.nan, used, excl, False, reason, floor)
    logh, loge = np.log(h[list(used)]), np.log(e[list(used)])
    order, intercept, stderr, ci = _ols(logh, loge, confidence)
    last_pair = float((loge[1] - loge[0]) / (logh[1] - logh[0]))
    ok = len(used) >= min_points
    reason = "" if ok else f"fewer than {min_points} usable points ({len(used)} of {n}; {len(excl)} excluded)"
    if not ok:
        stderr, ci = math.nan, nan2
    return OrderFit(order, intercept, stderr, ci, confidence, last_pair, used, excl, ok, reason, floor)


def order_verdict(
    fit: OrderFit,
    declared_order: float,
    tolerance: float | None = None,
    *,
    kind: str = "ode",
    min_tolerance: float | None = None,
    max_tolerance: float | None = None,
) -> OrderVerdict:
    """Compare an estimated order with a declared one.

    The verdict is ``"pass"`` when ``|order − declared_order| <= tolerance``. Unless given, the
    tolerance is derived from the fit: ``tolerance = max(min_tolerance, ci_halfwidth)``, where
    ``min_tolerance`` defaults to 0.2 for ``kind="ode"`` and 0.3 for ``kind="sde"`` and
    ``ci_halfwidth`` is the half-width of the fit's t-interval. A derived tolerance above
    ``max_tolerance`` (default 0.45 for both kinds) means the data cannot resolve the order to
    better than half an order: the verdict is ``"fail"`` (inconclusive). A fit with fewer than the
    minimum number of usable points also fails. The returned reason states the tolerance and how it
    was obtained.

    Returns
    -------
    OrderVerdict
        ``(verdict, tolerance, reason)``; ``tolerance`` is NaN when the fit was unusable.
    """
    if kind not in MIN_TOLERANCE:
        raise ValueError(f"kind: expected 'ode' or 'sde', got {kind!r}")
    declared = float(declared_order) if declared_order is not None else math.nan
    if not math.isfinite(declared):
        raise ValueError(f"declared_order: expected a finite number, got {declared_order!r}")
    lo_tol = MIN_TOLERANCE[kind] if min_tolerance is None else float(min_tolerance)
    hi_tol = MAX_TOLERANCE[kind] if max_tolerance is None else float(max_tolerance)
    if not (math.isfinite(lo_tol) and lo_tol > 0):
        raise ValueError(f"min_tolerance: expected a finite positive number, got {min_tolerance!r}")
    if not (hi_tol >= lo_tol):
        raise ValueError(f"max_tolerance: expected >= min_tolerance {lo_tol}, got {max_tolerance!r}")
    if not fit.ok:
        return OrderVerdict("fail", math.nan, f"no order estimate: {fit.reason}")
    conf = f"{100 * fit.confidence:g}%"
    est = (
        f"estimated order {fit.order:.3f} ({conf} CI [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}], "
        f"last pair {fit.last_pair_order:.3f}, {fit.n_used} points) vs declared {declared:g}"
    )
    if tolerance is not None:
        tol = float(tolerance)
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"tolerance: expected a finite positive number, got {tolerance!r}")
        how = "given explicitly"
    else:
        half = fit.ci_halfwidth
        tol = max(lo_tol, half)
        how = f"max(floor {lo_tol:g} for {kind}, CI half-width {half:.3g})"
        if tol > hi_tol:
            return OrderVerdict(
                "fail", tol, f"inconclusive: {est}; tolerance {tol:.3g} = {how} exceeds max_tolerance {hi_tol:g}"
            )
    diff = abs(fit.order - declared)
    verdict = "pass" if diff <= tol else "fail"
    sign = "<=" if verdict == "pass" else ">"
    return OrderVerdict(verdict, tol, f"{est}: |difference| {diff:.3f} {sign} tolerance {tol:.3g} ({how})")
