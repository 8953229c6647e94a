r"""Monte-Carlo-free weak errors on Gaussian data, and the prior-mismatch error on its own.

**Exact-law weak error** (one-component scenarios, any fixed-step ODE or SDE solver). The law of
the scheme at eps, :math:`N(m_h, S_h)`, is propagated exactly through its probed affine steps
(:mod:`~scorebench.verification.exact_law`) from the exact :math:`p_T`, and compared with the exact
:math:`p_\varepsilon = N(m, S)`:

.. math:: e(h) = \sqrt{|m_h - m|^2 + \|S_h - S\|_F^2},

linear in the discrepancy and free of cancellation, so its round-off floor is ``1e3 eps (|m| + ||S||)``;
the 2-Wasserstein distance (Dowson & Landau) and :math:`KL(N_h \| p_\varepsilon)` are reported beside
it (both involve square roots or logs of near-cancelling terms, so they are not fitted). The order
is judged against ``weak_order`` (SDE) or ``order`` (ODE: the law error of an order-p map is
:math:`O(h^p)`). No Monte Carlo noise at all (Pierret & Galerne, ICML 2025).

**Prior mismatch.** Starting from the default prior :math:`N(0, \sigma_p^2 I)` instead of
:math:`p_T` adds an error that is not discretisation. It is reported separately: the exact-law row
carries, per step, the W2 error of the same scheme started from the prior
(``extra["w2_from_default_prior"]``), and :func:`measure_prior_mismatch` gives the
solver-independent part: the exact PF-ODE flow is a bijection, so
:math:`KL(\Phi_\# \pi \,\|\, p_\varepsilon) = KL(\pi \,\|\, p_T)` — estimated by Monte Carlo over
:math:`\pi` with the exact :math:`\log p_T` as :math:`E_\pi[r - 1 - \log r]`, :math:`r = p_T/\pi`
(:math:`E_\pi[r - 1] = 0`, and the integrand is :math:`O((r-1)^2)` and non-negative, so the bar is
small relative to the value even when :math:`\pi \approx p_T`) — and, for one component, the
exact KL and the exact W2 at eps of the flow's image of the prior.
"""

from __future__ import annotations

import math

import numpy as np

from scorebench.solvers.grids import time_grid
from scorebench.verification._measure import (
    Context,
    fit_row,
    grid_max_step,
    info_row,
    run_measurement,
    stiffness_products,
)
from scorebench.verification.exact_law import NotAffineError, exact_gaussian_law, propagate_law
from scorebench.verification.orders import roundoff_floor
from scorebench.verification.stats import kl_gaussian, mean_with_se, w2_gaussian

__all__ = ["measure_exact_law", "measure_prior_mismatch", "flow_law_from_prior"]


def _law_errors(m, c, m_ex, c_ex):
    err = math.sqrt(float(np.sum((m - m_ex) ** 2) + np.sum((c - c_ex) ** 2)))
    try:
        kl = kl_gaussian(m, c, m_ex, c_ex)
    except ValueError:
        kl = math.inf
    return err, w2_gaussian(m, c, m_ex, c_ex), kl


def _exact_law(ctx: Context):
    if not ctx.scenario.has_exact_flow:
        raise ValueError(f"scenario: {ctx.scenario.name!r} has {ctx.scenario.n_components} components; "
                         "the exact law needs one")
    p = ctx.profile
    kind = "sde" if ctx.solver_kind == "sde" else "ode"
    family = p.sde_grid if kind == "sde" else p.ode_grid
    steps = sorted(int(s) for s in p.law_steps)
    m_T, c_T = exact_gaussian_law(ctx.oracle, ctx.T)
    m_ex, c_ex = exact_gaussian_law(ctx.oracle, ctx.eps)
    d = ctx.scenario.dim
    prior = (np.zeros(d), ctx.sde.prior_std**2 * np.eye(d))
    hs, errs, nfes, w2s, kls, w2_prior, grids = [], [], [], [], [], [], []
    for n_steps in steps:
        grid = time_grid(family, n_steps, ctx.T, ctx.eps, sde=ctx.sde)
        grids.append(grid)
        try:
            ((m, c), (mp, cp)), nfe = propagate_law(ctx.solver, ctx.oracle, grid, [(m_T, c_T), prior], ctx.seed)
        except NotAffineError as exc:
            return info_row(ctx, f"exact law not available: {exc}", extra={"not_affine": True})
        err, w2, kl = _law_errors(m, c, m_ex, c_ex)
        hs.append(float(np.max(np.abs(np.diff(grid)))))
        errs.append(err)
        w2s.append(w2)
        kls.append(kl)
        nfes.append(nfe)
        w2_prior.append(w2_gaussian(mp, cp, m_ex, c_ex))
    scale = float(np.linalg.norm(m_ex) + np.linalg.norm(c_ex))
    kappa = stiffness_products(ctx.scenario, grids, kind)
    declared = ctx.solver.weak_order if kind == "sde" else ctx.solver.order
    extra = {"method": "exact law (probed affine steps, no Monte Carlo)", "grid": family, "steps": steps,
             "error": "sqrt(|m_h - m|^2 + ||S_h - S||_F^2)", "w2": w2s, "kl": kls,
             "w2_from_default_prior": w2_prior, "stiffness_products": kappa,
             "start": "exact p_T (default-prior start reported separately)"}
    return fit_row(ctx, hs, errs, declared, nfe=nfes, extra=extra, kind=kind, scale=scale,
                   floor=roundoff_floor(scale), max_step=grid_max_step(hs, kappa))


def measure_exact_law(solver, scenario, profile="quick", seed=0):
    """Weak error of the scheme's exact law at eps against step (metric "weak_error", no MC noise)."""
    return run_measurement(_exact_law, solver, scenario, profile, seed, "weak_error", kinds=("ode", "sde"))


def flow_law_from_prior(oracle, prior_std: float, t: float):
    """``(mean, cov)`` at time t of the exact PF-ODE image of the prior N(0, prior_std^2 I) at T.

    One-component oracles only: the flow map is affine, ``x_t = b + M x_T``, and is probed on
    ``0`` and the unit vectors like any affine map.
    """
    if oracle.K != 1:
        raise ValueError(f"oracle: expected one-component data, got K = {oracle.K}")
    d, T = oracle.d, oracle.sde.T
    b = oracle.flow_map(np.zeros((1, d)), T, t)[0][0]
    M = (oracle.flow_map(np.eye(d), T, t)[0] - b).T
    return b, prior_std**2 * (M @ M.T)


def _prior_mismatch(ctx: Context):
    n = max(ctx.profile.weak_samples, 1000)
    d = ctx.scenario.dim
    sig = float(ctx.sde.prior_std)
    x = sig * ctx.rng("prior").standard_normal((n, d))
    log_q = -0.5 * np.sum(x**2, axis=1) / sig**2 - 0.5 * d * math.log(2 * math.pi * sig**2)
    log_r = ctx.oracle.log_prob(x, ctx.T) - log_q  # r = p_T / prior
    kl, kl_se = mean_with_se(np.expm1(log_r) - log_r)  # E[r - 1] = 0: the O(delta^2) integrand
    extra = {"kl_prior_pT": float(kl), "kl_se": float(kl_se), "samples": n, "prior_std": sig,
             "note": "KL(prior || p_T) = KL of the exact PF-ODE images at any t (flow maps are bijections)"}
    errors = [float(kl)]
    reason = f"KL(default prior || p_T) = {float(kl):.3g} +- {float(kl_se):.2g} nats (Monte Carlo over the prior)"
    if ctx.scenario.has_exact_flow:
        m, c = flow_law_from_prior(ctx.oracle, sig, ctx.eps)
        m_ex, c_ex = exact_gaussian_law(ctx.oracle, ctx.eps)
        w2 = w2_gaussian(m, c, m_ex, c_ex)
        kl_exact = kl_gaussian(np.zeros(d), sig**2 * np.eye(d), *exact_gaussian_law(ctx.oracle, ctx.T))
        extra.update(w2_at_eps=w2, kl_exact=kl_exact)
        reason += f"; exact KL {kl_exact:.3g}; W2 at eps of the exact flow's image of the prior {w2:.3g}"
    return info_row(ctx, reason, step_sizes=[ctx.T], errors=errors, extra=extra, abscissa="T",
                    error_bars=[float(kl_se)])


def measure_prior_mismatch(scenario, profile="quick", seed=0):
    """Solver-independent prior-mismatch error of a scenario (metric "prior_mismatch", verdict "info").

    The row's solver is ``"exact-flow"``: the numbers belong to the scenario and its default prior.
    """
    return run_measurement(_prior_mismatch, None, scenario, profile, seed, "prior_mismatch", row_kind="sde")
