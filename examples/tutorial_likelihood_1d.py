r"""Tutorial: the likelihood of a 1-D three-Gaussian mixture by the probability-flow ODE.

The computation people do in the likelihood tutorials: take a 1-D mixture of three Gaussians,
put 10,000 points on a grid in (-4, 4), and integrate the probability-flow ODE of the VP SDE
together with the divergence of its velocity,

.. math::

    \log p_\varepsilon(x) = \log p_T(x_T) + \int_\varepsilon^T \nabla\cdot v(x_t, t)\, dt,
    \qquad v = f x - \tfrac12 g^2 \nabla\log p_t .

Here the score is the exact one (:class:`scorebench.MixtureOracle`), so the answer is known in
closed form: :math:`p_\varepsilon = \sum_k w_k N(a \mu_k, a^2\sigma_k^2 + s^2)`. The script

1. solves the likelihood ODE with the exact divergence (the oracle's Laplacian) at
   rtol = atol = 1e-6 and asserts ``max |log p_ODE - log p_eps| < 1e-3`` over the grid, starting
   the prior term from the exact :math:`p_T`;
2. reports what the default prior N(0, 1) costs instead (the prior-mismatch term, which no
   solver tolerance removes);
3. runs Hutchinson's estimator with one probe per point held for the whole path. In 1-D the
   estimate of the divergence is :math:`z^2\, \partial_x v`, so the log-likelihood estimate is
   exactly :math:`\log p_T(x_T) + z^2 \Delta` with :math:`\Delta = \int \nabla\cdot v\,dt`:
   Rademacher probes (:math:`z^2 = 1`) are *exact* in 1-D, and Gaussian probes make the error
   :math:`(z^2 - 1)\Delta`, i.e. ``delta_hutch / delta_exact`` is a chi-square(1) sample. The
   script asserts both, the chi-square law with a Kolmogorov–Smirnov test, and that the mean
   error over the grid lies inside its confidence interval (a Laurent–Massart bound).

Figures (in ``--out``): ``likelihood_1d_density.png`` (ODE densities over the exact one) and
``likelihood_1d_error.png`` (the error curves).

Run: ``python examples/tutorial_likelihood_1d.py [--quick] [--out DIR]``.

References
----------
W. Grathwohl et al., "FFJORD", ICLR 2019 (Hutchinson's estimator in CNFs). B. Laurent and
P. Massart, "Adaptive estimation of a quadratic functional by model selection", Ann. Statist.
28 (2000), Lemma 1.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from scipy import stats as sps

import scorebench as sb
from scorebench.verification.stats import dkw_threshold, ks_test_cdf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _tutorial_common sits beside this script
from _tutorial_common import check, finish, parse_args, save_figure, start_figures, three_gaussians  # noqa: E402

NAME = "likelihood_1d"
ALPHA = 1e-6  # family-wise level of the statistical assertions (Bonferroni over the two below)


def laurent_massart_halfwidth(a: np.ndarray, alpha: float) -> float:
    r"""Half-width h with P(|sum_i a_i (z_i^2 - 1)| > h) <= alpha for iid z_i ~ N(0, 1).

    Laurent & Massart (2000, Lemma 1): for non-negative weights b,
    :math:`P(\sum b_i(z_i^2-1) \ge 2\|b\|_2\sqrt{x} + 2\|b\|_\infty x) \le e^{-x}` and
    :math:`P(\sum b_i(z_i^2-1) \le -2\|b\|_2\sqrt{x}) \le e^{-x}`. Split a into its positive and
    negative parts; each part's sum deviates by more than ``2|b|_2 sqrt(x) + 2|b|_inf x`` (either
    side) with probability <= 2 e^{-x}, so with x = ln(4/alpha) the total fails with probability
    <= alpha.
    """
    x = math.log(4.0 / alpha)
    h = 0.0
    for b in (np.clip(a, 0.0, None), np.clip(-a, 0.0, None)):
        if b.size and b.max() > 0:
            h += 2.0 * np.linalg.norm(b) * math.sqrt(x) + 2.0 * b.max() * x
    return h


def main(argv=None) -> int:
    args = parse_args(argv, __doc__, seed=20240601, seed_help="seed of the Hutchinson probes")
    plt = start_figures(args.out)
    n_points = 1_000 if args.quick else 10_000
    eps, tol = 1e-5, 1e-6
    mix = three_gaussians()
    sde = sb.VPSDE()  # beta from 0.1 to 20 over [0, 1], as in the tutorials
    oracle = sb.MixtureOracle(mix, sde)
    x = np.linspace(-4.0, 4.0, n_points)[:, None]
    exact = oracle.log_prob(x, eps)

    # 1. exact divergence, exact p_T: only the ODE solver's error is left
    t0 = time.perf_counter()
    res = sb.log_likelihood(
        x, oracle, sde, divergence="exact", rtol=tol, atol=tol, eps=eps, prior=oracle.exact_log_prob_T
    )
    wall_exact = time.perf_counter() - t0
    err_exact = res.logp - exact
    max_err = float(np.max(np.abs(err_exact)))
    print(f"[{NAME}] {n_points} points, rtol = atol = {tol:g}, eps = {eps:g}")
    print(f"  exact divergence, exact p_T:    max |error| = {max_err:.2e} (assert < 1e-3), "
          f"NFE = {res.nfe}, {wall_exact:.2f} s ({res.backend})")
    check(max_err < 1e-3, f"exact-divergence likelihood: max error {max_err:.3e} >= 1e-3")

    # 2. the default prior N(0, 1) instead of p_T: the prior-mismatch term, exactly
    mismatch = sde.prior_log_prob(res.x_T) - oracle.exact_log_prob_T(res.x_T)
    err_default = err_exact + mismatch
    print(f"  default prior N(0, 1) instead:  max |error| = {np.max(np.abs(err_default)):.2e} "
          f"(prior mismatch alone: {np.max(np.abs(mismatch)):.2e}; no tolerance removes it)")

    # 3. Hutchinson, one probe per point held along the path
    rng = np.random.default_rng(args.seed)
    rad = sb.log_likelihood(
        x, oracle, sde, divergence="hutchinson", probe="rademacher", rtol=tol, atol=tol, eps=eps,
        prior=oracle.exact_log_prob_T, rng=rng,
    )
    err_rad = rad.logp - exact
    max_rad = float(np.max(np.abs(err_rad)))
    print(f"  Hutchinson, Rademacher probes:  max |error| = {max_rad:.2e} (z^2 = 1: exact in 1-D; "
          "assert < 1e-3)")
    check(max_rad < 1e-3, f"Rademacher Hutchinson in 1-D: max error {max_rad:.3e} >= 1e-3")

    gau = sb.log_likelihood(
        x, oracle, sde, divergence="hutchinson", probe="gaussian", rtol=tol, atol=tol, eps=eps,
        prior=oracle.exact_log_prob_T, rng=rng,
    )
    err_gau = gau.logp - exact
    delta = res.delta_logp  # Delta_i = int div v dt along the path of x_i
    mean_err = float(np.mean(err_gau))
    # Mean error = (1/N) sum_i Delta_i (z_i^2 - 1) + discretisation. Two assertions share ALPHA.
    alpha = ALPHA / 2
    half = laurent_massart_halfwidth(delta / n_points, alpha) + 2.0 * max(max_err, max_rad)
    sd = math.sqrt(2.0 * np.sum(delta**2)) / n_points  # exact std of the mean error
    print(f"  Hutchinson, Gaussian probes:    mean error = {mean_err:+.3e} (exact std {sd:.2e}), "
          f"CI half-width = {half:.3e} (alpha = {alpha:g}); max |error| = {np.max(np.abs(err_gau)):.1f}")
    check(abs(mean_err) <= half, f"Gaussian Hutchinson mean error {mean_err:.3e} outside +-{half:.3e}")

    # delta_hutch / delta_exact = z^2 ~ chi-square(1) where |Delta| is not small. The path
    # errors of the two solves (<= max_err, max_rad each) move each ratio by at most
    # d = 2 max(...) / min|Delta|; chi2(1)'s CDF 2 Phi(sqrt r) - 1 moves by at most
    # sqrt(2/pi) (sqrt(r + d) - sqrt(r)) <= sqrt(2 d / pi), added to the DKW threshold.
    keep = np.abs(delta) >= 1.0
    ratio = gau.delta_logp[keep] / delta[keep]
    d_shift = 2.0 * max(max_err, max_rad) / 1.0
    ks = ks_test_cdf(ratio, sps.chi2(1).cdf, alpha)
    ks_thr = dkw_threshold(ratio.size, alpha) + math.sqrt(2.0 * d_shift / math.pi)
    print(f"  delta_hutch / delta_exact ~ chi2(1): KS D = {ks.statistic:.4f} on {ratio.size} points "
          f"(threshold {ks_thr:.4f})")
    check(ks.statistic <= ks_thr, f"Hutchinson ratio is not chi2(1): D = {ks.statistic:.4f} > {ks_thr:.4f}")

    # figures
    xs = x[:, 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, np.exp(exact), "k", lw=2.5, label=r"exact $p_\varepsilon$")
    ax.plot(xs, np.exp(res.logp), "C1--", lw=1.5, label="PF-ODE, exact divergence")
    sub = slice(None, None, max(1, n_points // 400))
    ax.plot(xs[sub], np.exp(gau.logp[sub]), "C0.", ms=2, alpha=0.6, label="PF-ODE, Hutchinson (Gaussian, 1 probe)")
    ax.set(xlabel="x", ylabel="density", title="Likelihood of a three-Gaussian mixture (VP SDE)")
    ax.set_ylim(0, 1.3 * np.exp(exact).max())
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_density.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 4))
    floor = 1e-12
    ax.semilogy(xs, np.abs(err_exact) + floor, "C1", label="exact divergence, exact $p_T$")
    ax.semilogy(xs, np.abs(err_default) + floor, "C2", label="exact divergence, default prior N(0, 1)")
    ax.semilogy(xs, np.abs(err_rad) + floor, "C3:", label="Hutchinson, Rademacher")
    ax.semilogy(xs[sub], np.abs(err_gau[sub]) + floor, "C0.", ms=2, alpha=0.5,
                label="Hutchinson, Gaussian (1 probe)")
    ax.semilogy(xs, math.sqrt(2.0) * np.abs(delta) + floor, "C0", lw=1,
                label=r"its std $\sqrt{2}|\Delta|$")
    ax.axhline(tol, color="gray", ls="--", lw=0.8, label="rtol = atol")
    ax.set(xlabel="x", ylabel=r"$|\log p - \log p_\varepsilon|$", title="Error of the log-likelihood")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, args.out, f"{NAME}_error.png", dpi=110)

    summary = {
        "n_points": n_points, "max_error_exact": max_err, "nfe_exact": res.nfe,
        "max_prior_mismatch": float(np.max(np.abs(mismatch))), "max_error_rademacher": max_rad,
        "mean_error_gaussian": mean_err, "std_mean_error_gaussian": sd, "ci_halfwidth_gaussian": half,
        "ks_chi2": ks.statistic, "ks_threshold": ks_thr,
    }
    return finish(summary, args.out, NAME)


if __name__ == "__main__":
    sys.exit(main())
