r"""Predictor–corrector, verified for what it does: its variance floor against snr and against step.

PC has no order in h — the Langevin corrector's step :math:`\epsilon` does not shrink with dt — so it
is never fitted for an order. On isotropic Gaussian data :math:`N(0, \sigma_0^2 I_d)` (scenario
``iso64d-*``) its samples stay centred Gaussian and, with Song et al.'s batch-averaged norms, the
per-coordinate variance follows a deterministic recursion
(:func:`~scorebench.solvers.pc_theory.pc_variance_recursion`): :math:`v \leftarrow c^2 v + g^2|dt|`
for the predictor, :math:`v \leftarrow (1 - \epsilon/\sigma^2)^2 v + 2\epsilon` for each corrector
step with :math:`\epsilon = 2\alpha\,\mathrm{snr}^2\sigma^4/v`. Its relative variance error at eps,

.. math:: \rho = v_\varepsilon / \sigma_\varepsilon^2 - 1,

is the PC weak error; at fine steps it approaches the ULA inflation :math:`1/(1 - \mathrm{snr}^2) - 1`
(2.6 % at snr = 0.16).

Measurement: n samples from the exact :math:`p_T` are run through the solver (copies of it with
``snr`` replaced), and :math:`\hat v = \frac{1}{nd}\sum_{ij} x_{ij}^2` (the mean is exactly 0 by
symmetry). Coordinates are independent Gaussians given the shared step sizes, so
:math:`\mathrm{se}(\hat\rho) = (1 + \hat\rho)\sqrt{2/(nd)}`. Verdict (``norm="batch"``): every point
must satisfy :math:`|\hat\rho - \rho_{rec}| \le 5.5\,\mathrm{se} + 10^{-4}`; the two-sided normal tail
beyond 5.5 se is 3.8e-8 per point, so a correct sampler fails a row of up to 20 points with
probability below 1e-6 (Bonferroni), and the 1e-4 absorbs the recursion's large-batch
approximation (relative :math:`O(\mathrm{snr}^2/\sqrt{nd})`). Per-sample norms (``norm="sample"``)
have no such recursion: their floor is reported against snr with verdict "info".
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np

from scorebench.solvers.grids import time_grid
from scorebench.solvers.integrate import integrate_sde
from scorebench.solvers.pc_theory import pc_inflation, ula_inflation
from scorebench.verification._measure import Context, info_row, run_measurement

__all__ = ["measure_pc_snr", "measure_pc_steps", "PC_Z"]

#: Standard errors allowed between the measured and the predicted inflation (see module docstring).
PC_Z = 5.5
_APPROX = 1e-4


def _data_variance(ctx: Context) -> float:
    mix = ctx.scenario.mixture()
    c = mix.covs[0]
    iso = mix.K == 1 and np.allclose(mix.means, 0.0) and np.allclose(c, c[0, 0] * np.eye(mix.d))
    if not iso:
        raise ValueError(f"scenario: {ctx.scenario.name!r} is not isotropic zero-mean Gaussian data "
                         "(use an iso64d-* scenario); the PC variance recursion needs N(0, s^2 I)")
    return float(c[0, 0])


def _with_snr(solver, snr: float):
    if not hasattr(solver, "snr"):
        raise ValueError(f"solver: {solver.name!r} has no 'snr' attribute; the PC floor needs one")
    clone = copy.copy(solver)
    clone.snr = float(snr)
    return clone


def _run(ctx: Context, solver, grid, data_var):
    n, d = ctx.profile.pc_samples, ctx.scenario.dim
    x_T = ctx.oracle.sample(n, ctx.T, ctx.rng("x_T_pc"))
    problem = ctx.problem()
    start = time.perf_counter()
    x, _ = integrate_sde(solver, problem, x_T, grid, rng=ctx.rng("pc_noise"))
    wall = time.perf_counter() - start
    exact = ctx.sde.mean_coeff(ctx.eps) ** 2 * data_var + ctx.sde.marginal_var(ctx.eps)
    v_hat = float(np.mean(np.asarray(x) ** 2))
    rho = v_hat / exact - 1.0
    se = (1.0 + rho) * math.sqrt(2.0 / (n * d))
    v_T = ctx.sde.mean_coeff(ctx.T) ** 2 * data_var + ctx.sde.marginal_var(ctx.T)
    pred = pc_inflation(ctx.sde, grid, data_var, v_T, solver.snr,
                        n_corrector=getattr(solver, "n_corrector", 1),
                        predictor=getattr(solver, "predictor", "em"),
                        alpha_factor=getattr(solver, "alpha_factor", True))
    return rho, se, pred, problem.nfe, wall


def _judge(ctx: Context, rows, abscissa, values, **extra_fields):
    rho, se, pred, nfe, wall = (list(c) for c in zip(*rows))
    batch = getattr(ctx.solver, "norm", "batch") == "batch"
    dev = [abs(r - p) for r, p in zip(rho, pred)]
    tol = [PC_Z * s + _APPROX for s in se]
    ok = all(a <= b for a, b in zip(dev, tol))
    extra = {"measured_inflation": rho, "predicted_inflation": pred, "inflation_se": se,
             "ula_inflation": [ula_inflation(s) - 1.0 for s in extra_fields.pop("snrs")],
             "samples": ctx.profile.pc_samples, "norm": getattr(ctx.solver, "norm", "batch"),
             "tolerance_rule": f"|measured - recursion| <= {PC_Z} se + {_APPROX:g}", **extra_fields}
    worst = int(np.argmax(np.array(dev) / np.array(tol)))
    if batch:
        verdict = "pass" if ok else "fail"
        reason = (f"variance floor vs the PC recursion: worst point {abscissa}={values[worst]:.3g}, measured "
                  f"{rho[worst]:.4f} +- {se[worst]:.1e}, recursion {pred[worst]:.4f}, |difference| "
                  f"{dev[worst]:.2e} {'<=' if ok else '>'} {tol[worst]:.2e} ({PC_Z} se + {_APPROX:g})")
    else:
        verdict = "info"
        reason = ("per-sample norms: no exact recursion; measured variance inflation reported against "
                  f"{abscissa} (the batch-norm recursion and ULA's 1/(1 - snr^2) are shown for reference)")
    return info_row(ctx, reason, step_sizes=values, errors=[abs(r) for r in rho], verdict=verdict,
                    abscissa=abscissa, error_bars=se, nfe=nfe, wall_s=wall, extra=extra,
                    tolerance=max(tol))


def _snr(ctx: Context):
    data_var = _data_variance(ctx)
    grid = time_grid(ctx.profile.sde_grid, max(ctx.profile.pc_steps), ctx.T, ctx.eps, sde=ctx.sde)
    snrs = sorted(ctx.profile.pc_snrs)
    rows = [_run(ctx, _with_snr(ctx.solver, s), grid, data_var) for s in snrs]
    return _judge(ctx, rows, "snr", snrs, snrs=snrs, steps=len(grid) - 1)


def _steps(ctx: Context):
    data_var = _data_variance(ctx)
    steps = sorted(ctx.profile.pc_steps)
    grids = [time_grid(ctx.profile.sde_grid, n, ctx.T, ctx.eps, sde=ctx.sde) for n in steps]
    rows = [_run(ctx, ctx.solver, g, data_var) for g in grids]
    hs = [float(np.max(np.abs(np.diff(g)))) for g in grids]
    return _judge(ctx, rows, "step_size", hs, snrs=[ctx.solver.snr] * len(steps), steps=steps,
                  snr=ctx.solver.snr)


def measure_pc_snr(solver, scenario="iso64d-vp", profile="quick", seed=0):
    """PC's variance floor at eps against snr vs its recursion (metric "pc_floor", abscissa "snr")."""
    return run_measurement(_snr, solver, scenario, profile, seed, "pc_floor", kinds=("sde",))


def measure_pc_steps(solver, scenario="iso64d-vp", profile="quick", seed=0):
    """PC's weak (variance) error against step at its own snr vs the recursion (metric "weak_error")."""
    return run_measurement(_steps, solver, scenario, profile, seed, "weak_error", kinds=("sde",))
