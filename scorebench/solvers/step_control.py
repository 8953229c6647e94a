r"""Step-size control for embedded Runge–Kutta pairs, kept apart from the stepper.

The stepper returns a new state and an error estimate; this module measures the error, decides
acceptance and proposes the next step; the driver loops (the diffrax split of solver, controller
and ``diffeqsolve``). Everything here is per sample: arrays of shape (N,).

Error measure (scipy's meaning of ``rtol``/``atol``): for a sample with m components,

.. math::

    \mathrm{err} = \Big(\frac1m \sum_{j=1}^m \Big(\frac{e_j}{\mathrm{sc}_j}\Big)^2\Big)^{1/2},
    \qquad \mathrm{sc}_j = \mathrm{atol}_j + \mathrm{rtol}_j \max(|y_j|, |y^{new}_j|),

a step is accepted when ``err < 1``, and the next step is :math:`h \cdot \min(\text{MAX},
\max(\text{MIN}, \text{SAFETY}\cdot \mathrm{err}^{-1/(q+1)}))` with q the order of the embedded
(error) solution; after a rejection the following accepted step may not grow (Hairer, Nørsett &
Wanner, *Solving ODEs I*, Sec. II.4, Eqs. 4.11-4.13). The initial step is Hairer's selection
(ibid., p. 169), as in scipy's ``select_initial_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._arrays import abs_max, coef_like, like, row_rms

__all__ = [
    "SAFETY",
    "MIN_FACTOR",
    "MAX_FACTOR",
    "StepController",
    "error_norm",
    "initial_step",
]

SAFETY = 0.9  # aim below the tolerance so the next step is usually accepted
MIN_FACTOR = 0.2  # never shrink a step by more than 5x at once
MAX_FACTOR = 10.0  # never grow a step by more than 10x at once


def _tol_like(tol, x):
    return tol if np.ndim(tol) == 0 else like(np.asarray(tol, dtype=np.float64), x)


def error_norm(err, y_old, y_new, rtol, atol) -> np.ndarray:
    """Per-sample RMS of ``err / (atol + rtol max(|y_old|, |y_new|))``, float64 shape (N,)."""
    scale = _tol_like(atol, y_old) + _tol_like(rtol, y_old) * abs_max(y_old, y_new)
    return row_rms(err / scale)


@dataclass(frozen=True)
class StepController:
    """Integral (I) step-size controller with safety factor and growth/shrink limits.

    Parameters
    ----------
    error_order : int
        Order q of the embedded solution; the step scales with ``err ** (-1 / (q + 1))``.
    safety, min_factor, max_factor : float
        Defaults :data:`SAFETY`, :data:`MIN_FACTOR`, :data:`MAX_FACTOR`.
    """

    error_order: int
    safety: float = SAFETY
    min_factor: float = MIN_FACTOR
    max_factor: float = MAX_FACTOR

    def __post_init__(self):
        if isinstance(self.error_order, bool) or not isinstance(self.error_order, int):
            raise ValueError(f"error_order: expected an int >= 1, got {self.error_order!r}")
        if self.error_order < 1:
            raise ValueError(f"error_order: expected an int >= 1, got {self.error_order!r}")
        if not 0 < self.safety <= 1:
            raise ValueError(f"safety: must lie in (0, 1], got {self.safety!r}")
        if not 0 < self.min_factor < 1:
            raise ValueError(f"min_factor: must lie in (0, 1), got {self.min_factor!r}")
        if not (1 < self.max_factor and math.isfinite(self.max_factor)):
            raise ValueError(f"max_factor: must be finite and > 1, got {self.max_factor!r}")

    def decide(self, err: np.ndarray, rejected_before: np.ndarray):
        """Accept or reject each sample's step and propose its next step-size factor.

        Parameters
        ----------
        err : ndarray, shape (N,)
            Error norms (nan/inf, e.g. from non-finite stages, count as a rejection).
        rejected_before : ndarray of bool, shape (N,)
            Whether the previous attempt of this sample was rejected.

        Returns
        -------
        accept : ndarray of bool, shape (N,)
        factor : ndarray, shape (N,)
            Multiplier for the step magnitude just attempted.
        """
        err = np.asarray(err, dtype=np.float64)
        finite = np.isfinite(err)
        accept = finite & (err < 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = self.safety * err ** (-1.0 / (self.error_order + 1))
        raw = np.where(finite, np.where(err > 0, raw, self.max_factor), self.min_factor)
        grow = np.minimum(self.max_factor, raw)
        grow = np.where(rejected_before, np.minimum(1.0, grow), grow)
        shrink = np.maximum(self.min_factor, np.minimum(raw, 1.0))
        return accept, np.where(accept, grow, shrink)


def initial_step(f, t0: float, y0, f0, direction: float, error_order: int, rtol, atol, interval):
    """Hairer's initial step size for each sample (one extra batched evaluation of ``f``).

    With ``sc = atol + rtol |y0|``, ``d0 = rms(y0/sc)``, ``d1 = rms(f0/sc)``:
    ``h0 = 0.01 d0/d1`` (or 1e-6 when either is < 1e-5), one explicit Euler step to get
    ``d2 = rms((f(y0 + h0 f0) - f0)/sc) / h0``, ``h1 = (0.01 / max(d1, d2))^(1/(q+1))``
    (or ``max(1e-6, 1e-3 h0)`` when both are tiny), and ``h = min(100 h0, h1, interval)``.

    Returns
    -------
    ndarray, shape (N,)
        Positive step magnitudes.
    """
    scale = _tol_like(atol, y0) + _tol_like(rtol, y0) * abs_max(y0, y0)
    d0 = row_rms(y0 / scale)
    d1 = row_rms(f0 / scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    h0 = np.minimum(h0, interval)
    y1 = y0 + coef_like(direction * h0, y0) * f0
    f1 = f(y1, t0 + direction * h0)
    d2 = row_rms((f1 - f0) / scale) / h0
    dmax = np.maximum(d1, d2)
    with np.errstate(divide="ignore", invalid="ignore"):
        h1 = np.where(
            dmax <= 1e-15,
            np.maximum(1e-6, h0 * 1e-3),
            (0.01 / dmax) ** (1.0 / (error_order + 1)),
        )
    h = np.minimum(np.minimum(100.0 * h0, h1), interval)
    # non-finite d's (from a non-finite f) fall back to the smallest guess; the driver rejects
    return np.where(np.isfinite(h) & (h > 0), h, np.minimum(1e-6, interval))
