r"""Tutorial: bits per dimension, with and without dequantisation, against exact answers.

Likelihood results of diffusion models on images are quoted in bits per dimension,
``bpd = -log p(x) / (d ln 2)``, computed with the probability-flow ODE on *dequantised* data: the
8-bit values are scaled to [0, 1] (here: L levels, bins of width 1/L), uniform noise
:math:`u/L` is added, and ``log2(L)`` is added to the bpd (score_sde's ``offset``), because a
density times the bin volume :math:`L^{-d}` approximates the probability of the bin. This script
takes a small discrete data set -- 12 two-pixel "images" with 3-bit pixels (L = 8), entropy
:math:`H` -- and two diffusion models whose likelihoods are exact (Gaussian mixtures under the VP
SDE, :math:`p_\varepsilon` known in closed form):

* **smooth**: one Gaussian per image at the *centre* of its bin, std 0.25 / L (a model of the
  dequantised data);
* **memorising**: one narrow Gaussian per image *at the discrete value itself*, std 0.05 / L
  (what fitting the raw values drives a model towards).

For each it computes, with ``sb.log_likelihood(..., dequantize=L)`` and exactly:

1. *without dequantisation*: the ODE bpd at the raw values k/L. The memorising model scores
   **below zero** bits per dimension -- no discrete distribution can -- and would go to
   :math:`-\infty` as its width shrinks: a density at discrete points is not a codelength;
2. *with dequantisation*: :math:`E_u[-\log_2 p((k + u)/L)]/d + \log_2 L`, with the expectation
   over u by a 16 x 16-point Gauss-Legendre rule on every bin (the ODE at the nodes against the
   exact log-density at the same nodes), plus the usual Monte Carlo estimate with random u. The
   "exact" dequantised value is the exact log-density integrated with 128 x 128 nodes (converged
   to 1e-12 bits for the smooth model; to about 0.002 bits for the memorising one, whose
   log-density has a crease where two images' components meet -- which is also why its 16-point
   value is 0.08 bits off);
3. the model's exact discrete bpd, :math:`-E\log_2 P(\mathrm{bin})/d`, with P(bin) from normal
   CDFs.

Asserted: ODE vs exact bpd at every point to 1e-3 bits (rtol = atol = 1e-8); the ``dequantize``
offset is exactly ``log2(L)``; and the chain of bounds dequantised bpd >= discrete bpd (Jensen)
>= H / d (Gibbs) for both models, while the memorising model's raw bpd is < 0.

Figures (in ``--out``): ``bits_per_dim.png`` (the numbers side by side) and
``bits_per_dim_models.png`` (the two densities over the pixel grid).

Run: ``python examples/tutorial_bits_per_dim.py [--quick] [--out DIR]``.

References
----------
L. Theis, A. van den Oord, M. Bethge, "A note on the evaluation of generative models", ICLR 2016
(dequantisation bound). Y. Song et al., ICLR 2021, App. D.2 (bpd of the probability-flow ODE).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from scipy.special import logsumexp, ndtr

import scorebench as sb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _tutorial_common sits beside this script
from _tutorial_common import check, finish, parse_args, save_figure, start_figures  # noqa: E402

NAME = "bits_per_dim"
LEVELS = 8  # 3-bit pixels, bins [k/L, (k+1)/L)
IMAGES = np.array(
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (0, 7), (7, 0), (2, 5), (5, 2)],
    dtype=np.float64,
)
COUNTS = np.array([3, 4, 5, 6, 6, 5, 4, 3, 2, 2, 1, 1], dtype=np.float64)  # how often each image occurs
EPS = 1e-5
TOL = 1e-8
REF_NODES = 128  # reference quadrature of the exact dequantised bpd (exact log-density only)


def models(weights):
    """The two models: (name, mixture) with one isotropic component per image."""
    k = IMAGES.shape[0]
    smooth = sb.GaussianMixture.isotropic(weights, (IMAGES + 0.5) / LEVELS, np.full(k, (0.25 / LEVELS) ** 2))
    memorising = sb.GaussianMixture.isotropic(weights, IMAGES / LEVELS, np.full(k, (0.05 / LEVELS) ** 2))
    return [("smooth", smooth), ("memorising", memorising)]


def gauss_legendre_square(n: int):
    """Tensor Gauss-Legendre rule on the unit square: nodes (n^2, 2) and weights (n^2,)."""
    gx, gw = np.polynomial.legendre.leggauss(n)
    nodes_1d, weights_1d = 0.5 * (gx + 1.0), 0.5 * gw
    nodes = np.stack(np.meshgrid(nodes_1d, nodes_1d, indexing="ij"), axis=-1).reshape(-1, 2)
    return nodes, np.outer(weights_1d, weights_1d).ravel()


def discrete_bpd(oracle, weights) -> float:
    r"""Exact :math:`-\sum_k w_k \log_2 P_\varepsilon(\mathrm{bin}_k) / d` of the model's p_eps.

    p_eps is a mixture of isotropic Gaussians N(c_j, tau_j^2 I), so the probability of a box is
    :math:`\sum_j w_j \prod_i [\Phi((hi_i - c_{ji})/\tau_j) - \Phi((lo_i - c_{ji})/\tau_j)]`.
    """
    marg = oracle.marginal(EPS)
    tau = np.sqrt(marg.covs[:, 0, 0])
    lo, hi = IMAGES / LEVELS, (IMAGES + 1.0) / LEVELS
    z_hi = (hi[:, None, :] - marg.means[None]) / tau[None, :, None]
    z_lo = (lo[:, None, :] - marg.means[None]) / tau[None, :, None]
    with np.errstate(divide="ignore"):
        log_box = np.sum(np.log(ndtr(z_hi) - ndtr(z_lo)), axis=2)  # (images, components)
    log_p_bin = logsumexp(log_box + np.log(marg.weights)[None], axis=1)
    return float(-np.sum(weights * log_p_bin) / (IMAGES.shape[1] * math.log(2.0)))


def main(argv=None) -> int:
    args = parse_args(argv, __doc__, seed=256, seed_help="seed of the Monte Carlo dequantisation noise")
    plt = start_figures(args.out)
    n_nodes, n_mc = (8, 4) if args.quick else (16, 32)
    d = IMAGES.shape[1]
    weights = COUNTS / COUNTS.sum()
    entropy = float(-np.sum(weights * np.log2(weights)))
    sde = sb.VPSDE()
    offset = math.log2(LEVELS)
    rng = np.random.default_rng(args.seed)
    nodes, node_w = gauss_legendre_square(n_nodes)
    ref_nodes, ref_w = gauss_legendre_square(REF_NODES)
    print(f"[{NAME}] {IMAGES.shape[0]} images, d = {d}, L = {LEVELS} levels: H / d = {entropy / d:.4f} bits")

    summary = {"entropy_per_dim": entropy / d}
    table = {}
    worst = 0.0
    for name, mix in models(weights):
        oracle = sb.MixtureOracle(mix, sde)
        kw = dict(rtol=TOL, atol=TOL, eps=EPS, prior=oracle.exact_log_prob_T, dequantize=LEVELS)

        def exact_bpd(x):
            return -oracle.log_prob(x, EPS) / (d * math.log(2.0)) + offset

        # 1. without dequantisation: the raw discrete values
        raw = IMAGES / LEVELS
        res = sb.log_likelihood(raw, oracle, sde, **kw)
        shift = float(np.max(np.abs(res.bpd - (-res.logp / (d * math.log(2.0))) - offset)))
        check(shift < 1e-12, f"{name}: dequantize={LEVELS} does not add exactly log2(L) (off by {shift:.1e})")
        err_raw = float(np.max(np.abs(res.bpd - exact_bpd(raw))))
        bpd_raw = float(weights @ res.bpd)

        # 2. with dequantisation: quadrature over u on every bin, ODE and exact at the same nodes
        xq = ((IMAGES[:, None, :] + nodes[None]) / LEVELS).reshape(-1, d)
        resq = sb.log_likelihood(xq, oracle, sde, **kw)
        err_deq = float(np.max(np.abs(resq.bpd - exact_bpd(xq))))
        bpd_deq_ode = float(weights @ (resq.bpd.reshape(IMAGES.shape[0], -1) @ node_w))
        bpd_deq_nodes = float(weights @ (exact_bpd(xq).reshape(IMAGES.shape[0], -1) @ node_w))
        x_ref = ((IMAGES[:, None, :] + ref_nodes[None]) / LEVELS).reshape(-1, d)
        bpd_deq_exact = float(weights @ (exact_bpd(x_ref).reshape(IMAGES.shape[0], -1) @ ref_w))
        err_nodes = abs(bpd_deq_ode - bpd_deq_nodes)
        # ... and what one usually does: random u, Monte Carlo average
        x_mc = (np.repeat(IMAGES, n_mc, axis=0) + rng.random((IMAGES.shape[0] * n_mc, d))) / LEVELS
        res_mc = sb.log_likelihood(x_mc, oracle, sde, **kw)
        per_image = res_mc.bpd.reshape(IMAGES.shape[0], n_mc)
        mc_mean = float(weights @ per_image.mean(axis=1))
        mc_se = float(math.sqrt(np.sum(weights**2 * per_image.var(axis=1, ddof=1) / n_mc)))
        err_mc = float(np.max(np.abs(res_mc.bpd - exact_bpd(x_mc))))

        # 3. the model's exact discrete bpd
        bpd_disc = discrete_bpd(oracle, weights)
        err = max(err_raw, err_deq, err_mc, err_nodes)
        worst = max(worst, err)
        print(f"  {name:10s} raw values (no dequantisation): {bpd_raw:8.4f} bpd | dequantised: "
              f"{bpd_deq_ode:8.4f} ({n_nodes}^2-node quadrature; exact {bpd_deq_exact:.4f}; random u "
              f"{mc_mean:.3f} +- {mc_se:.3f}) "
              f"| exact discrete: {bpd_disc:.4f} | max |ODE - exact| = {err:.1e} bits")
        check(err < 1e-3, f"{name}: ODE bpd off the exact bpd by {err:.2e} bits")
        check(bpd_deq_exact >= bpd_disc >= entropy / d,
              f"{name}: bound chain broken: {bpd_deq_exact:.4f} >= {bpd_disc:.4f} >= {entropy / d:.4f}")
        table[name] = dict(raw=bpd_raw, dequantised=bpd_deq_ode, dequantised_nodes_exact=bpd_deq_nodes,
                           dequantised_exact=bpd_deq_exact,
                           dequantised_mc=mc_mean, dequantised_mc_se=mc_se, discrete=bpd_disc, max_error=err)
    check(table["memorising"]["raw"] < 0.0,
          f"memorising model's raw bpd {table['memorising']['raw']:.3f} is not below zero")
    print(f"  the memorising model's raw-value bpd {table['memorising']['raw']:.3f} < 0 <= H/d: not a codelength; "
          f"dequantised it costs {table['memorising']['dequantised_exact']:.1f} bits/dim, the smooth one "
          f"{table['smooth']['dequantised_exact']:.3f}")
    summary.update(models=table, max_abs_error_bits=worst)

    # figures --------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(7.5, 4))
    kinds = [("raw", "raw values\n(no dequantisation)"), ("discrete", "exact discrete\n-log2 P(bin)/d"),
             ("dequantised", "dequantised\n(PF-ODE)")]
    width = 0.35
    for i, (name, _) in enumerate(models(weights)):
        vals = [table[name][k] for k, _ in kinds]
        bars = ax.bar(np.arange(3) + (i - 0.5) * width, vals, width, label=name)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, max(v, 0)), ha="center", va="bottom", fontsize=8)
    ax.axhline(entropy / d, color="k", ls="--", lw=1, label=f"H / d = {entropy / d:.3f}")
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_yscale("symlog", linthresh=2.0)
    ax.set_ylim(-3.0, 4.0 * max(max(v.values()) for v in table.values()))
    ax.set_xticks(np.arange(3))
    ax.set_xticklabels([lbl for _, lbl in kinds])
    ax.set_ylabel("bits per dimension")
    ax.set_title(f"Bits/dim of {IMAGES.shape[0]} two-pixel 3-bit images (VP SDE, eps = {EPS:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}.png", dpi=100)

    u = np.linspace(-0.05, 1.05, 331)
    gxx, gyy = np.meshgrid(u, u)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (name, mix) in zip(axes, models(weights)):
        oracle = sb.MixtureOracle(mix, sde)
        logp = oracle.log_prob(np.stack([gxx.ravel(), gyy.ravel()], axis=1), EPS).reshape(gxx.shape)
        ax.pcolormesh(u, u, np.maximum(logp, logp.max() - 12.0), cmap="viridis", shading="auto")
        for k in range(LEVELS + 1):
            ax.axvline(k / LEVELS, color="w", lw=0.3)
            ax.axhline(k / LEVELS, color="w", lw=0.3)
        ax.plot(IMAGES[:, 0] / LEVELS, IMAGES[:, 1] / LEVELS, "r.", ms=6, label="raw values k/L")
        ax.set(title=f"{name}: log p_eps (white lines: bins)", xlabel="pixel 1", ylabel="pixel 2")
        ax.set_aspect("equal")
    axes[0].legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_models.png", dpi=100)

    return finish(summary, args.out, NAME)


if __name__ == "__main__":
    sys.exit(main())
