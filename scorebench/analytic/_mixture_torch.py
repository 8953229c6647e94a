r"""torch kernels for a Gaussian mixture under a linear SDE (differentiable, any device).

The same maths as :mod:`._mixture_numpy` (see there): project once per component with the
cached eigenvectors, scale by :math:`1/(a^2\Lambda + s^2)`, log-sum-exp responsibilities. The
time coefficients a and s^2 are computed in float64 and cast to the input's dtype only when
they multiply the state. Parameters are cached per (dtype, device).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["mixture_terms_torch"]


def _params(oracle, dtype, device):
    key = (dtype, device)
    cache = oracle._torch_cache
    if key not in cache:
        m = oracle.mix
        as_t = lambda v: torch.as_tensor(np.ascontiguousarray(v), dtype=dtype, device=device)
        mt = np.einsum("kde,kd->ke", m.eigvecs, m.means)
        cache[key] = (as_t(m.eigvecs), as_t(m.eigvals), as_t(mt), as_t(m.log_weights))
    return cache[key]


def _coef(v, dtype, device):
    if np.ndim(v) == 0:
        return float(v)
    return torch.as_tensor(np.asarray(v), dtype=dtype, device=device)[:, None, None]


_CHUNK_ELEMS = 1 << 22


def mixture_terms_torch(oracle, x, a, s2, want):
    """log p_t, score, Laplacian and/or Hessian at a torch batch ``x`` (N, d).

    Works in chunks of points so the (chunk, K, d) temporaries stay near 32 MB in float64;
    chunks are joined with ``torch.cat``, which keeps the result differentiable.
    """
    n, d = x.shape
    per = 4 * d if "hessian" in want else 1
    chunk = max(1, _CHUNK_ELEMS // (oracle.K * d * per))
    if n <= chunk:
        return _terms(oracle, x, a, s2, want)
    parts = []
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        parts.append(_terms(oracle, x[sl], a if np.ndim(a) == 0 else a[sl],
                            s2 if np.ndim(s2) == 0 else s2[sl], want))
    return {k: torch.cat([p[k] for p in parts], dim=0) for k in parts[0]}


def _terms(oracle, x, a, s2, want):
    U, lam, mt, logw = _params(oracle, x.dtype, x.device)
    d = x.shape[1]
    ac, s2c = _coef(a, x.dtype, x.device), _coef(s2, x.dtype, x.device)
    z = torch.einsum("nd,kde->nke", x, U) - ac * mt[None]
    var = ac * ac * lam[None] + s2c
    inv = 1.0 / var
    zi = z * inv
    logdet = torch.log(var).sum(dim=-1)
    logr = logw[None] - 0.5 * (z * zi).sum(dim=-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)
    logp = torch.logsumexp(logr, dim=1)
    out = {}
    if "logp" in want:
        out["logp"] = logp
    if set(want) - {"logp"}:
        pi = torch.exp(logr - logp[:, None])
        if "resp" in want:
            out["resp"] = pi
        g = -torch.einsum("kde,nke->nkd", U, zi)
        score = torch.einsum("nk,nkd->nd", pi, g)
        if "score" in want:
            out["score"] = score
        if "laplacian" in want:
            tr = inv.sum(dim=-1).expand_as(pi)
            dev = g - score[:, None, :]  # sum_k pi_k |g_k - s|^2: no cancellation
            out["laplacian"] = (pi * ((dev * dev).sum(-1) - tr)).sum(1)
        if "hessian" in want:
            cinv = torch.einsum("kde,nke,kfe->nkdf", U, inv.expand_as(z), U)
            h = torch.einsum("nk,nkd,nkf->ndf", pi, g, g) - torch.einsum("nk,nkdf->ndf", pi, cinv)
            out["hessian"] = h - score[:, :, None] * score[:, None, :]
    return out
