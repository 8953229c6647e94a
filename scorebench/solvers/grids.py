r"""Time grids from ``T`` down to ``eps`` for fixed-step samplers.

Every grid has ``steps + 1`` float64 points, is strictly decreasing, starts exactly at ``T`` and
ends exactly at ``eps`` (the end points are set, not accumulated from ``dt = 1/N``):

``"uniform"``
    :math:`t_i = T - (i/N)(T - \varepsilon)`.
``"quadratic"``
    :math:`t_i = \varepsilon + (T - \varepsilon)(1 - i/N)^2`, dense near ``eps``
    (Song, Meng & Ermon 2021, DDIM's quadratic schedule).
``"karras"``
    The EDM :math:`\rho`-schedule in noise level :math:`\sigma(t) = s(t)/a(t)`:
    :math:`\sigma_i = (\sigma_{max}^{1/\rho} + (i/N)(\sigma_{min}^{1/\rho} -
    \sigma_{max}^{1/\rho}))^\rho` with :math:`\sigma_{max} = \sigma(T)`,
    :math:`\sigma_{min} = \sigma(\varepsilon)`, mapped back to ``t`` through the SDE: since
    :math:`\log\sigma^2 = -\lambda(t)` (log-SNR), :math:`t_i = \lambda^{-1}(-2\log\sigma_i)`
    (Karras, Aittala, Aila & Laine, NeurIPS 2022, Eq. 5).
``"logsnr"``
    Uniform in :math:`\lambda(t) = \log(a^2/s^2)`, as DPM-Solver steps (Lu et al., NeurIPS 2022).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["GRID_KINDS", "time_grid", "check_grid", "check_steps", "check_eps"]

GRID_KINDS = ("uniform", "quadratic", "karras", "logsnr")


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    return value


def check_steps(steps) -> int:
    """Return ``steps`` as an int after checking it is an integer >= 1 (bool rejected)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    return int(steps)


def check_eps(eps, T) -> float:
    """Return ``eps`` as a float after checking ``0 < eps < T``."""
    eps = _check_real(eps, "eps")
    if not 0.0 < eps < T:
        raise ValueError(f"eps: must lie in the open interval (0, T) = (0, {T}), got {eps}")
    return eps


def _finish(t: np.ndarray, T: float, eps: float, kind: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    t[0] = T
    t[-1] = eps
    if not np.all(np.diff(t) < 0):
        raise ValueError(
            f"steps: the {kind!r} grid with {t.size - 1} steps is not strictly decreasing in "
            "float64 (too many steps for this interval)"
        )
    return t


def time_grid(kind: str, steps: int, T: float, eps: float, sde=None, rho: float = 7.0):
    """Time grid of ``steps`` steps from ``T`` down to ``eps``.

    Parameters
    ----------
    kind : {"uniform", "quadratic", "karras", "logsnr"}
    steps : int
        Number of steps N >= 1.
    T : float
        Start time (> 0).
    eps : float
        End time, ``0 < eps < T``.
    sde : SDE, optional
        Required for ``"karras"`` and ``"logsnr"``: needs ``log_snr(t)`` and ``t_from_log_snr``.
    rho : float
        Exponent of the Karras schedule (EDM's 7).

    Returns
    -------
    ndarray, shape (steps + 1,)
        Strictly decreasing float64 times, ``t[0] == T`` and ``t[-1] == eps`` exactly.

    Examples
    --------
    >>> time_grid("quadratic", 4, 1.0, 0.01)
    array([1.      , 0.566875, 0.2575  , 0.071875, 0.01    ])
    """
    if not isinstance(kind, str) or kind not in GRID_KINDS:
        raise ValueError(f"grid: unknown kind {kind!r}; expected one of {', '.join(GRID_KINDS)}")
    steps = check_steps(steps)
    T = _check_real(T, "T")
    if T <= 0:
        raise ValueError(f"T: must be > 0, got {T}")
    eps = check_eps(eps, T)
    u = np.arange(steps + 1, dtype=np.float64) / steps
    if kind == "uniform":
        return _finish(T - u * (T - eps), T, eps, kind)
    if kind == "quadratic":
        return _finish(eps + (T - eps) * (1.0 - u) ** 2, T, eps, kind)
    if sde is None or not hasattr(sde, "log_snr") or not hasattr(sde, "t_from_log_snr"):
        raise ValueError(
            f"sde: the {kind!r} grid needs an SDE with log_snr(t) and t_from_log_snr(lam), "
            f"got {sde!r}"
        )
    lam_T = float(sde.log_snr(T))
    lam_eps = float(sde.log_snr(eps))
    if kind == "logsnr":
        lam = lam_T + u * (lam_eps - lam_T)
    else:
        rho = _check_real(rho, "rho")
        if rho <= 0:
            raise ValueError(f"rho: must be > 0, got {rho}")
        # sigma^(1/rho) = exp(-lambda / (2 rho)); interpolate linearly, map back via log-SNR.
        r_max = math.exp(-lam_T / (2.0 * rho))
        r_min = math.exp(-lam_eps / (2.0 * rho))
        lam = -2.0 * rho * np.log(r_max + u * (r_min - r_max))
    lam[0], lam[-1] = lam_T, lam_eps
    t = np.asarray(sde.t_from_log_snr(lam[1:-1]), dtype=np.float64) if steps > 1 else []
    return _finish(np.concatenate([[T], t, [eps]]), T, eps, kind)


def check_grid(grid, T: float, eps: float | None = None) -> np.ndarray:
    """Validate an explicit grid: 1-D float64, >= 2 points, strictly decreasing, from ``T``.

    With ``eps`` given the last point must equal it exactly; otherwise it must lie in (0, T).
    """
    try:
        g = np.array(grid, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"grid: expected a 1-D array of times ({exc})") from None
    if g.ndim != 1 or g.size < 2:
        raise ValueError(f"grid: expected a 1-D array of at least 2 times, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grid: contains non-finite entries")
    if not np.all(np.diff(g) < 0):
        raise ValueError("grid: must be strictly decreasing (from T down to eps)")
    if g[0] != T:
        raise ValueError(f"grid: must start exactly at T = {T}, got {g[0]!r}")
    if eps is not None and g[-1] != eps:
        raise ValueError(f"grid: must end exactly at eps = {eps}, got {g[-1]!r}")
    if not 0.0 < g[-1] < T:
        raise ValueError(f"grid: last time must lie in (0, T), got {g[-1]!r}")
    return g
