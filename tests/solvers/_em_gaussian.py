"""Exact moments of Euler–Maruyama on a 1-D Gaussian target (shared by the fused-sampler tests).

With data N(mu, var) the score at time t is -(x - a_t mu) / v_t, v_t = a_t^2 var + s_t^2, so one
reverse EM step x <- x + h (f x - g^2 score) + g dW is affine in x:
x <- c x - h g^2 a_t mu / v_t + g dW with c = 1 + h (f + g^2 / v_t). Started from the exact law
at T, mean and variance follow that recursion exactly (no Monte Carlo).
"""

from __future__ import annotations


def em_gaussian_moments(sde, mu, var, grid):
    """Mean and variance at ``grid[-1]`` of EM from the exact p_T of N(mu, var) on ``grid``."""
    T = grid[0]
    m = sde.mean_coeff(T) * mu
    v = sde.mean_coeff(T) ** 2 * var + sde.marginal_var(T)
    for i in range(grid.size - 1):
        t, h = grid[i], grid[i + 1] - grid[i]
        vt = sde.mean_coeff(t) ** 2 * var + sde.marginal_var(t)
        c = 1 + h * (sde.drift_coeff(t) + sde.diffusion_sq(t) / vt)
        m = c * m - h * sde.diffusion_sq(t) * sde.mean_coeff(t) * mu / vt
        v = c * c * v + sde.diffusion_sq(t) * abs(h)
    return m, v
