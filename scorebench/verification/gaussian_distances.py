"""Closed-form distances between Gaussians: the noise-free weak errors of linear-Gaussian schemes.

For one-component data every scheme in scorebench is a linear-Gaussian recursion, so the law of the
discretised sample is ``N(m1, C1)`` exactly and its distance to the exact ``N(m2, C2)`` needs no Monte
Carlo (Pierret & Galerne, ICML 2025):

* 2-Wasserstein: ``W2² = |m1 − m2|² + tr(C1 + C2 − 2 (C2^{½} C1 C2^{½})^{½})`` (Dowson & Landau 1982);
* Kullback–Leibler: ``KL(N1 ‖ N2) = ½ [tr(C2⁻¹C1) + (m2 − m1)ᵀC2⁻¹(m2 − m1) − d + ln det C2 − ln det C1]``.

Matrix square roots of the symmetric PSD matrices are taken through ``eigh`` (eigenvalues clipped at
0, which only removes round-off) rather than a general ``sqrtm``: that keeps them real and symmetric
even for singular covariances (point masses). The trace term is clipped at 0 for the same reason.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["w2_gaussian", "kl_gaussian", "psd_sqrt"]


def _check_gaussian(name_m: str, name_c: str, mean, cov, d: int | None = None):
    m = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    if m.ndim != 1 or (d is not None and m.shape[0] != d):
        raise ValueError(f"{name_m}: expected shape ({d if d is not None else 'd'},), got {m.shape}")
    d = m.shape[0]
    c = np.asarray(cov, dtype=np.float64)
    if d == 1 and c.ndim < 2:
        c = c.reshape(1, 1)
    if c.shape != (d, d):
        raise ValueError(f"{name_c}: expected shape ({d}, {d}), got {c.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ValueError(f"{name_m}, {name_c}: non-finite values")
    scale = max(1.0, float(np.max(np.abs(c))))
    if not np.allclose(c, c.T, rtol=0, atol=1e-12 * scale):
        raise ValueError(f"{name_c}: expected a symmetric matrix")
    if np.min(np.linalg.eigvalsh(c)) < -1e-10 * scale:
        raise ValueError(f"{name_c}: expected a positive semi-definite matrix")
    return m, 0.5 * (c + c.T)


def psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    vals, vecs = np.linalg.eigh(0.5 * (c + c.T))
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def w2_gaussian(mean1, cov1, mean2, cov2) -> float:
    """2-Wasserstein distance between ``N(mean1, cov1)`` and ``N(mean2, cov2)`` (PSD covariances)."""
    m1, c1 = _check_gaussian("mean1", "cov1", mean1, cov1)
    m2, c2 = _check_gaussian("mean2", "cov2", mean2, cov2, d=m1.shape[0])
    s2 = psd_sqrt(c2)
    cross = psd_sqrt(s2 @ c1 @ s2)
    trace = float(np.trace(c1) + np.trace(c2) - 2.0 * np.trace(cross))
    return math.sqrt(float(np.sum((m1 - m2) ** 2)) + max(trace, 0.0))


def kl_gaussian(mean1, cov1, mean2, cov2) -> float:
    """``KL(N(mean1, cov1) ‖ N(mean2, cov2))`` in nats; both covariances must be positive definite."""
    m1, c1 = _check_gaussian("mean1", "cov1", mean1, cov1)
    m2, c2 = _check_gaussian("mean2", "cov2", mean2, cov2, d=m1.shape[0])
    d = m1.shape[0]
    try:
        l1 = np.linalg.cholesky(c1)
    except np.linalg.LinAlgError:
        raise ValueError("cov1: expected a positive definite matrix (KL is infinite otherwise)") from None
    try:
        l2 = np.linalg.cholesky(c2)
    except np.linalg.LinAlgError:
        raise ValueError("cov2: expected a positive definite matrix (KL is infinite otherwise)") from None
    a = np.linalg.solve(l2, l1)  # L2⁻¹ L1: tr(C2⁻¹ C1) = |A|_F²
    z = np.linalg.solve(l2, m2 - m1)
    logdet = 2.0 * float(np.sum(np.log(np.diag(l2))) - np.sum(np.log(np.diag(l1))))
    return 0.5 * (float(np.sum(a**2)) + float(z @ z) - d + logdet)
