"""Exact expectations under a Gaussian mixture: the right-hand sides of weak errors and of the MMD.

For ``p = Σ_k w_k N(m_k, C_k)`` (covariances PSD, possibly singular: point masses are ``C_k = 0``):

* moments: ``E x = Σ w_k m_k``, ``E x xᵀ = Σ w_k (C_k + m_k m_kᵀ)``;
* characteristic function: ``E exp(i ωᵀx) = Σ w_k exp(i ωᵀm_k − ½ ωᵀC_k ω)``;
* Gaussian-kernel mean embedding, ``k(x, y) = exp(−|x − y|² / (2 l²))``. Since
  ``k(x, y) = (2π l²)^{d/2} N(x; y, l² I)`` and ``∫ N(x; m, C) N(x; y, l² I) dx = N(y; m, C + l² I)``,

  ``E_{x~N(m,C)} k(x, y) = det(I + C/l²)^{-1/2} exp(−½ (y − m)ᵀ (l² I + C)^{-1} (y − m))``;
* the kernel's double expectation: for independent ``x ~ N(m_i, C_i)``, ``x' ~ N(m_j, C_j)`` the
  difference is ``N(m_i − m_j, C_i + C_j)`` and ``k(x, x')`` is the kernel at 0 of that difference, so
  ``E k(x, x') = Σ_ij w_i w_j det(I + (C_i + C_j)/l²)^{-1/2} exp(−½ Δ_ijᵀ (l² I + C_i + C_j)^{-1} Δ_ij)``.

``l² I + C`` is positive definite even for singular ``C``, so every formula is evaluated with a
Cholesky factor of it. The sample-side features (``exp(i xᵀω)``, ``k(x, y)``) are here too, so a weak
error is ``|mean(features(X_h)) − exact|``.

References
----------
Gretton, A. et al. (2012). A kernel two-sample test. *JMLR* 13, 723-773.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg

__all__ = [
    "check_mixture",
    "mixture_first_moment",
    "mixture_second_moment",
    "mixture_char_fn",
    "mixture_kernel_mean",
    "mixture_kernel_expectation",
    "char_fn_features",
    "kernel_features",
]


def check_mixture(weights, means, covs):
    """Validate mixture arrays: weights (K,) >= 0 summing to 1, means (K, d), covs (K, d, d) symmetric PSD.

    Weights are *not* renormalised: a sum off 1 by more than 1e-9 is a ValueError.
    """
    w = np.asarray(weights, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    c = np.asarray(covs, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights: expected shape (K,), got {w.shape}")
    k = w.size
    if m.ndim != 2 or m.shape[0] != k:
        raise ValueError(f"means: expected shape ({k}, d), got {m.shape}")
    d = m.shape[1]
    if c.shape != (k, d, d):
        raise ValueError(f"covs: expected shape ({k}, {d}, {d}), got {c.shape}")
    for name, a in (("weights", w), ("means", m), ("covs", c)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: non-finite values")
    if np.any(w < 0) or abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"weights: expected non-negative values summing to 1, got sum {w.sum()!r}")
    scale = max(1.0, float(np.max(np.abs(c))))
    if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=0, atol=1e-12 * scale):
        raise ValueError("covs: expected symmetric matrices")
    if np.min(np.linalg.eigvalsh(c)) < -1e-10 * scale:
        raise ValueError("covs: expected positive semi-definite matrices")
    return w, m, c


def _check_points(name: str, x, d: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{name}: expected shape (N, {d}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: non-finite values")
    return arr


def _check_lengthscale(lengthscale: float) -> float:
    ls = float(lengthscale)
    if not (math.isfinite(ls) and ls > 0):
        raise ValueError(f"lengthscale: expected a finite positive number, got {lengthscale!r}")
    return ls


def mixture_first_moment(weights, means, covs) -> np.ndarray:
    """``E x = Σ w_k m_k``, shape (d,)."""
    w, m, _ = check_mixture(weights, means, covs)
    return w @ m


def mixture_second_moment(weights, means, covs) -> np.ndarray:
    """``E x xᵀ = Σ w_k (C_k + m_k m_kᵀ)``, shape (d, d)."""
    w, m, c = check_mixture(weights, means, covs)
    return np.einsum("k,kij->ij", w, c + m[:, :, None] * m[:, None, :])


def mixture_char_fn(weights, means, covs, omegas) -> np.ndarray:
    """Characteristic function ``Σ w_k exp(i ωᵀm_k − ½ ωᵀC_k ω)`` at omegas (M, d) -> complex (M,)."""
    w, m, c = check_mixture(weights, means, covs)
    om = _check_points("omegas", omegas, m.shape[1])
    phase = om @ m.T  # (M, K)
    quad = np.einsum("md,kde,me->mk", om, c, om)
    return np.exp(1j * phase - 0.5 * quad) @ w


def _gaussian_smoothing(delta: np.ndarray, cov: np.ndarray, ls: float) -> np.ndarray:
    """``det(I + C/l²)^{-1/2} exp(−½ δᵀ(l²I + C)^{-1}δ)`` for rows δ of delta (N, d)."""
    d = cov.shape[0]
    chol = linalg.cholesky(ls**2 * np.eye(d) + cov, lower=True)
    logdet = 2.0 * np.sum(np.log(np.diag(chol))) - d * math.log(ls**2)
    z = linalg.solve_triangular(chol, delta.T, lower=True)
    return np.exp(-0.5 * logdet - 0.5 * np.sum(z**2, axis=0))


def mixture_kernel_mean(weights, means, covs, points, lengthscale: float) -> np.ndarray:
    """Kernel mean embedding ``E_{x~p} k(x, y)`` at points y (P, d) -> (P,). See the module docstring."""
    w, m, c = check_mixture(weights, means, covs)
    y = _check_points("points", points, m.shape[1])
    ls = _check_lengthscale(lengthscale)
    out = np.zeros(y.shape[0])
    for k in range(w.size):
        out += w[k] * _gaussian_smoothing(y - m[k], c[k], ls)
    return out


def mixture_kernel_expectation(weights, means, covs, lengthscale: float) -> float:
    """``E_{x, x' ~ p} k(x, x')`` for independent x, x' (pairwise components, covariance C_i + C_j)."""
    w, m, c = check_mixture(weights, means, covs)
    ls = _check_lengthscale(lengthscale)
    total = 0.0
    for i in range(w.size):
        for j in range(w.size):
            val = _gaussian_smoothing((m[i] - m[j])[None, :], c[i] + c[j], ls)[0]
            total += w[i] * w[j] * val
    return float(total)


def char_fn_features(x, omegas) -> np.ndarray:
    """Per-sample ``exp(i xᵀω)`` for x (N, d), omegas (M, d) -> complex (N, M)."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2:
        raise ValueError(f"x: expected shape (N, d), got {xa.shape}")
    om = _check_points("omegas", omegas, xa.shape[1])
    return np.exp(1j * (xa @ om.T))


def kernel_features(x, points, lengthscale: float) -> np.ndarray:
    """Per-sample ``k(x, y_p) = exp(−|x − y_p|²/(2 l²))`` for x (N, d), points (P, d) -> (N, P)."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2:
        raise ValueError(f"x: expected shape (N, d), got {xa.shape}")
    y = _check_points("points", points, xa.shape[1])
    ls = _check_lengthscale(lengthscale)
    sq = np.sum(xa**2, 1)[:, None] + np.sum(y**2, 1)[None, :] - 2.0 * xa @ y.T
    return np.exp(-np.maximum(sq, 0.0) / (2.0 * ls**2))
