r"""Tutorial: four point masses under a DDPM chain and its VP limit -- the exact score memorises.

The DDPM tutorials diffuse a tiny data set, the points (-15, 1, -5, 15), through the discrete
chain :math:`x_n = \sqrt{1-\beta}\, x_{n-1} + \sqrt\beta\, \epsilon_n` (:math:`\beta = 0.04`,
N = 200 steps), write down the score of the noised data in closed form (a responsibility-weighted
average of Gaussian scores) and run the reverse SDE and ODE with it. This script does the same with
scorebench and checks every step against exact answers:

1. **Chain and continuous limit.** The chain's marginal is
   :math:`N(\sqrt{\bar\alpha_n} x_0, 1 - \bar\alpha_n)`, :math:`\bar\alpha_n = (1-\beta)^n`. The VP
   SDE with constant :math:`\beta_c = -N\ln(1-\beta)` has :math:`a(n/N)^2 = e^{-\beta_c n/N} =
   \bar\alpha_n` *exactly* (the naive limit :math:`\beta_c = N\beta` only approximately). Asserted
   to round-off, and the simulated chain is KS-tested against ``oracle.marginal(n/N)``.
2. **The exact score over time** (``oracle.score``) as a heatmap.
3. **Reverse flows** from exact :math:`p_T` samples on the chain's own grid (199 steps from T = 1
   to eps = 1/N): DDPM's ancestral sampler and Euler–Maruyama (reverse SDE), DDIM and Heun
   (probability-flow ODE).
4. **Memorisation.** :math:`p_\varepsilon = \sum_k \tfrac14 N(a x_k, s^2)` with
   :math:`s(\varepsilon) = \sqrt\beta = 0.2`: the exact score of a finite training set generates
   nothing but the training points, blurred by :math:`s(\varepsilon)`. Each sampler's exact law
   for a lone point mass is linear-Gaussian, so its end spread :math:`\rho\, s(\varepsilon)`
   (and mean offset) is computed exactly (:func:`scorebench.verification.exact_law.propagate_law`):
   ancestral and DDIM are exact (:math:`\rho = 1`), Euler–Maruyama at 199 steps spreads each
   point 29 % wider, Heun 4 % narrower. The script asserts, per sampler, that every sample lies
   within :math:`(|b| + \rho\, c_\alpha)\, s(\varepsilon)` of a training point, that the
   standardised spread matches :math:`\rho` (a chi-square test), and that the fraction at each
   point matches the weights 1/4 (Hoeffding).

Figures (in ``--out``): ``point_masses_chain.png``, ``point_masses_score.png``,
``point_masses_flows.png``, ``point_masses_memorisation.png``.

Run: ``python examples/tutorial_point_masses.py [--quick] [--out DIR]``.

References
----------
J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from scipy.special import ndtri

import scorebench as sb
from scorebench.solvers import get_solver, time_grid
from scorebench.verification.exact_law import propagate_law
from scorebench.verification.stats import ks_test_cdf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _tutorial_common sits beside this script
from _tutorial_common import check, finish, parse_args, save_figure, start_figures  # noqa: E402

NAME = "point_masses"
POINTS = np.array([-15.0, 1.0, -5.0, 15.0])
BETA = 0.04  # the chain's noise level, sqrt(beta) = 0.2
N_CHAIN = 200
CHAIN_CHECKS = (1, 10, 50, 200)
SAMPLERS = (  # (label, registered name, kind)
    ("DDPM ancestral (SDE)", "ancestral", "sde"),
    ("Euler-Maruyama (SDE)", "em", "sde"),
    ("DDIM (ODE)", "ddim", "ode"),
    ("Heun (ODE)", "heun", "ode"),
)
# statistical assertions: chain KS (4), per sampler max-distance (4) and chi-square (4, plus one
# rejection for Euler-Maruyama), fractions (1)
N_TESTS = len(CHAIN_CHECKS) + 2 * len(SAMPLERS) + 2
ALPHA = 1e-6 / N_TESTS


def chi2_two_sided(k: int, alpha: float) -> tuple[float, float]:
    """Interval that a chi-square(k) variable leaves with probability <= alpha (Laurent-Massart).

    P(X - k >= 2 sqrt(k x) + 2x) <= e^-x and P(k - X >= 2 sqrt(k x)) <= e^-x, x = ln(2/alpha).
    """
    x = math.log(2.0 / alpha)
    return k - 2.0 * math.sqrt(k * x), k + 2.0 * math.sqrt(k * x) + 2.0 * x


def lone_point_law(solver_name: str, sde, grid, point: float):
    """Exact (offset, spread) at eps, in units of s(eps), of a solver on a lone point mass.

    The score of one point mass is affine, so the scheme's law is Gaussian and propagates exactly
    from N(a_T x_k, s_T^2) through the probed affine steps.
    """
    oracle = sb.MixtureOracle(sb.GaussianMixture.point_masses([[point]]), sde)
    start = (np.array([sde.mean_coeff(sde.T) * point]), np.array([[sde.marginal_var(sde.T)]]))
    [(mean, cov)], _ = propagate_law(get_solver(solver_name), oracle, grid, [start])
    eps = float(grid[-1])
    s_eps = sde.marginal_std(eps)
    return (mean[0] - sde.mean_coeff(eps) * point) / s_eps, math.sqrt(cov[0, 0]) / s_eps


def main(argv=None) -> int:
    args = parse_args(argv, __doc__, seed=4, seed_help="seed of the chain and the samplers")
    plt = start_figures(args.out)
    from matplotlib.colors import SymLogNorm
    n_chain, n_samp = (1_000, 1_000) if args.quick else (4_000, 4_000)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(2)]
    summary = {"alpha_per_test": ALPHA}

    # 1. the chain and its continuous VP limit ---------------------------------------------
    beta_c = -N_CHAIN * math.log1p(-BETA)
    sde = sb.VPSDE(beta_min=beta_c, beta_max=beta_c)
    oracle = sb.MixtureOracle(sb.GaussianMixture.point_masses(POINTS[:, None]), sde)
    steps = np.arange(N_CHAIN + 1)
    alpha_bar = (1.0 - BETA) ** steps
    gap_a = float(np.max(np.abs(sde.mean_coeff(steps / N_CHAIN) ** 2 - alpha_bar)))
    gap_s = float(np.max(np.abs(sde.marginal_var(steps / N_CHAIN) - (1.0 - alpha_bar))))
    print(f"[{NAME}] chain beta = {BETA}, N = {N_CHAIN}; VP limit beta_c = -N ln(1 - beta) = {beta_c:.6f}")
    print(f"  max |a(n/N)^2 - alpha_bar_n| = {gap_a:.1e}, max |s(n/N)^2 - (1 - alpha_bar_n)| = {gap_s:.1e}"
          f" (assert < 1e-12); naive beta_c = N beta = 8: a(1)^2 = {math.exp(-N_CHAIN * BETA):.3e}"
          f" vs alpha_bar_N = {alpha_bar[-1]:.3e}")
    check(gap_a < 1e-12 and gap_s < 1e-12, "VP limit does not reproduce the chain's marginals")
    summary.update(beta_c=beta_c, gap_a=gap_a, gap_s=gap_s)

    rng = streams[0]
    x = rng.choice(POINTS, size=n_chain)
    shown = np.empty((N_CHAIN + 1, 100))
    shown[0] = x[:100]
    for n in range(1, N_CHAIN + 1):
        x = math.sqrt(1.0 - BETA) * x + math.sqrt(BETA) * rng.standard_normal(n_chain)
        shown[n] = x[:100]
        if n in CHAIN_CHECKS:
            ks = ks_test_cdf(x, oracle.marginal(n / N_CHAIN).cdf, ALPHA)
            print(f"  chain step {n:3d}: KS D = {ks.statistic:.4f} vs exact VP marginal (threshold {ks.threshold:.4f})")
            check(ks.passed, f"chain step {n}: KS D = {ks.statistic:.4f} > {ks.threshold:.4f}")
            summary[f"chain_ks_{n}"] = ks.statistic

    # 2-3. reverse flows from exact p_T on the chain's grid ----------------------------------
    eps = 1.0 / N_CHAIN
    n_steps = N_CHAIN - 1
    grid = time_grid("uniform", n_steps, sde.T, eps)
    a_eps, s_eps = sde.mean_coeff(eps), sde.marginal_std(eps)
    centres = a_eps * POINTS
    rng = streams[1]
    x_T = oracle.sample(n_samp, sde.T, rng)
    c_alpha = float(-ndtri(ALPHA / (2.0 * n_samp)))  # P(max_i |Z_i| > c) <= alpha for n iid N(0,1)
    counts_all, finals, paths, spreads = {}, {}, {}, {}
    for label, name, _ in SAMPLERS:
        res = sb.sample(oracle, sde, method=name, steps=n_steps, eps=eps, x_T=x_T, rng=rng, return_path=True)
        xe = res.x[:, 0]
        finals[label] = xe
        paths[label] = np.array([p[:60, 0] for p in res.path])
        nearest = np.argmin(np.abs(xe[:, None] - centres[None, :]), axis=1)
        r = (xe - centres[nearest]) / s_eps  # distance to the nearest training point, in s(eps)
        # The lone-point law is exact for one point mass. With four, the other points act on a
        # sample only while the modes overlap (t near T); what the scheme does there is contracted
        # by about s(eps) / s(t) by the end, and near eps the other points are >= 20 s(eps) away
        # (responsibilities below e^-200), so each sample's end spread is its lone point's.
        # Every step is affine in (x, x_k) jointly, so the offset is linear in the point and the
        # spread does not depend on it: one lone point at 1 gives both for all four.
        b1, rho1 = lone_point_law(name, sde, grid, 1.0)
        b, rho = b1 * POINTS, np.full(POINTS.size, rho1)
        bound = float(np.max(np.abs(b) + rho * c_alpha))
        z2 = float(np.sum(((r - b[nearest]) / rho[nearest]) ** 2))
        lo, hi = chi2_two_sided(n_samp, ALPHA)
        spread = float(np.sqrt(np.mean((r - b[nearest]) ** 2)))
        counts = np.bincount(nearest, minlength=POINTS.size)
        spreads[label] = float(rho.mean())
        counts_all[label] = counts
        print(f"  {label:22s} max distance {np.max(np.abs(r)):.2f} s(eps) (bound {bound:.2f}); spread "
              f"{spread:.3f} s(eps), exact lone-point law {rho.mean():.3f} (chi2 {z2:.0f} in [{lo:.0f}, {hi:.0f}]); "
              f"fractions {np.round(counts / n_samp, 3).tolist()}")
        check(np.max(np.abs(r)) <= bound, f"{label}: a sample ends {np.max(np.abs(r)):.2f} s(eps) from every point")
        check(lo <= z2 <= hi, f"{label}: spread {spread:.3f} disagrees with the exact law's {rho.mean():.3f}")
        if abs(rho.mean() ** 2 - 1.0) > 0.5:
            # A scheme whose lone-point variance is off by > 50 % (Euler-Maruyama here): the exact
            # spread 1 must be rejected too; at n >= 1000 the interval lies inside [0.73 n, 1.30 n].
            z2_exact = float(np.sum((r - b[nearest]) ** 2))
            print(f"  {'':22s} spread 1 (exact p_eps) rejected: chi2 {z2_exact:.0f} outside [{lo:.0f}, {hi:.0f}]")
            check(not lo <= z2_exact <= hi, f"{label}: spread indistinguishable from exact p_eps")
        summary[f"{name}_spread"] = spread
        summary[f"{name}_rho"] = float(rho.mean())
        summary[f"{name}_max_distance"] = float(np.max(np.abs(r)))
        summary[f"{name}_fractions"] = (counts / n_samp).tolist()
    # Hoeffding for every (sampler, point) fraction at once: |f - 1/4| <= sqrt(ln(2 m / alpha) / (2 n))
    m = len(SAMPLERS) * POINTS.size
    tol = math.sqrt(math.log(2.0 * m / ALPHA) / (2.0 * n_samp))
    worst = max(float(np.max(np.abs(c / n_samp - 0.25))) for c in counts_all.values())
    print(f"  fractions at each training point: max |f - 1/4| = {worst:.4f} (Hoeffding bound {tol:.4f})")
    check(worst <= tol, f"fractions off the weights by {worst:.4f} > {tol:.4f}")
    summary.update(fraction_max_dev=worst, fraction_bound=tol)

    # figures --------------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(steps, shown, color="C0", lw=0.4, alpha=0.3)
    for p in POINTS:
        mean = np.sqrt(alpha_bar) * p
        sd = np.sqrt(1.0 - alpha_bar)
        ax.fill_between(steps, mean - 2 * sd, mean + 2 * sd, color="C1", alpha=0.15)
    ax.set(xlabel="chain step n", ylabel="x", title="DDPM forward chain; exact VP marginals (mean +- 2 sd)")
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_chain.png", dpi=100)

    ts = np.linspace(eps, 1.0, 200)
    xs = np.linspace(-20.0, 20.0, 400)
    score = np.array([oracle.score(xs[:, None], t)[:, 0] for t in ts])
    fig, ax = plt.subplots(figsize=(8, 4))
    mesh = ax.pcolormesh(ts, xs, score.T, cmap="RdBu_r", norm=SymLogNorm(linthresh=1.0, vmin=-500, vmax=500),
                         shading="auto")
    for p in POINTS:
        ax.plot(ts, sde.mean_coeff(ts) * p, "k", lw=0.6)
    fig.colorbar(mesh, ax=ax, label=r"$\nabla_x \log p_t(x)$")
    ax.set(xlabel="t", ylabel="x", title="Exact score of the point masses (lines: a(t) x_k)")
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_score.png", dpi=100)

    fig, axes = plt.subplots(1, len(SAMPLERS), figsize=(14, 3.6), sharey=True)
    for ax, (label, _, _) in zip(axes, SAMPLERS):
        ax.plot(grid, paths[label], lw=0.5, alpha=0.6)
        ax.set(title=label, xlabel="t")
        ax.invert_xaxis()
    axes[0].set_ylabel("x")
    fig.suptitle("Reverse flows driven by the exact score (from exact p_T)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_flows.png", dpi=100)

    fig, axes = plt.subplots(1, len(SAMPLERS), figsize=(14, 3.2), sharey=True)
    u = np.linspace(-6.0, 6.0, 400)
    for ax, (label, _, _) in zip(axes, SAMPLERS):
        xe = finals[label]
        nearest = np.argmin(np.abs(xe[:, None] - centres[None, :]), axis=1)
        ax.hist((xe - centres[nearest]) / s_eps, bins=60, range=(-6, 6), density=True, alpha=0.6)
        ax.plot(u, np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi), "k", lw=1, label="exact p_eps")
        rho = spreads[label]
        ax.plot(u, np.exp(-0.5 * (u / rho) ** 2) / (rho * math.sqrt(2 * math.pi)), "C3--", lw=1,
                label="scheme's exact lone-point law")
        ax.set(title=label, xlabel="distance to nearest training point / s(eps)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Memorisation: every sample is a training point plus N(0, s(eps)^2) noise", fontsize=10)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_memorisation.png", dpi=100)

    return finish(summary, args.out, NAME)


if __name__ == "__main__":
    sys.exit(main())
