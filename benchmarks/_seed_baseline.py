r"""The seed-style PF-ODE likelihood baselines the likelihood benchmark measures against.

The approach of the tutorial seed (``../shared/seeds/000_3dde83f5b4a382a0.txt``): the augmented
probability-flow ODE of the whole batch is flattened into one vector ``[x.ravel(), logp]`` of
length N d + N and handed to ``scipy.integrate.solve_ivp(method="RK45")``; the right-hand side
converts to torch, evaluates the score network, and gets the divergence by autograd. Written
here from that description, with two differences that only help the baseline:

* the score is a well-written closed form of an isotropic Gaussian mixture, one matrix multiply
  per call (:class:`TorchMixtureScore`), instead of a neural network;
* the divergence is the exact trace, one backward pass per dimension (the seed's single
  ``grad(sum(score))`` gives the sum of all Jacobian entries, which equals the trace only in 1-D).

Its accuracy problem is structural: scipy's error norm is one RMS over all N d + N components,
so single points can drift far beyond the tolerance while the batch average looks fine.

:func:`scipy_numpy_loglik` is the second baseline: the same flattened scipy RK45 solve with an
exact numpy score and Laplacian (no autograd).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

__all__ = ["TorchMixtureScore", "seed_style_loglik", "scipy_numpy_loglik", "ring_mixture_params"]


def ring_mixture_params(K: int = 8, radius: float = 4.0, variance: float = 0.1):
    """Means (K, 2) on a circle and the common isotropic variance of the benchmark mixture."""
    ang = 2.0 * math.pi * np.arange(K) / K
    return np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius, variance


class TorchMixtureScore:
    r"""Score of :math:`p_t = \frac1K \sum_k N(a\mu_k, c I)`, :math:`c = a^2\sigma^2 + s^2`.

    ``logits = x (a\mu)^T / c - |a\mu|^2 / (2c)`` (the common ``|x|^2`` cancels in the softmax),
    ``score = (softmax(logits) (a\mu) - x) / c``: one (N, d) x (d, K) product per call.
    """

    def __init__(self, means, variance, sde, dtype=torch.float64):
        self.means = torch.as_tensor(means, dtype=dtype)
        self.variance = float(variance)
        self.sde = sde
        self.dtype = dtype

    def __call__(self, x, t: float):
        a, s2 = self.sde.mean_coeff(t), self.sde.marginal_var(t)
        c = a * a * self.variance + s2
        am = a * self.means
        logits = (x @ am.T - 0.5 * (am * am).sum(1)) / c
        return (torch.softmax(logits, dim=1) @ am - x) / c


def _flat_solve(rhs, x, eps, T, rtol, atol):
    n, d = x.shape
    y0 = np.concatenate([x.ravel(), np.zeros(n)])
    sol = solve_ivp(rhs, (eps, T), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    yT = sol.y[:, -1]
    return yT[: n * d].reshape(n, d), yT[n * d :], sol.nfev


def seed_style_loglik(x, score, sde, eps=1e-5, rtol=1e-5, atol=1e-5, prior=None):
    """log p_eps(x) by the seed's flattened scipy RK45 solve; torch score, autograd divergence.

    Returns
    -------
    logp : ndarray, shape (N,)
    nfe : int
        Right-hand-side evaluations reported by scipy.
    """
    n, d = x.shape

    def rhs(t, y):
        xt = torch.as_tensor(y[: n * d].reshape(n, d), dtype=score.dtype).requires_grad_(True)
        f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
        s = score(xt, t)
        trace = torch.zeros(n, dtype=score.dtype)
        for i in range(d):  # one backward pass per dimension
            (gi,) = torch.autograd.grad(s[:, i].sum(), xt, retain_graph=i < d - 1)
            trace = trace + gi[:, i]
        v = f * xt - 0.5 * g2 * s
        div = d * f - 0.5 * g2 * trace
        return np.concatenate([v.detach().double().numpy().ravel(), div.detach().double().numpy()])

    x_T, delta, nfe = _flat_solve(rhs, x, eps, sde.T, rtol, atol)
    prior_lp = sde.prior_log_prob(x_T) if prior is None else prior(x_T)
    return prior_lp + delta, nfe


def scipy_numpy_loglik(x, means, variance, sde, eps=1e-5, rtol=1e-5, atol=1e-5, prior=None):
    """The same flattened scipy RK45 solve with an exact numpy score and Laplacian."""
    n, d = x.shape

    def rhs(t, y):
        xs = y[: n * d].reshape(n, d)
        a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
        c = a * a * variance + s2
        am = a * means
        logits = (xs @ am.T - 0.5 * (am * am).sum(1)) / c
        logits -= logits.max(1, keepdims=True)
        pi = np.exp(logits)
        pi /= pi.sum(1, keepdims=True)
        g = (am[None] - xs[:, None, :]) / c  # (n, K, d)
        s = np.einsum("nk,nkd->nd", pi, g)
        lap = (pi * ((g * g).sum(-1) - d / c)).sum(1) - (s * s).sum(1)
        f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
        return np.concatenate([(f * xs - 0.5 * g2 * s).ravel(), d * f - 0.5 * g2 * lap])

    x_T, delta, nfe = _flat_solve(rhs, x, eps, sde.T, rtol, atol)
    prior_lp = sde.prior_log_prob(x_T) if prior is None else prior(x_T)
    return prior_lp + delta, nfe
