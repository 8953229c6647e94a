"""Reverse-SDE Euler–Maruyama: one step by hand, and the distribution it samples at 1000 steps
from exact p_T samples (1-D Kolmogorov–Smirnov, 2-D Gaussian moments).

Statistical assertions in this file: 3 (KS, mean, covariance), each at alpha = 1e-6 / 3
(Bonferroni), so a correct implementation fails with probability below 1e-6. The seeds are
fixed; the thresholds are the derivations in the comments, not tuned to the seeds.
"""

from __future__ import annotations

import numpy as np
from solver_toys import GaussianScore, ToyVPSDE

from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle
from scorebench.solvers.euler_maruyama import EulerMaruyama
from scorebench.solvers.problem import ReverseProblem
from scorebench.solvers.sample import sample

ALPHA = 1e-6 / 3


def test_one_step_by_hand():
    sde = ToyVPSDE()
    model = GaussianScore([0.5, -1.0], 0.3, sde)
    prob = ReverseProblem(model, sde)
    x = np.array([[0.2, 0.1], [-1.0, 2.0]])
    dw = np.array([[0.05, -0.02], [0.01, 0.03]])
    t, dt = 0.6, -0.1
    expected = (x + dt * (sde.drift_coeff(t) * x - sde.diffusion_sq(t) * model.score(x, t))
                + np.sqrt(sde.diffusion_sq(t)) * dw)
    np.testing.assert_allclose(EulerMaruyama().advance(prob, x, t, dt, dw, None), expected,
                               rtol=1e-15, atol=1e-16)
    assert prob.nfe == 1


def test_em_passes_ks_against_exact_marginal_1d():
    sde = VPSDE()
    mix = GaussianMixture.isotropic([0.3, 0.5, 0.2], [[-2.0], [0.5], [2.5]], [0.2, 0.1, 0.3])
    oracle = MixtureOracle(mix, sde)
    n, eps = 1000, 1e-3
    rng = np.random.default_rng(20261123)
    x_T = oracle.sample(n, sde.T, rng)  # exact p_T: no prior mismatch
    x = np.sort(sample(oracle, sde, method="em", steps=1000, x_T=x_T, rng=rng, eps=eps).x[:, 0])
    F = oracle.marginal(eps).cdf(x)
    D = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    # DKW-Massart: P(D_n > sqrt(ln(2/alpha) / (2n))) <= alpha; = 0.0875 at n = 1000. The
    # discretisation bias at 1000 steps is ~2e-3 in D (measured with n = 200,000), far below.
    assert D <= np.sqrt(np.log(2 / ALPHA) / (2 * n)), D


def test_em_moments_against_exact_gaussian_marginal_2d():
    sde = VPSDE()
    cov0 = np.array([[0.5, 0.2], [0.2, 0.3]])
    oracle = MixtureOracle(GaussianMixture([1.0], [[0.5, -1.0]], [cov0]), sde)
    n, d, eps = 2000, 2, 1e-3
    rng = np.random.default_rng(7)
    x_T = oracle.sample(n, sde.T, rng)
    x = sample(oracle, sde, method="em", steps=1000, x_T=x_T, rng=rng, eps=eps).x
    a, s2 = sde.mean_coeff(eps), sde.marginal_var(eps)
    mu, C = a * oracle.mix.means[0], a * a * cov0 + s2 * np.eye(d)
    Ci = np.linalg.inv(C)
    # EM on this linear SDE from Gaussian x_T is Gaussian. Mean: n (m - mu)^T C^-1 (m - mu) is
    # chi^2_2, whose tail is exp(-q/2): q = 2 ln(1/alpha) = 29.8.
    m = x.mean(axis=0)
    assert n * (m - mu) @ Ci @ (m - mu) <= 2 * np.log(1 / ALPHA)
    # Covariance about the known mean: X = n tr(C^-1 S) is chi^2_k with k = n d. Laurent-Massart
    # (2000): P(X - k >= 2 sqrt(k y) + 2 y) <= e^-y and P(k - X >= 2 sqrt(k y)) <= e^-y; with
    # y = ln(2/alpha) both sides together have probability <= alpha.
    r = x - mu
    X = np.einsum("ni,ij,nj->", r, Ci, r)
    k, y = n * d, np.log(2 / ALPHA)
    assert -2 * np.sqrt(k * y) <= X - k <= 2 * np.sqrt(k * y) + 2 * y, (X, k)
