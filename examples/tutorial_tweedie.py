r"""Tutorial: Tweedie's formula -- the denoiser against the exact posterior mean and Monte Carlo.

For the forward kernel :math:`x_t = a(t) x_0 + s(t) z`, Tweedie's formula turns the score into
the posterior mean of the clean data,

.. math:: D(x_t, t) = E[x_0 \mid x_t] = \frac{x_t + s^2 \nabla\log p_t(x_t)}{a},

and its second-order form turns the Hessian into the posterior covariance,
:math:`\mathrm{Cov}[x_0 \mid x_t] = (s^2/a^2)(I + s^2 \nabla^2\log p_t(x_t))`. For Gaussian-mixture
data the posterior is itself a mixture: component k has responsibility :math:`\pi_k(x_t)`, mean
:math:`m'_k = \mu_k + a\Sigma_k (a^2\Sigma_k + s^2 I)^{-1}(x_t - a\mu_k)` and covariance
:math:`C'_k = \Sigma_k - a^2\Sigma_k(a^2\Sigma_k + s^2 I)^{-1}\Sigma_k` (valid for singular
:math:`\Sigma_k`: lines and point masses). This script checks three independent routes to the
same numbers:

1. ``oracle.denoise`` (the score route) against :math:`\sum_k \pi_k m'_k` from
   ``oracle.posterior`` (the Bayes route), and the Hessian route against the posterior mixture's
   covariance, for the VP, sub-VP, VE and the tutorials' :math:`g(t) = 25^t` SDEs at several
   times -- asserted to 1e-9 (means, relative) and 1e-8 (covariances);
2. a Monte Carlo posterior mean with no formula at all: draw :math:`x_0 \sim p_0`, accept it
   with probability :math:`\exp(-|x_t - a x_0|^2 / (2s^2))` (exact rejection sampling of
   :math:`p(x_0 \mid x_t)`), average. The posterior is a Gaussian mixture, hence sub-Gaussian with
   variance proxy :math:`\sigma^2 = \max_k C'_{k,jj} + (\max_k m'_{kj} - \min_k m'_{kj})^2/4`
   (Hoeffding's lemma on the component means), so the mean of n accepted samples deviates by more
   than :math:`\sigma\sqrt{2\ln(2/\alpha)/n}` with probability at most :math:`\alpha`; asserted at
   every query point, Bonferroni over all of them.

Data: the 1-D three-Gaussian mixture and a 2-D mixture of a full-rank Gaussian, a rank-one
Gaussian (a line) and a point mass.

Figures (in ``--out``): ``tweedie_1d.png`` (denoiser, posterior spread and Monte Carlo means over
the joint samples) and ``tweedie_2d.png`` (arrows from x_t to D(x_t)).

Run: ``python examples/tutorial_tweedie.py [--quick] [--out DIR]``.

References
----------
B. Efron, "Tweedie's formula and selection bias", JASA 106 (2011). C. Meng et al., "Estimating
high order gradients of the data distribution by denoising", NeurIPS 2021 (second order).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

import scorebench as sb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _tutorial_common sits beside this script
from _tutorial_common import check, finish, parse_args, save_figure, start_figures, three_gaussians  # noqa: E402

NAME = "tweedie"
TIMES = (0.01, 0.1, 0.3, 0.6, 0.9)
MC_TIMES = (0.1, 0.3)


def blob_line_point() -> sb.GaussianMixture:
    """2-D data: a full-rank Gaussian, a rank-one Gaussian (a line) and a point mass."""
    v = np.array([1.0, 0.8])
    covs = [np.array([[0.6, 0.25], [0.25, 0.4]]), 0.5 * np.outer(v, v), np.zeros((2, 2))]
    return sb.GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.5], [2.0, -1.0], [0.5, 2.0]], covs)


def posterior_moments(oracle, x, t):
    """Mean (N, d) and covariance (N, d, d) of the posterior mixture of x_0 given x_t = x."""
    resp, means, covs = oracle.posterior(x, t)
    if covs.ndim == 3:
        covs = np.broadcast_to(covs, (x.shape[0],) + covs.shape)
    mean = np.einsum("nk,nkd->nd", resp, means)
    second = np.einsum("nk,nkij->nij", resp, covs + means[..., :, None] * means[..., None, :])
    return mean, second - mean[:, :, None] * mean[:, None, :], (resp, means, covs)


def tweedie_covariance(oracle, x, t):
    """Second-order Tweedie: (s^2 / a^2) (I + s^2 Hessian), shape (N, d, d)."""
    a, s2 = oracle.sde.mean_coeff(t), oracle.sde.marginal_var(t)
    return (s2 / a**2) * (np.eye(oracle.d)[None] + s2 * oracle.hessian(x, t))


def rejection_posterior_means(mix, a, s, queries, n_prior, rng):
    """Monte Carlo E[x_0 | x_t = q] for each query q by rejection sampling from the prior.

    x_0 ~ p_0 is accepted for q with probability exp(-|q - a x_0|^2 / (2 s^2)) = the likelihood
    N(q; a x_0, s^2 I) over its maximum, so the accepted draws are iid from p(x_0 | x_t = q).
    One batch of draws and uniforms serves every query (estimates for different q are dependent,
    each one is still exact). Returns (means (Q, d), counts (Q,)).
    """
    x0 = mix.sample(n_prior, rng)
    u = rng.random(n_prior)
    means, counts = [], []
    for q in queries:
        accept = u < np.exp(-np.sum((q - a * x0) ** 2, axis=1) / (2.0 * s * s))
        counts.append(int(accept.sum()))
        means.append(x0[accept].mean(axis=0))
    return np.array(means), np.array(counts)


def main(argv=None) -> int:
    args = parse_args(argv, __doc__, seed=2011, seed_help="seed of the Monte Carlo draws")
    plt = start_figures(args.out)
    n_prior = 40_000 if args.quick else 400_000
    rng = np.random.default_rng(args.seed)
    sdes = [sb.VPSDE(), sb.SubVPSDE(), sb.VESDE(), sb.LinearSDE(lambda t: 0.0 * t, lambda t: 25.0**t)]
    datasets = {"1-D three Gaussians": three_gaussians(), "2-D blob + line + point": blob_line_point()}
    summary = {}
    print(f"[{NAME}] Tweedie: D(x, t) = (x + s^2 score) / a vs the posterior mixture")

    # 1. exact identities -------------------------------------------------------------------
    worst_mean = worst_cov = 0.0
    for data_name, mix in datasets.items():
        for sde in sdes:
            oracle = sb.MixtureOracle(mix, sde)
            for t in TIMES:
                x = oracle.sample(200, t, rng)
                d_tweedie = oracle.denoise(x, t)
                mean, cov, _ = posterior_moments(oracle, x, t)
                err_mean = float(np.max(np.abs(d_tweedie - mean)) / (1.0 + np.max(np.abs(mean))))
                err_cov = float(np.max(np.abs(tweedie_covariance(oracle, x, t) - cov)) / (1.0 + np.max(np.abs(cov))))
                check(err_mean < 1e-9, f"{data_name}, {sde.name}, t={t}: denoiser vs posterior mean {err_mean:.2e}")
                check(err_cov < 1e-8, f"{data_name}, {sde.name}, t={t}: 2nd-order Tweedie {err_cov:.2e}")
                worst_mean, worst_cov = max(worst_mean, err_mean), max(worst_cov, err_cov)
    print(f"  denoiser vs posterior mean: max relative difference {worst_mean:.1e} (assert < 1e-9) "
          f"over {len(datasets)} data sets x {len(sdes)} SDEs x {len(TIMES)} times")
    print(f"  2nd-order Tweedie vs posterior covariance: {worst_cov:.1e} (assert < 1e-8)")
    summary.update(max_rel_mean_error=worst_mean, max_rel_cov_error=worst_cov)

    # 2. Monte Carlo posterior means by rejection sampling (VP SDE) --------------------------
    sde = sb.VPSDE()
    queries = {
        "1-D three Gaussians": np.linspace(-3.0, 3.5, 9)[:, None],
        "2-D blob + line + point": np.array([[-1.4, 0.45], [1.9, -0.95], [0.47, 1.9], [2.4, -0.6], [-0.5, 1.0]]),
    }
    n_checks = sum(q.size for q in queries.values()) * len(MC_TIMES)  # one per coordinate
    alpha = 1e-6 / n_checks
    mc_1d = {}
    worst_ratio = 0.0
    for data_name, mix in datasets.items():
        oracle = sb.MixtureOracle(mix, sde)
        q = queries[data_name]
        for t in MC_TIMES:
            a, s = sde.mean_coeff(t), sde.marginal_std(t)
            mc, counts = rejection_posterior_means(mix, a, s, q, n_prior, rng)
            d_tweedie = oracle.denoise(q, t)
            resp, means, covs = posterior_moments(oracle, q, t)[2]
            live = resp > 0
            for i in range(q.shape[0]):
                m_k, c_k = means[i][live[i]], covs[i][live[i]]
                proxy = np.max(np.diagonal(c_k, axis1=1, axis2=2), axis=0) + np.ptp(m_k, axis=0) ** 2 / 4.0
                half = np.sqrt(proxy * 2.0 * math.log(2.0 / alpha) / counts[i])
                dev = np.abs(mc[i] - d_tweedie[i])
                check(counts[i] >= 100, f"{data_name}: only {counts[i]} accepted draws at {q[i]}")
                check(bool(np.all(dev <= half)), f"{data_name}, t={t}, x_t={q[i]}: MC mean {mc[i]} vs "
                      f"Tweedie {d_tweedie[i]} (bound {half})")
                worst_ratio = max(worst_ratio, float(np.max(dev / half)))
            print(f"  {data_name}, t = {t}: MC posterior means from {counts.min()}..{counts.max()} accepted "
                  f"draws; max |MC - Tweedie| = {np.max(np.abs(mc - d_tweedie)):.4f}")
            if mix.d == 1:
                mc_1d[t] = (q[:, 0], mc[:, 0], counts)
    print(f"  largest |MC - Tweedie| / bound = {worst_ratio:.3f} (assert <= 1; alpha = {alpha:.1e} per coordinate)")
    summary.update(mc_worst_ratio=worst_ratio, mc_alpha=alpha)

    # figures -------------------------------------------------------------------------------
    mix = datasets["1-D three Gaussians"]
    oracle = sb.MixtureOracle(mix, sde)
    fig, axes = plt.subplots(1, len(MC_TIMES), figsize=(11, 4), sharey=True)
    for ax, t in zip(axes, MC_TIMES):
        a, s = sde.mean_coeff(t), sde.marginal_std(t)
        x0 = mix.sample(3000, rng)
        xt = a * x0 + s * rng.standard_normal(x0.shape)
        ax.plot(xt[:, 0], x0[:, 0], ".", color="0.7", ms=2, label=r"joint samples $(x_t, x_0)$")
        grid = np.linspace(-3.5, 4.0, 400)[:, None]
        mean, cov, _ = posterior_moments(oracle, grid, t)
        sd = np.sqrt(cov[:, 0, 0])
        ax.fill_between(grid[:, 0], mean[:, 0] - sd, mean[:, 0] + sd, color="C0", alpha=0.2,
                        label="posterior mean +- sd")
        ax.plot(grid[:, 0], oracle.denoise(grid, t)[:, 0], "C0", lw=2, label=r"Tweedie $D(x_t, t)$")
        qx, mc, _ = mc_1d[t]
        ax.plot(qx, mc, "C3o", ms=5, label="Monte Carlo (rejection)")
        ax.set(title=f"VP SDE, t = {t} (a = {a:.2f}, s = {s:.2f})", xlabel=r"$x_t$")
    axes[0].set_ylabel(r"$x_0$")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_1d.png", dpi=100)

    mix = datasets["2-D blob + line + point"]
    oracle = sb.MixtureOracle(mix, sde)
    t = 0.3
    u = np.linspace(-3.0, 3.5, 14)
    gx, gy = np.meshgrid(u, u)
    xt = np.stack([gx.ravel(), gy.ravel()], axis=1)
    den = oracle.denoise(xt, t)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    x0 = mix.sample(2000, rng)
    ax.plot(x0[:, 0], x0[:, 1], ".", color="0.6", ms=2, label="data $x_0$")
    ax.quiver(xt[:, 0], xt[:, 1], den[:, 0] - xt[:, 0], den[:, 1] - xt[:, 1], angles="xy",
              scale_units="xy", scale=1.0, width=0.003, color="C0", alpha=0.8)
    ax.set(title=f"Tweedie denoiser, VP SDE, t = {t}: arrows $x_t \\to D(x_t)$", xlabel="x", ylabel="y")
    ax.set_aspect("equal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_2d.png", dpi=100)

    return finish(summary, args.out, NAME)


if __name__ == "__main__":
    sys.exit(main())
