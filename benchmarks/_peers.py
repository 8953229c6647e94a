"""What users would write instead of scorebench's fused paths: the peers of workloads (a), (c), (d).

All peers get the same exact score (and Laplacian) of the isotropic equal-weight ring, written the
efficient way (one (N, d) x (d, K) product per call, as :func:`scorebench.bench.peers.torch_score`),
so the comparison measures the solver structure, not a slow score.

Likelihood (a)
    ``scipy_rk45_loglik``: ``scipy.integrate.solve_ivp(method="RK45")`` on the flattened batch
    with an exact numpy score and Laplacian (:func:`scorebench.bench.peers.scipy_flat_loglik`, the
    best plain-scipy user code); ``torchdiffeq_loglik``: ``torchdiffeq.odeint(method="dopri5")``
    on the batched (N, d + 1) state (:func:`scorebench.bench.peers.torchdiffeq_loglik`; only when
    torchdiffeq is installed). Both control one error norm over the whole batch.
Sampling (c), (d)
    ``torch_em_loop`` and ``torch_pc_loop``: the tutorials' loop over the time grid, a torch score
    per step, ``torch.randn`` noise, float32 or float64; PC with Song et al.'s batch-mean norms.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from scorebench.bench import peers

__all__ = ["ring_params", "scipy_rk45_loglik", "torchdiffeq_available", "torchdiffeq_loglik",
           "torch_em_loop", "torch_pc_loop"]


def ring_params(oracle):
    """(means (K, d), common variance) of an isotropic equal-weight mixture oracle."""
    mix = oracle.mix
    var = mix.covs[:, 0, 0]
    if not (np.allclose(mix.weights, mix.weights[0]) and np.all(var == var[0])):
        raise ValueError("oracle: the peers take an equal-weight isotropic mixture")
    return mix.means, float(var[0])


def scipy_rk45_loglik(oracle, x, eps, rtol, atol):
    """(logp, nfe) by scipy RK45 on the flattened batch, exact numpy score and Laplacian."""
    ring_params(oracle)  # the peers take the ring only
    return peers.scipy_flat_loglik(x, oracle, eps, rtol, atol, prior=oracle.exact_log_prob_T)


def torchdiffeq_available() -> bool:
    return peers.peer_available("torchdiffeq") is None


def torchdiffeq_loglik(oracle, x, eps, rtol, atol):
    """(logp, nfe) by torchdiffeq's batched dopri5 with the exact torch score and Laplacian."""
    ring_params(oracle)  # the peers take the ring only
    return peers.torchdiffeq_loglik(x, oracle, eps, rtol, atol, prior=oracle.exact_log_prob_T)


def _score(oracle, means_t, var, x, t):
    """The ring's exact score at time t (as ``scorebench.bench.peers.torch_score``: one matrix product)."""
    sde = oracle.sde
    a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
    c = a * a * var + s2
    am = a * means_t
    logits = (x @ am.T - 0.5 * (am * am).sum(1)) / c
    return (torch.softmax(logits, dim=1) @ am - x) / c


def _loop_start(oracle, x_T, dtype, seed):
    """(sde, means tensor, variance, generator, x) at the start of a torch sampling loop."""
    means, var = ring_params(oracle)
    gen = torch.Generator().manual_seed(seed)
    return oracle.sde, torch.as_tensor(means, dtype=dtype), var, gen, torch.as_tensor(x_T, dtype=dtype)


def torch_em_loop(oracle, x_T, grid, dtype=torch.float32, seed=0):
    """Reverse-SDE Euler–Maruyama, the tutorials' way: a Python loop over the grid."""
    sde, m, var, gen, x = _loop_start(oracle, x_T, dtype, seed)
    for i in range(len(grid) - 1):
        t, dt = float(grid[i]), float(grid[i + 1] - grid[i])
        score = _score(oracle, m, var, x, t)
        f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
        noise = torch.randn(x.shape, generator=gen, dtype=dtype)
        x = x + (f * x - g2 * score) * dt + math.sqrt(g2 * abs(dt)) * noise
    return x.double().numpy()


def torch_pc_loop(oracle, x_T, grid, snr=0.16, n_corrector=1, dtype=torch.float32, seed=0):
    """Predictor–corrector (EM predictor, Langevin corrector, batch-mean norms) in plain torch."""
    sde, m, var, gen, x = _loop_start(oracle, x_T, dtype, seed)
    for i in range(len(grid) - 1):
        t, t1 = float(grid[i]), float(grid[i + 1])
        dt = t1 - t
        score = _score(oracle, m, var, x, t)
        f, g2 = sde.drift_coeff(t), sde.diffusion_sq(t)
        x = x + (f * x - g2 * score) * dt + math.sqrt(g2 * abs(dt)) * torch.randn(
            x.shape, generator=gen, dtype=dtype)
        alpha = (sde.mean_coeff(t) / sde.mean_coeff(t1)) ** 2
        for _ in range(n_corrector):
            grad = _score(oracle, m, var, x, t1)
            z = torch.randn(x.shape, generator=gen, dtype=dtype)
            step = 2 * alpha * (snr * z.norm(dim=1).mean() / grad.norm(dim=1).mean()) ** 2
            x = x + step * grad + torch.sqrt(2 * step) * z
    return x.double().numpy()
