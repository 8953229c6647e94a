r"""Likelihood measurements: ODE log-likelihood error, trace-estimator variance, score-error effects.

**Log-likelihood error.** For exact samples :math:`x \sim p_\varepsilon`,
:func:`~scorebench.solvers.likelihood.log_likelihood` (exact divergence, the exact prior
:math:`\log p_T` so that the prior plays no part) is compared with the exact
:math:`\log p_\varepsilon(x)`: :math:`e = \mathrm{mean}_i |\widehat{\log p}(x_i) - \log p_\varepsilon(x_i)|`.
Against rtol (adaptive solvers, ``atol = rtol``) the slope is fitted and reported ("info": the
log-density is one component of the controlled augmented state, so its error need not be
proportional to rtol; sampling's tolerance proportionality is the judged check); against the
step of a fixed-step solver (uniform grid from eps to T) it is judged against the solver's
``order``. Solvers that implement only ``advance`` (DDIM, DPM-Solver) cannot integrate the
augmented ODE and are reported as not applicable. NFE is reported beside every error.

**Trace estimators.** At fixed points :math:`x \sim p_t` and time t, with
:math:`J = f I - \tfrac12 g^2 \nabla^2\log p_t` from the exact Hessian, the estimators of
:math:`\mathrm{tr}\,J` are drawn R times with fresh probes and compared with theory
(Hutchinson 1990; Meyer et al. 2021):

* Hutchinson, m probes: unbiased, variance :math:`2\|J\|_F^2/m` (Gaussian) and
  :math:`2(\|J\|_F^2 - \sum_i J_{ii}^2)/m` (Rademacher);
* Hutch++ (Gaussian probes, k = m // 3 sketch vectors, m - 2k Hutchinson vectors): unbiased given
  the sketch, variance :math:`E_S[2\|P_S J P_S\|_F^2]/(m - 2k)`, :math:`P_S = I - QQ^\top`,
  :math:`Q = \mathrm{qr}(JS)` — the expectation over S computed from the very sketches drawn.

Checks (each at :math:`z = 6`, two-sided normal tail 2e-9, so a row of up to 100 checks fails a
correct estimator with probability below 1e-6 by Bonferroni): :math:`|\bar D - \mathrm{tr}J| \le
z\sqrt{\sigma^2_{th}/R}` and :math:`|s^2 - \sigma^2_{th}| \le z\sqrt{(\hat\mu_4 - s^4)/R +
2\sigma_{th}^4/(R(R-1))}` (the large-R normal law of the sample variance, :math:`\hat\mu_4` the
sample fourth central moment; the exact finite-R term keeps the bound valid for few-valued
estimates, e.g. Rademacher probes in 2-D).

**Known score error.** With the score scaled by :math:`c = 1 + \delta`
(:meth:`~scorebench.solvers.perturbed_oracle.PerturbedOracle.scaled`) the exact PF-ODE map is
known; for one-component data the solver's law with the perturbed score is propagated exactly
(:mod:`~scorebench.verification.exact_law`) and its W2 to :math:`p_\varepsilon` reported against
δ, beside the likelihood error of the perturbed model (exact divergence). Both grow linearly in δ;
the slope is reported ("info").
"""

from __future__ import annotations

import math
import time

import numpy as np

from scorebench.solvers.base import ODESolver
from scorebench.solvers.divergence import get_divergence
from scorebench.solvers.grids import time_grid
from scorebench.solvers.likelihood import log_likelihood
from scorebench.solvers.perturbed_oracle import PerturbedOracle
from scorebench.verification._measure import Context, fit_row, info_row, run_measurement
from scorebench.verification.exact_law import NotAffineError, exact_gaussian_law, propagate_law
from scorebench.verification.orders import fit_order
from scorebench.verification.stats import w2_gaussian

__all__ = [
    "measure_likelihood_rtol",
    "measure_likelihood_steps",
    "measure_trace_estimator",
    "measure_divergence_variance",
    "measure_held_probe_loglik",
    "measure_score_error",
    "HUTCH_Z",
]

#: Normal quantile of the trace-estimator checks (see the module docstring).
HUTCH_Z = 6.0


def _loglik_points(ctx: Context):
    n = ctx.profile.lik_points
    x = ctx.oracle.sample(n, ctx.eps, ctx.rng("loglik_x"))
    return x, ctx.oracle.log_prob(x, ctx.eps)


def _loglik(ctx: Context, x, exact, **kw):
    start = time.perf_counter()
    res = log_likelihood(x, ctx.oracle, ctx.sde, divergence="exact", method=ctx.solver, eps=ctx.eps,
                         prior=ctx.oracle.exact_log_prob_T, backend="numpy", **kw)
    wall = time.perf_counter() - start
    logp = np.asarray(res.logp, dtype=np.float64)
    if not np.all(np.isfinite(logp)):
        raise ValueError(f"log_likelihood with {ctx.solver_name!r} returned non-finite values")
    return float(np.mean(np.abs(logp - exact))), int(res.nfe), wall


def _lik_rtol(ctx: Context):
    x, exact = _loglik_points(ctx)
    rtols = sorted(ctx.profile.lik_rtols, reverse=True)
    out = [_loglik(ctx, x, exact, rtol=r, atol=r) for r in rtols]
    errs, nfes, walls = (list(c) for c in zip(*out))
    extra = {"points": len(x), "prior": "exact p_T", "divergence": "exact", "atol": "equal to rtol"}
    return fit_row(ctx, rtols, errs, None, nfe=nfes, wall_s=walls, abscissa="rtol", extra=extra, kind="ode",
                   agreement_abs=math.inf)


def measure_likelihood_rtol(solver, scenario, profile="quick", seed=0):
    """Log-likelihood error against rtol of an adaptive solver (metric "loglik_error", slope ~ 1)."""
    return run_measurement(_lik_rtol, solver, scenario, profile, seed, "loglik_error", kinds=("adaptive",))


def _lik_steps(ctx: Context):
    if type(ctx.solver).step is ODESolver.step:
        return info_row(ctx, f"not applicable: {ctx.solver_name!r} implements only advance(), so it cannot "
                        "integrate the augmented likelihood ODE")
    x, exact = _loglik_points(ctx)
    steps = sorted(ctx.profile.lik_steps)
    out = [_loglik(ctx, x, exact, steps=n) for n in steps]
    errs, nfes, walls = (list(c) for c in zip(*out))
    hs = [float(np.max(np.abs(np.diff(time_grid("uniform", n, ctx.T, ctx.eps))))) for n in steps]
    extra = {"points": len(x), "prior": "exact p_T", "divergence": "exact", "grid": "uniform", "steps": steps}
    return fit_row(ctx, hs, errs, ctx.solver.order, nfe=nfes, wall_s=walls, extra=extra, kind="ode")


def measure_likelihood_steps(solver, scenario, profile="quick", seed=0):
    """Log-likelihood error against step of a fixed-step ODE solver (metric "loglik_error")."""
    return run_measurement(_lik_steps, solver, scenario, profile, seed, "loglik_error", kinds=("ode",))


def _theory_variance(J, probe):
    fro = np.sum(J**2, axis=(1, 2))
    if probe == "gaussian":
        return 2.0 * fro
    return 2.0 * (fro - np.sum(np.diagonal(J, axis1=1, axis2=2) ** 2, axis=1))


def _trace(ctx: Context, estimator: str, probe: str, t_frac: float):
    p = ctx.profile
    t = ctx.eps + t_frac * (ctx.T - ctx.eps)
    P, R, d = p.hutch_points, p.hutch_repeats, ctx.scenario.dim
    x = ctx.oracle.sample(P, t, ctx.rng("trace_x"))
    f, g2 = float(ctx.sde.drift_coeff(t)), float(ctx.sde.diffusion_sq(t))
    J = f * np.eye(d)[None] - 0.5 * g2 * ctx.oracle.hessian(x, t)
    J = 0.5 * (J + np.swapaxes(J, 1, 2))
    exact = np.trace(J, axis1=1, axis2=2)
    xr = np.repeat(x, R, axis=0)
    probes = [m for m in sorted(p.hutch_probes) if estimator != "hutch++" or m >= 3]
    meas, theo, checks, worst = [], [], 0, (0.0, "")
    bias_ok = var_ok = True
    for m in probes:
        div = get_divergence(estimator, ctx.oracle, ctx.sde, probes=m, probe=probe)
        state = div.prepare(xr, ctx.rng(f"trace_probes_{estimator}_{probe}_{m}"))
        est = np.asarray(div(xr, t, state)[1], dtype=np.float64).reshape(P, R)
        if estimator == "hutch++":
            S = np.asarray(state[0]).reshape(P, R, d, -1)
            Q = np.linalg.qr(np.einsum("pij,prjk->prik", J, S))[0]
            Pj = np.eye(d) - Q @ np.swapaxes(Q, 2, 3)
            PJP = Pj @ J[:, None] @ Pj
            sig2 = 2.0 * np.mean(np.sum(PJP**2, axis=(2, 3)), axis=1) / (m - 2 * (m // 3))
        else:
            sig2 = _theory_variance(J, probe) / m
        mean, var = est.mean(1), est.var(1, ddof=1)
        mu4 = np.mean((est - mean[:, None]) ** 4, axis=1)
        bias_tol = HUTCH_Z * np.sqrt(sig2 / R) + 1e-12 * (1 + np.abs(exact))
        # Var(s^2) = (mu4 - s^4)/R + 2 s^4/(R(R-1)); the second term keeps the bound honest for
        # few-valued estimates (Rademacher probes in 2-D give a two-point law with mu4 = s^4)
        var_tol = HUTCH_Z * np.sqrt(np.maximum(mu4 - var**2, 0.0) / R + 2.0 * sig2**2 / (R * (R - 1))) \
            + 1e-12 * (1 + sig2)
        b_ratio, v_ratio = np.abs(mean - exact) / bias_tol, np.abs(var - sig2) / var_tol
        bias_ok &= bool(np.all(b_ratio <= 1))
        var_ok &= bool(np.all(v_ratio <= 1))
        checks += 2 * P
        k = float(max(b_ratio.max(), v_ratio.max()))
        if k >= worst[0]:
            i = int(np.argmax(np.maximum(b_ratio, v_ratio)))
            worst = (k, f"m={m}, point {i}: bias {mean[i] - exact[i]:.3g} (tol {bias_tol[i]:.3g}), "
                        f"variance {var[i]:.4g} vs theory {sig2[i]:.4g} (tol {var_tol[i]:.3g})")
        meas.append(float(np.mean(var)))
        theo.append(float(np.mean(sig2)))
    ok = bias_ok and var_ok
    reason = (f"{estimator} ({probe} probes) at t={t:.3g}: {'unbiased and variance as theory' if ok else 'FAILED'}"
              f" over {checks} checks at z={HUTCH_Z:g}; worst {worst[1]}")
    extra = {"theory_variance": theo, "t": t, "points": P, "repeats": R, "probe": probe,
             "unbiased": bias_ok, "variance_matches": var_ok, "estimator": estimator,
             "theory": theo,
             "theory_formula": "2||J||_F^2/m (gaussian), 2(||J||_F^2 - sum J_ii^2)/m (rademacher), "
                       "E_S 2||P J P||_F^2/(m - 2k) (hutch++)"}
    return info_row(ctx, reason, step_sizes=probes, errors=meas, verdict="pass" if ok else "fail",
                    abscissa="probes", extra=extra, error_bars=None)


def measure_trace_estimator(scenario, profile="quick", seed=0, estimator="hutchinson", probe="gaussian",
                            t_frac=0.5):
    """Bias and variance of a trace estimator against theory (metric "hutchinson_variance").

    ``estimator`` is ``"hutchinson"`` or ``"hutch++"`` (Gaussian probes for Hutch++'s theory).
    """
    if estimator == "hutch++" and probe != "gaussian":
        raise ValueError("probe: the Hutch++ variance theory here is for Gaussian probes")
    return run_measurement(_trace, None, scenario, profile, seed, "hutchinson_variance",
                           label=f"{estimator}-{probe}", row_kind="divergence", estimator=estimator,
                           probe=probe, t_frac=t_frac)


def measure_divergence_variance(estimator, scenario, profile="quick", seed=0):
    """Suite entry point for a trace estimator by name: ``"hutchinson"`` (Rademacher probes, the
    library's default) or ``"hutch++"`` (Gaussian probes, for which its variance theory holds)."""
    if estimator not in ("hutchinson", "hutch++"):
        raise ValueError(f"estimator: expected 'hutchinson' or 'hutch++', got {estimator!r}")
    probe = "gaussian" if estimator == "hutch++" else "rademacher"
    return measure_trace_estimator(scenario, profile, seed, estimator=estimator, probe=probe)


def _held(ctx: Context, probe: str):
    if not ctx.scenario.has_exact_flow:
        raise ValueError(f"scenario: {ctx.scenario.name!r} needs one component (the path integral of J)")
    p = ctx.profile
    P, R = p.hutch_points, p.held_probe_repeats
    mix, sde = ctx.scenario.mixture(), ctx.sde
    lam = lambda t: sde.mean_coeff(t) ** 2 * mix.eigvals[0] + sde.marginal_var(t)  # noqa: E731
    U = mix.eigvecs[0]
    K = U @ np.diag(0.5 * np.log(lam(ctx.T) / lam(ctx.eps))) @ U.T  # int_eps^T J dt, any path
    sig2 = 2.0 * (np.sum(K**2) - (np.sum(np.diag(K) ** 2) if probe == "rademacher" else 0.0))
    x, exact = _loglik_points(ctx)
    x, exact = x[:P], exact[:P]
    res = log_likelihood(np.repeat(x, R, axis=0), ctx.oracle, sde, divergence="hutchinson", probes=1,
                         probe=probe, method="rk45", rtol=1e-8, atol=1e-8, eps=ctx.eps,
                         prior=ctx.oracle.exact_log_prob_T, rng=ctx.rng(f"held_{probe}"), backend="numpy")
    est = np.asarray(res.logp, dtype=np.float64).reshape(P, R)
    mean, var = est.mean(1), est.var(1, ddof=1)
    mu4 = np.mean((est - mean[:, None]) ** 4, axis=1)
    bias_tol = HUTCH_Z * math.sqrt(sig2 / R) + 1e-5 * (1 + np.abs(exact))  # + the rk45 error at 1e-8
    var_tol = HUTCH_Z * np.sqrt(np.maximum(mu4 - var**2, 0.0) / R + 2.0 * sig2**2 / (R * (R - 1)))
    ok_b, ok_v = bool(np.all(np.abs(mean - exact) <= bias_tol)), bool(np.all(np.abs(var - sig2) <= var_tol))
    ok = ok_b and ok_v
    i = int(np.argmax(np.abs(var - sig2) / var_tol))
    reason = (f"one {probe} probe held along each rk45 solve (rtol 1e-8): log-likelihood "
              f"{'unbiased, variance as theory' if ok else 'FAILED'} (z={HUTCH_Z:g}); theory 2||int J dt||_F^2"
              f"{' - diagonal' if probe == 'rademacher' else ''} = {sig2:.4g}, worst point variance "
              f"{var[i]:.4g} (tol {var_tol[i]:.3g}), max |bias| {np.max(np.abs(mean - exact)):.3g}")
    extra = {"theory_variance": [sig2], "measured_variance": var.tolist(), "bias": (mean - exact).tolist(),
             "repeats": R, "points": P, "probe": probe, "unbiased": ok_b, "variance_matches": ok_v,
             "integral_of_J": "U diag(log(lambda_i(T)/lambda_i(eps))/2) U^T (Gaussian data: path-independent)"}
    return info_row(ctx, reason, step_sizes=[1], errors=[float(np.mean(var))], verdict="pass" if ok else "fail",
                    abscissa="probes", extra=extra, nfe=[int(res.nfe)])


def measure_held_probe_loglik(scenario, profile="quick", seed=0, probe="gaussian"):
    r"""Variance of the Hutchinson log-likelihood with one probe held per solve vs ``2||int J dt||_F^2``.

    For one-component data :math:`J(t) = U\,\mathrm{diag}(\tfrac12 \frac{d}{dt}\log\lambda_i)U^\top`
    does not depend on x, so :math:`\int_\varepsilon^T J\,dt = U\,\mathrm{diag}(\tfrac12
    \log(\lambda_i(T)/\lambda_i(\varepsilon)))U^\top` exactly, on every path (metric
    "hutchinson_variance").
    """
    return run_measurement(_held, None, scenario, profile, seed, "hutchinson_variance",
                           label=f"hutchinson-held-{probe}", row_kind="divergence", probe=probe)


def _score_error(ctx: Context):
    if not ctx.scenario.has_exact_flow:
        raise ValueError(f"scenario: {ctx.scenario.name!r} needs one component for the exact law")
    p = ctx.profile
    kind = "sde" if ctx.solver_kind == "sde" else "ode"
    family = p.sde_grid if kind == "sde" else p.ode_grid
    grid = time_grid(family, max(p.law_steps), ctx.T, ctx.eps, sde=ctx.sde)
    m_T, c_T = exact_gaussian_law(ctx.oracle, ctx.T)
    m_ex, c_ex = exact_gaussian_law(ctx.oracle, ctx.eps)
    x, exact = _loglik_points(ctx)
    sizes = sorted(float(s) for s in p.score_error_sizes)
    w2s, liks = [], []
    for delta in sizes:
        model = PerturbedOracle.scaled(ctx.oracle, 1.0 + delta)
        try:
            ((m, c),), _ = propagate_law(ctx.solver, ctx.oracle, grid, [(m_T, c_T)], ctx.seed, model=model)
        except NotAffineError as exc:
            return info_row(ctx, f"exact law not available: {exc}", extra={"not_affine": True})
        w2s.append(w2_gaussian(m, c, m_ex, c_ex))
        res = log_likelihood(x, model, ctx.sde, divergence="exact", method="rk45", rtol=1e-9, atol=1e-9,
                             eps=ctx.eps, prior=ctx.oracle.exact_log_prob_T, backend="numpy")
        liks.append(float(np.mean(np.abs(np.asarray(res.logp) - exact))))
    pos = [i for i, s in enumerate(sizes) if s > 0]
    slope = fit_order([sizes[i] for i in pos], [w2s[i] for i in pos], floor=0.0, agreement_abs=math.inf) \
        if len(pos) >= 3 else None
    extra = {"loglik_error": liks, "w2": w2s, "steps": len(grid) - 1, "perturbation": "score * (1 + delta)",
             "w2_at_zero": w2s[0] if sizes and sizes[0] == 0 else None,
             "slope_w2_vs_delta": None if slope is None else slope.order}
    text = "" if slope is None else f"; W2 grows like delta^{slope.order:.2f}"
    return info_row(ctx, f"effect of a known score error (score x (1 + delta)) at {len(grid) - 1} steps{text}",
                    step_sizes=sizes, errors=w2s, abscissa="score_error", extra=extra)


def measure_score_error(solver, scenario, profile="quick", seed=0):
    """W2 of the solver's law and the likelihood error against a known score error (metric "score_error")."""
    return run_measurement(_score_error, solver, scenario, profile, seed, "score_error", kinds=("ode", "sde"))
