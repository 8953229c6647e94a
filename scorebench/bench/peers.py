r"""What users would pick instead of scorebench, fed the same exact score and the same points.

Score functions (:func:`numpy_score` / :func:`torch_score`): a mixture whose components all
share one isotropic variance (the ring) gets the one-matrix-multiply closed form

.. math::

    c = a^2\sigma^2 + s^2,\quad \pi = \mathrm{softmax}\big((x (a\mu)^\top - |a\mu|^2/2)/c
    + \log w\big),\quad \nabla\log p_t = (\pi\, a\mu - x)/c,\quad
    \Delta\log p_t = \big(\textstyle\sum_k \pi_k |a\mu_k - x|^2 - |\pi a\mu - x|^2\big)/c^2 - d/c,

the fastest exact score a user could write; any other mixture uses the oracle's own numpy
reference or torch kernels. Peers:

``scipy RK45 flat``
    ``scipy.integrate.solve_ivp(method="RK45")`` on the flattened augmented state
    ``[x.ravel(), l]`` (N d + N components, one RMS error norm over all of them) with the numpy
    score and Laplacian.
``seed-style``
    the tutorial seed's way: the same flattened scipy solve, the score in torch and the divergence
    by autograd (one backward pass per dimension: the exact trace).
``torchdiffeq dopri5``
    ``torchdiffeq.odeint(method="dopri5")`` on the batched augmented state (N, d + 1), torch
    score and exact Laplacian (needs the ``peers`` extra).
``torch EM loop`` / ``torch PC loop``
    the plain torch sampling loops on a uniform grid (PC: EM predictor, then one Langevin
    corrector with Song et al.'s batch-averaged snr step, as :mod:`scorebench.solvers.predictor_corrector`).
``torchsde sdeint``
    ``torchsde.sdeint(method="euler")`` on the reverse SDE in reversed time ``u = T - t``
    (needs the ``peers`` extra).
``plain numpy``
    score and Laplacian "the obvious way": per component ``np.linalg.inv`` and ``slogdet``,
    (n, K, d) temporaries, ``scipy.special.logsumexp``; the kernel workloads' baseline.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

__all__ = [
    "peer_available", "numpy_score", "torch_score", "scipy_flat_loglik", "seed_style_loglik",
    "torchdiffeq_loglik", "torch_em_loop", "torch_pc_loop", "torchsde_em", "plain_numpy_score_laplacian",
]

def peer_available(module: str):
    """``None`` when ``module`` imports, else the note that explains the skipped row."""
    if importlib.util.find_spec(module) is None:
        return f"{module} not installed (pip install 'scorebench[peers]')"
    return None


def _shared_isotropic(mix) -> bool:
    lam = mix.eigvals
    return bool(np.allclose(lam, lam.flat[0], rtol=1e-12, atol=0.0))


def numpy_score(oracle):
    """``fn(x, t) -> (score (N, d), laplacian (N,))`` in float64 numpy, exact."""
    mix, sde = oracle.mix, oracle.sde
    if not _shared_isotropic(mix):
        from scorebench.analytic.oracle import MixtureOracle

        ref = MixtureOracle(mix, sde, backend="numpy")
        return ref.score_and_laplacian
    mu, var, logw, d = mix.means, float(mix.eigvals.flat[0]), mix.log_weights, mix.d

    def fn(x, t):
        a, s2 = float(sde.mean_coeff(t)), float(sde.marginal_var(t))
        c, am = a * a * var + s2, a * mu
        logits = (x @ am.T - 0.5 * np.sum(am * am, axis=1)) / c + logw
        logits -= logits.max(axis=1, keepdims=True)
        pi = np.exp(logits)
        pi /= pi.sum(axis=1, keepdims=True)
        m = pi @ am
        score = (m - x) / c
        sq = np.sum(x * x, axis=1)
        e2 = pi @ np.sum(am * am, axis=1) - 2.0 * np.sum(m * x, axis=1) + sq  # E|a mu - x|^2
        lap = (e2 - np.sum((m - x) ** 2, axis=1)) / (c * c) - d / c
        return score, lap

    return fn


def torch_score(oracle, dtype=None, laplacian=False):
    """``fn(x, t)`` on torch tensors: the score (differentiable), or ``(score, laplacian)``."""
    import torch

    dtype = dtype or torch.float64
    mix, sde = oracle.mix, oracle.sde
    if not _shared_isotropic(mix):
        def generic(x, t):
            if laplacian:
                return oracle.score_and_laplacian(x, float(t))
            return oracle.score(x, float(t))
        return generic
    mu = torch.as_tensor(mix.means, dtype=dtype)
    logw = torch.as_tensor(mix.log_weights, dtype=dtype)
    var, d = float(mix.eigvals.flat[0]), mix.d

    def fn(x, t):
        a, s2 = float(sde.mean_coeff(float(t))), float(sde.marginal_var(float(t)))
        c, am = a * a * var + s2, a * mu
        pi = torch.softmax((x @ am.T - 0.5 * (am * am).sum(1)) / c + logw, dim=1)
        m = pi @ am
        score = (m - x) / c
        if not laplacian:
            return score
        e2 = pi @ (am * am).sum(1) - 2.0 * (m * x).sum(1) + (x * x).sum(1)
        return score, (e2 - ((m - x) ** 2).sum(1)) / (c * c) - d / c

    return fn


def _flat_solve(rhs, x, eps, T, rtol, atol):
    from scipy.integrate import solve_ivp

    n, d = x.shape
    sol = solve_ivp(rhs, (eps, T), np.concatenate([x.ravel(), np.zeros(n)]), method="RK45",
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    y = sol.y[:, -1]
    return y[: n * d].reshape(n, d), y[n * d:], int(sol.nfev)


def scipy_flat_loglik(x, oracle, eps, rtol, atol, prior):
    """``(logp, nfe)``: flattened scipy RK45 with the numpy exact score and Laplacian."""
    n, d = x.shape
    sde, score = oracle.sde, numpy_score(oracle)

    def rhs(t, y):
        xs = y[: n * d].reshape(n, d)
        s, lap = score(xs, t)
        f, g2 = float(sde.drift_coeff(t)), float(sde.diffusion_sq(t))
        return np.concatenate([(f * xs - 0.5 * g2 * s).ravel(), d * f - 0.5 * g2 * lap])

    x_T, delta, nfe = _flat_solve(rhs, x, eps, float(sde.T), rtol, atol)
    return prior(x_T) + delta, nfe


def seed_style_loglik(x, oracle, eps, rtol, atol, prior):
    """``(logp, nfe)``: flattened scipy RK45, torch score, autograd divergence (d backward passes)."""
    import torch

    n, d = x.shape
    sde, score = oracle.sde, torch_score(oracle)

    def rhs(t, y):
        xt = torch.as_tensor(y[: n * d].reshape(n, d)).requires_grad_(True)
        s = score(xt, t)
        trace = torch.zeros(n, dtype=xt.dtype)
        for i in range(d):
            (gi,) = torch.autograd.grad(s[:, i].sum(), xt, retain_graph=i < d - 1)
            trace = trace + gi[:, i]
        f, g2 = float(sde.drift_coeff(t)), float(sde.diffusion_sq(t))
        v = (f * xt - 0.5 * g2 * s).detach().numpy()
        return np.concatenate([v.ravel(), (d * f - 0.5 * g2 * trace).detach().numpy()])

    x_T, delta, nfe = _flat_solve(rhs, x, eps, float(sde.T), rtol, atol)
    return prior(x_T) + delta, nfe


def torchdiffeq_loglik(x, oracle, eps, rtol, atol, prior):
    """``(logp, nfe)``: torchdiffeq dopri5 on the batched (N, d + 1) state, exact Laplacian."""
    import torch
    from torchdiffeq import odeint

    n, d = x.shape
    sde, score = oracle.sde, torch_score(oracle, laplacian=True)
    count = [0]

    def func(t, z):
        count[0] += 1
        tf = float(t)
        s, lap = score(z[:, :d], tf)
        f, g2 = float(sde.drift_coeff(tf)), float(sde.diffusion_sq(tf))
        return torch.cat([f * z[:, :d] - 0.5 * g2 * s, (d * f - 0.5 * g2 * lap)[:, None]], dim=1)

    z0 = torch.cat([torch.as_tensor(x), torch.zeros(n, 1, dtype=torch.float64)], dim=1)
    ts = torch.tensor([eps, float(sde.T)], dtype=torch.float64)
    with torch.no_grad():
        # step_t: the last step ends exactly at T (dopri5 would otherwise step past T, where
        # the SDE's coefficients are not defined, and interpolate back)
        zT = odeint(func, z0, ts, method="dopri5", rtol=rtol, atol=atol,
                    options={"step_t": ts[1:]})[-1]
    x_T = zT[:, :d].numpy()
    return prior(x_T) + zT[:, d].numpy(), count[0]


def _grid(T, eps, steps):
    return np.linspace(T, eps, steps + 1)


def _torch_reverse_loop(oracle, x_T, steps, eps, seed, dtype, corrector=None):
    """Plain torch Euler–Maruyama on the reverse SDE over the uniform grid T -> eps.

    After each predictor step, ``corrector(x, t, t_next, score, gen, dtype)`` (if given) returns
    the corrected state. Returns the final state as a float64 numpy array.
    """
    import torch

    dtype = dtype or torch.float64
    sde, score = oracle.sde, torch_score(oracle, dtype)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.as_tensor(x_T, dtype=dtype).clone()
    grid = _grid(float(sde.T), eps, steps)
    with torch.no_grad():
        for t, t_next in zip(grid[:-1], grid[1:]):
            dt = float(t_next - t)
            f, g2 = float(sde.drift_coeff(t)), float(sde.diffusion_sq(t))
            noise = torch.randn(x.shape, generator=gen, dtype=dtype)
            x = x + (f * x - g2 * score(x, t)) * dt + math.sqrt(g2 * -dt) * noise
            if corrector is not None:
                x = corrector(x, t, t_next, score, gen, dtype)
    return x.double().numpy()


def torch_em_loop(oracle, x_T, steps, eps, seed, dtype=None):
    """``(x, nfe)``: plain torch Euler–Maruyama on the reverse SDE, uniform grid T -> eps."""
    return _torch_reverse_loop(oracle, x_T, steps, eps, seed, dtype), steps


def torch_pc_loop(oracle, x_T, steps, eps, seed, snr=0.16, dtype=None):
    """``(x, nfe)``: torch EM predictor + one Langevin corrector (batch-mean norms, snr rule)."""
    import torch

    sde = oracle.sde

    def langevin(x, t, t_next, score, gen, dtype):
        alpha = (float(sde.mean_coeff(t)) / float(sde.mean_coeff(t_next))) ** 2
        s = score(x, t_next)
        z = torch.randn(x.shape, generator=gen, dtype=dtype)
        ratio = float(z.norm(dim=1).mean()) / float(s.norm(dim=1).mean())
        step = 2.0 * alpha * (snr * ratio) ** 2
        return x + step * s + math.sqrt(2.0 * step) * z

    return _torch_reverse_loop(oracle, x_T, steps, eps, seed, dtype, langevin), 2 * steps


def torchsde_em(oracle, x_T, steps, eps, seed):
    """``(x, nfe)``: ``torchsde.sdeint(method="euler")`` in reversed time u = T - t."""
    import torch
    import torchsde

    sde, score = oracle.sde, torch_score(oracle)
    T = float(sde.T)

    class Reverse(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, u, y):
            t = T - float(u)
            return -(float(sde.drift_coeff(t)) * y - float(sde.diffusion_sq(t)) * score(y, t))

        def g(self, u, y):
            return torch.full_like(y, float(sde.diffusion(T - float(u))))

    y0 = torch.as_tensor(x_T, dtype=torch.float64)
    horizon = T - eps
    bm = torchsde.BrownianInterval(0.0, horizon, size=tuple(y0.shape), dtype=torch.float64,
                                   entropy=int(seed))
    with torch.no_grad():
        ys = torchsde.sdeint(Reverse(), y0, torch.tensor([0.0, horizon], dtype=torch.float64),
                             bm=bm, method="euler", dt=horizon / steps)
    return ys[-1].numpy(), steps


_MAX_ELEMS = 1 << 24


def plain_numpy_score_laplacian(mix, x, a, s2):
    """Score and Laplacian "the obvious way" (chunks keep the (n, K, d) arrays <= 2**24 floats)."""
    from scipy.special import logsumexp

    N, d = x.shape
    K = mix.K
    step = max(1, _MAX_ELEMS // (K * d))
    scores, laps = [], []
    for i in range(0, N, step):
        xc = x[i:i + step]
        logr = np.empty((xc.shape[0], K))
        g = np.empty((xc.shape[0], K, d))
        tr = np.empty(K)
        for k in range(K):
            C = a * a * mix.covs[k] + s2 * np.eye(d)
            inv = np.linalg.inv(C)
            _, logdet = np.linalg.slogdet(C)
            diff = xc - a * mix.means[k]
            sol = diff @ inv
            logr[:, k] = (mix.log_weights[k] - 0.5 * np.sum(diff * sol, axis=1) - 0.5 * logdet
                          - 0.5 * d * math.log(2 * math.pi))
            g[:, k] = -sol
            tr[k] = np.trace(inv)
        pi = np.exp(logr - logsumexp(logr, axis=1, keepdims=True))
        s = np.einsum("nk,nkd->nd", pi, g)
        scores.append(s)
        laps.append(np.sum(pi * (np.sum(g * g, axis=2) - tr), axis=1) - np.sum(s * s, axis=1))
    return np.concatenate(scores), np.concatenate(laps)
