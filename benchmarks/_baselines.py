r"""The mixture score and Laplacian written "the obvious way" in plain numpy: the speed baseline.

For :math:`p_t = \sum_k w_k N(a\mu_k, C_k)`, :math:`C_k = a^2\Sigma_k + s^2 I`, this is what one
writes without thinking about speed: per call and per component an ``np.linalg.inv`` and an
``np.linalg.slogdet`` of :math:`C_k`, the differences :math:`x - a\mu_k` and gradients
:math:`g_k = -C_k^{-1}(x - a\mu_k)` kept as (N, K, d) arrays, ``scipy.special.logsumexp`` for the
responsibilities, then :math:`s = \sum_k \pi_k g_k` and
:math:`\Delta \log p = \sum_k \pi_k (|g_k|^2 - \mathrm{tr}\, C_k^{-1}) - |s|^2`.

The only concession to size: the points are taken in chunks so that the (n, K, d) arrays stay
below 2**25 elements (256 MB), because N = 1e5, K = 64, d = 64 would otherwise need ~10 GB. For
d K <= 335 (every group but d = 16, 64 with K = 64 and d = 64, K = 8) there is one chunk.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

__all__ = ["obvious_score_laplacian"]

_MAX_ELEMS = 1 << 25


def _chunk(x, weights, means, covs, a, s2, want_laplacian):
    N, d = x.shape
    K = means.shape[0]
    logr = np.empty((N, K))
    g = np.empty((N, K, d))
    tr = np.empty(K)
    for k in range(K):
        C = a * a * covs[k] + s2 * np.eye(d)
        inv = np.linalg.inv(C)
        _, logdet = np.linalg.slogdet(C)
        diff = x - a * means[k]
        sol = diff @ inv
        logr[:, k] = (np.log(weights[k]) - 0.5 * np.sum(diff * sol, axis=1) - 0.5 * logdet
                      - 0.5 * d * np.log(2 * np.pi))
        g[:, k, :] = -sol
        tr[k] = np.trace(inv)
    pi = np.exp(logr - logsumexp(logr, axis=1, keepdims=True))
    score = np.einsum("nk,nkd->nd", pi, g)
    if not want_laplacian:
        return score, None
    lap = np.sum(pi * (np.sum(g * g, axis=2) - tr), axis=1) - np.sum(score * score, axis=1)
    return score, lap


def obvious_score_laplacian(x, weights, means, covs, a, s2, want_laplacian=True):
    """Score (N, d) and, if asked, Laplacian (N,) of the mixture at ``x`` (common time only)."""
    N, d = x.shape
    step = max(1, _MAX_ELEMS // (means.shape[0] * d))
    parts = [_chunk(x[i:i + step], weights, means, covs, a, s2, want_laplacian)
             for i in range(0, N, step)]
    score = np.concatenate([p[0] for p in parts])
    lap = np.concatenate([p[1] for p in parts]) if want_laplacian else None
    return score, lap
