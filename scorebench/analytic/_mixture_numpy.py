r"""Reference numpy kernels for a Gaussian mixture seen through a linear forward SDE.

At time t the mixture is :math:`p_t = \sum_k w_k N(a\mu_k, C_k)` with
:math:`C_k = a^2 \Sigma_k + s^2 I = U_k\, \mathrm{diag}(\lambda_k)\, U_k^\top`,
:math:`\lambda_k = a^2 \Lambda_k + s^2`: the eigenvectors never change, so no factorisation is
done per t. With :math:`z_k = U_k^\top (x - a\mu_k)`:

.. math::

    \log N_k = -\tfrac12 \sum_i z_{ki}^2/\lambda_{ki} - \tfrac12 \sum_i \log\lambda_{ki}
               - \tfrac d2 \log 2\pi, \qquad
    g_k = C_k^{-1}(a\mu_k - x) = -U_k (z_k / \lambda_k),

responsibilities :math:`\pi_k = \mathrm{softmax}_k(\log w_k + \log N_k)` (log-sum-exp),
score :math:`s = \sum_k \pi_k g_k`, Hessian
:math:`\sum_k \pi_k (g_k g_k^\top - C_k^{-1}) - s s^\top` and Laplacian
:math:`\sum_k \pi_k (|g_k|^2 - \mathrm{tr}\, C_k^{-1}) - |s|^2`, evaluated as
:math:`\sum_k \pi_k (|g_k - s|^2 - \mathrm{tr}\, C_k^{-1})` so that nothing cancels.

This is the float64 reference the fast backends are tested against. It works in chunks of
points so its (chunk, K, d) temporaries stay near 32 MB whatever N is. Per point and component it
costs two d x d matrix-vector products (projection and back-projection), ~4 K d^2 flops, plus
K d divisions and K exponentials.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mixture_terms", "posterior_terms", "projected_means"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_CHUNK_ELEMS = 1 << 22


def _logsumexp_rows(v):
    """log sum_k exp(v[:, k]) with the row maximum shifted out (rows of -inf give -inf)."""
    m = v.max(axis=1)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m + np.log(np.exp(v - m[:, None]).sum(axis=1))


def projected_means(means, U):
    """``U_k^T mu_k`` for every component, shape (K, d)."""
    return np.einsum("kde,kd->ke", U, means)


def _per_point(v, sl):
    """Broadcastable (n, 1, 1) slice of a per-point coefficient, or the scalar itself."""
    return v[sl][:, None, None] if np.ndim(v) else v


def _variances(lam, a, s2):
    var = a * a * lam[None] + s2
    if np.any(var <= 0.0):
        raise ValueError(
            "t: the density at t = 0 does not exist for singular (point-mass) components; use t > 0"
        )
    return var


def mixture_terms(x, means, U, lam, logw, a, s2, want=("logp", "score")):
    """Evaluate log-density, score, Laplacian and/or Hessian of p_t at points ``x``.

    Parameters
    ----------
    x : ndarray, shape (N, d)
    means : ndarray, shape (K, d)
    U, lam : ndarray, shapes (K, d, d) and (K, d)
        Eigendecomposition of the data covariances.
    logw : ndarray, shape (K,)
        Log mixture weights.
    a, s2 : float or ndarray, shape (N,)
        Kernel mean coefficient and variance at each point's time.
    want : tuple of {"logp", "score", "laplacian", "hessian", "resp"}

    Returns
    -------
    dict mapping each requested name to an array of shape (N,), (N, d), (N,), (N, d, d), (N, K).
    """
    N, d = x.shape
    K = means.shape[0]
    mt = projected_means(means, U)
    per = 4 * d if "hessian" in want else 1
    chunk = max(1, _CHUNK_ELEMS // (K * d * per))
    out = {name: [] for name in want}
    for start in range(0, N, chunk):
        sl = slice(start, start + chunk)
        xs = x[sl]
        ac, s2c = _per_point(a, sl), _per_point(s2, sl)
        z = np.einsum("nd,kde->nke", xs, U) - ac * mt[None]
        var = _variances(lam, ac, s2c)
        inv = 1.0 / var
        zi = z * inv
        logdet = np.log(var).sum(axis=-1)
        logr = logw[None] - 0.5 * (z * zi).sum(axis=-1) - 0.5 * logdet - 0.5 * d * _LOG_2PI
        logp = _logsumexp_rows(logr)
        if "logp" in want:
            out["logp"].append(logp)
        if not set(want) - {"logp"}:
            continue
        pi = np.exp(logr - logp[:, None])
        if "resp" in want:
            out["resp"].append(pi)
        g = -np.einsum("kde,nke->nkd", U, zi)
        score = np.einsum("nk,nkd->nd", pi, g)
        if "score" in want:
            out["score"].append(score)
        if "laplacian" in want:
            tr = np.broadcast_to(inv.sum(axis=-1), pi.shape)
            # sum_k pi_k |g_k - s|^2 equals sum_k pi_k |g_k|^2 - |s|^2 without the cancellation.
            dev = g - score[:, None, :]
            out["laplacian"].append((pi * ((dev * dev).sum(axis=-1) - tr)).sum(axis=1))
        if "hessian" in want:
            cinv = np.einsum("kde,nke,kfe->nkdf", U, np.broadcast_to(inv, z.shape), U)
            h = np.einsum("nk,nkd,nkf->ndf", pi, g, g) - np.einsum("nk,nkdf->ndf", pi, cinv)
            out["hessian"].append(h - score[:, :, None] * score[:, None, :])
    return {name: np.concatenate(vals, axis=0) for name, vals in out.items()}


def posterior_terms(x, means, U, lam, logw, a, s2):
    r"""Posterior of x_0 given x_t, component by component (valid for singular covariances).

    .. math::

        m'_k = \mu_k + a \Sigma_k C_k^{-1}(x - a\mu_k) = \mu_k + U_k\, \mathrm{diag}(a\Lambda_k/\lambda_k)\, z_k,
        \qquad C'_k = \Sigma_k - a^2 \Sigma_k C_k^{-1} \Sigma_k = U_k\, \mathrm{diag}(s^2 \Lambda_k/\lambda_k)\, U_k^\top .

    Returns responsibilities (N, K), posterior means (N, K, d) and posterior covariances,
    (K, d, d) for a common time or (N, K, d, d) for per-point times.
    """
    resp = mixture_terms(x, means, U, lam, logw, a, s2, want=("resp",))["resp"]
    mt = projected_means(means, U)
    per_point = np.ndim(a) > 0
    ac = a[:, None, None] if per_point else a
    s2c = s2[:, None, None] if per_point else s2
    z = np.einsum("nd,kde->nke", x, U) - ac * mt[None]
    var = _variances(lam, ac, s2c)
    gain = ac * lam[None] / var
    post_mean = means[None] + np.einsum("kde,nke->nkd", U, gain * z)
    shrink = s2c * lam[None] / var
    if per_point:
        post_cov = np.einsum("kde,nke,kfe->nkdf", U, shrink, U)
    else:
        post_cov = np.einsum("kde,ke,kfe->kdf", U, shrink[0], U)
    return resp, post_mean, post_cov
