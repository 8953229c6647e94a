"""Statistical acceptance: KS with the DKW–Massart bound, one-sample MMD with McDiarmid, Monte Carlo bars.

Every threshold here is a finite-sample bound, valid for every n, so a correct sampler fails a test
with probability at most α (up to the sampler's discretisation bias, which the caller keeps small).

* **KS** (1-D): ``D_n = sup_x |F_n(x) − F(x)|``. Dvoretzky–Kiefer–Wolfowitz with Massart's constant,
  ``P(D_n > ε) <= 2 exp(−2 n ε²)``, gives the threshold ``ε = sqrt(ln(2/α) / (2n))``.
* **MMD** (any d), Gaussian kernel ``k(x, y) = exp(−|x − y|²/(2 l²))`` with ``0 <= k <= 1 = k(x, x)``.
  The V-statistic ``MMD_V² = ‖μ̂_n − μ_p‖²_H = (1/n²) Σ_ij k(x_i, x_j) − (2/n) Σ_i E_p k(x_i, ·) + E_pp k``
  is a squared RKHS norm (never negative), with the p-side terms exact
  (:mod:`~scorebench.verification.mixture_expectations`). Derivation of the threshold: (i)
  ``E ‖μ̂_n − μ_p‖ <= sqrt(E ‖μ̂_n − μ_p‖²) = sqrt((E k(x, x) − ‖μ_p‖²)/n) <= sqrt(1/n)``;
  (ii) replacing one x_i moves ``μ̂_n`` by ``(φ(x_i) − φ(x_i'))/n``, of norm ``<= 2/n`` since ``‖φ(x)‖ = 1``,
  so McDiarmid gives ``P(MMD_V − E MMD_V >= ε) <= exp(−2ε² / (n · 4/n²)) = exp(−ε² n / 2)``;
  (iii) setting this to α: the test rejects when
  ``MMD_V > sqrt(1/n) (1 + sqrt(2 ln(1/α)))``. (Gretton et al. 2012, Thm. 7, one-sample form;
  conservative: ``‖φ(x) − φ(x')‖ <= √2`` would also hold for this non-negative kernel.)
* **Bonferroni**: α per assertion = α_total / number of assertions.
* **Monte Carlo**: means with standard errors ``std(ddof=1)/sqrt(n)``; a weak error
  ``|mean φ(X_h) − E_p φ|`` with its bar.

References
----------
Massart, P. (1990). The tight constant in the Dvoretzky–Kiefer–Wolfowitz inequality. *Ann. Probab.*
Gretton, A. et al. (2012). A kernel two-sample test. *JMLR* 13, 723-773.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scorebench.verification.gaussian_distances import kl_gaussian, psd_sqrt, w2_gaussian
from scorebench.verification.mixture_expectations import (
    char_fn_features,
    check_mixture,
    kernel_features,
    mixture_char_fn,
    mixture_first_moment,
    mixture_kernel_expectation,
    mixture_kernel_mean,
    mixture_second_moment,
)

__all__ = [
    "KSResult",
    "MMDResult",
    "WeakError",
    "ks_test_cdf",
    "dkw_threshold",
    "mmd_test_mixture",
    "mcdiarmid_threshold",
    "bonferroni",
    "mean_with_se",
    "weak_error_with_bar",
    # re-exported from mixture_expectations and gaussian_distances
    "mixture_first_moment",
    "mixture_second_moment",
    "mixture_char_fn",
    "mixture_kernel_mean",
    "mixture_kernel_expectation",
    "char_fn_features",
    "kernel_features",
    "w2_gaussian",
    "kl_gaussian",
    "psd_sqrt",
]

_BLOCK = 1024  # rows per block of the n x n kernel sum (bounds memory at 8 MB per 1024 x 1024)


@dataclass(frozen=True)
class KSResult:
    statistic: float
    threshold: float
    passed: bool
    n: int
    alpha: float


@dataclass(frozen=True)
class MMDResult:
    """One-sample MMD test. ``mmd = sqrt(mmd2_v)`` is compared with ``threshold``; ``mmd2_u`` is the
    unbiased U-statistic, reported for information."""

    mmd: float
    mmd2_v: float
    mmd2_u: float
    threshold: float
    passed: bool
    n: int
    alpha: float
    lengthscale: float


@dataclass(frozen=True)
class WeakError:
    """``error = ‖mean φ(X_h) − exact‖`` (Euclidean over functionals) and ``se = sqrt(Σ_j se_j²)``, a
    bound on the rms noise of ``error`` (by the triangle inequality); ``errors``, ``ses`` per functional."""

    error: float
    se: float
    errors: np.ndarray
    ses: np.ndarray
    n: int


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0 < a < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    return a


def dkw_threshold(n: int, alpha: float) -> float:
    """``sqrt(ln(2/α) / (2n))``: ``P(D_n > threshold) <= α`` for every n (DKW–Massart)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    return math.sqrt(math.log(2.0 / _check_alpha(alpha)) / (2.0 * n))


def mcdiarmid_threshold(n: int, alpha: float) -> float:
    """``sqrt(1/n) (1 + sqrt(2 ln(1/α)))`` on the V-statistic MMD (kernel bounded by 1)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    return math.sqrt(1.0 / n) * (1.0 + math.sqrt(2.0 * math.log(1.0 / _check_alpha(alpha))))


def ks_test_cdf(samples_1d, cdf: Callable[[np.ndarray], np.ndarray], alpha: float) -> KSResult:
    """One-sample Kolmogorov–Smirnov test of samples (n,) or (n, 1) against a continuous CDF.

    ``D_n = max_i max(i/n − F(x_(i)), F(x_(i)) − (i−1)/n)``; passed when ``D_n <= sqrt(ln(2/α)/(2n))``.
    """
    x = np.asarray(samples_1d, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"samples_1d: expected shape (n,) or (n, 1), got {np.shape(samples_1d)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples_1d: non-finite values")
    alpha = _check_alpha(alpha)
    xs = np.sort(x)
    f = np.asarray(cdf(xs), dtype=np.float64).reshape(-1)
    if f.shape != xs.shape or not np.all(np.isfinite(f)) or np.any(f < 0) or np.any(f > 1):
        raise ValueError(f"cdf: expected {xs.size} finite values in [0, 1], got shape {f.shape}")
    n = xs.size
    i = np.arange(1, n + 1)
    stat = float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))
    thr = dkw_threshold(n, alpha)
    return KSResult(stat, thr, stat <= thr, n, alpha)


def _mean_kernel_matrix(x: np.ndarray, ls: float) -> tuple[float, float]:
    """(sum over all i, j of k(x_i, x_j), sum over i != j) / (n², n(n−1))."""
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, _BLOCK):
        total += float(np.sum(kernel_features(x[start : start + _BLOCK], x, ls)))
    v = total / n**2
    u = (total - n) / (n * (n - 1)) if n > 1 else math.nan
    return v, u


def mmd_test_mixture(samples, weights, means, covs, lengthscale: float, alpha: float) -> MMDResult:
    """One-sample MMD test of samples (n, d) against the mixture ``Σ w_k N(m_k, C_k)``.

    See the module docstring for the statistic and the McDiarmid threshold.
    """
    w, m, c = check_mixture(weights, means, covs)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != m.shape[1] or x.shape[0] < 2:
        raise ValueError(f"samples: expected shape (n >= 2, {m.shape[1]}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples: non-finite values")
    alpha = _check_alpha(alpha)
    n = x.shape[0]
    kxx_v, kxx_u = _mean_kernel_matrix(x, lengthscale)
    kxp = float(np.mean(mixture_kernel_mean(w, m, c, x, lengthscale)))
    kpp = mixture_kernel_expectation(w, m, c, lengthscale)
    mmd2_v = max(kxx_v - 2.0 * kxp + kpp, 0.0)  # a squared norm: clip only the round-off below 0
    mmd2_u = kxx_u - 2.0 * kxp + kpp
    mmd = math.sqrt(mmd2_v)
    thr = mcdiarmid_threshold(n, alpha)
    return MMDResult(mmd, mmd2_v, mmd2_u, thr, mmd <= thr, n, alpha, float(lengthscale))


def bonferroni(alpha_total: float, n_tests: int) -> float:
    """Per-test level ``alpha_total / n_tests`` so the family-wise error rate is at most ``alpha_total``."""
    a = _check_alpha(alpha_total)
    if int(n_tests) != n_tests or n_tests < 1:
        raise ValueError(f"n_tests: expected a positive integer, got {n_tests!r}")
    return a / int(n_tests)


def mean_with_se(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and standard error ``sqrt(var_re + var_im) / sqrt(n)`` (ddof=1) along ``axis``."""
    v = np.asarray(values)
    if not (np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_)):
        raise TypeError(f"values: expected numbers, got dtype {v.dtype}")
    if v.ndim == 0 or v.shape[axis] < 2:
        raise ValueError(f"values: expected at least 2 samples along axis {axis}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values: non-finite values")
    n = v.shape[axis]
    mean = np.mean(v, axis=axis)
    var = np.var(v.real, axis=axis, ddof=1) + (np.var(v.imag, axis=axis, ddof=1) if np.iscomplexobj(v) else 0.0)
    return mean, np.sqrt(var / n)


def weak_error_with_bar(values_h, exact) -> WeakError:
    """Weak error ``|mean φ(X_h) − E_p φ|`` with its Monte Carlo bar.

    Parameters
    ----------
    values_h : array_like, shape (n,) or (n, m)
        ``φ_j(X_h^{(i)})`` for n samples and m functionals (real or complex).
    exact : float or array_like, shape (m,)
        The exact ``E_p φ_j``.
    """
    v = np.asarray(values_h)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"values_h: expected shape (n,) or (n, m), got {np.shape(values_h)}")
    ex = np.atleast_1d(np.asarray(exact))
    if ex.shape != (v.shape[1],):
        raise ValueError(f"exact: expected shape ({v.shape[1]},), got {np.shape(exact)}")
    if not np.all(np.isfinite(ex)):
        raise ValueError("exact: non-finite values")
    mean, se = mean_with_se(v, axis=0)
    errs = np.abs(mean - ex)
    return WeakError(float(np.sqrt(np.sum(errs**2))), float(np.sqrt(np.sum(se**2))), errs, se, v.shape[0])
