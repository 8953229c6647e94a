"""Scenarios and measurements of the verification suite, checked against exact oracles.

Every measurement draws its randomness from streams seeded by (seed, scenario, purpose), so these
tests are deterministic; the statistical thresholds are still chosen so that a correct
implementation would fail with probability below 1e-6 for a fresh seed (derivations inline).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from scorebench.solvers.base import ODESolver, SDESolver
from scorebench.solvers.exponential import DDIM
from scorebench.solvers.grids import time_grid
from scorebench.solvers.integrate import integrate_sde
from scorebench.solvers.predictor_corrector import PredictorCorrector
from scorebench.solvers.problem import ReverseProblem
from scorebench.solvers.registry import get_solver
from scorebench.verification.exact_law import NotAffineError, exact_gaussian_law, probe_affine_step, propagate_law
from scorebench.verification.measure_law import measure_exact_law, measure_prior_mismatch
from scorebench.verification.measure_likelihood import measure_held_probe_loglik, measure_trace_estimator
from scorebench.verification.measure_ode import (
    measure_ode_global_error,
    measure_point_mass_exactness,
    measure_tolerance_proportionality,
)
from scorebench.verification.measure_pc import measure_pc_snr
from scorebench.verification.measure_sde import (
    coarsen_increments,
    measure_sde_strong_error,
    measure_sde_weak_error,
)
from scorebench.verification.profiles import QUICK, get_profile
from scorebench.verification.scenarios import get_scenario, list_scenarios, scenario_names

FAST = QUICK.replace(ode_steps=(8, 16, 32, 64, 128), ode_batch=16, law_steps=(8, 16, 32, 64, 128))


# ----------------------------------------------------------------------------------------------
# plug-in solvers used as positive and negative controls
# ----------------------------------------------------------------------------------------------
class WrongHeun(ODESolver):
    """Heun with the weights (1/2, 1/2) altered to (0.6, 0.4): consistent (they sum to 1) but
    sum_i b_i c_i = 0.4 != 1/2, so only first order, while it still declares order 2."""

    name = "wrong-heun"
    order = 2

    def step(self, f, x, t, dt):
        k1 = f(x, t)
        k2 = f(x + dt * k1, t + dt)
        return x + dt * (0.6 * k1 + 0.4 * k2)


class NanSolver(ODESolver):
    name = "nan-solver"
    order = 1

    def step(self, f, x, t, dt):
        return x + dt * f(x, t) * np.nan


class LoudEM(SDESolver):
    """Euler-Maruyama with the noise scaled by 1.25: converges, but to the wrong law."""

    name = "loud-em"
    strong_order = 1.0
    weak_order = 1.0

    def step(self, drift, g, x, t, dt, dw):
        return x + dt * drift(x, t) + 1.25 * g(t) * dw


class RaisingSDE(SDESolver):
    name = "raising-sde"
    strong_order = 1.0
    weak_order = 1.0

    def step(self, drift, g, x, t, dt, dw):
        raise RuntimeError("boom at the first step")


# ----------------------------------------------------------------------------------------------
# scenarios
# ----------------------------------------------------------------------------------------------
def test_scenario_registry_covers_the_issue_and_is_deterministic():
    names = scenario_names()
    for base in ("gauss2d", "gauss16d", "mix1d3", "points1d4", "ring8", "mix16d", "mix64d"):
        for sde in ("vp", "subvp", "ve"):
            assert f"{base}-{sde}" in names
    by_name = {s.name: s for s in list_scenarios()}
    assert by_name["gauss2d-vp"].has_exact_flow and by_name["gauss16d-ve"].dim == 16
    assert by_name["ring8-vp"].n_components == 8 and not by_name["ring8-vp"].has_exact_flow
    assert by_name["mix64d-subvp"].dim == 64 and by_name["points1d4-ve"].singular
    pts = get_scenario("points1d4-vp").mixture()
    np.testing.assert_array_equal(np.sort(pts.means[:, 0]), [-15.0, -5.0, 1.0, 10.0])
    s = get_scenario("mix64d-ve")
    clone = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(clone.mixture().covs, s.mixture().covs)
    assert clone.sde() == s.sde()
    with pytest.raises(ValueError, match="unknown scenario 'nope'.*gauss2d-vp"):
        get_scenario("nope")
    with pytest.raises(ValueError, match="profile"):
        get_profile("slow")


# ----------------------------------------------------------------------------------------------
# ODE global error and orders
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, declared", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_builtin_ode_orders_pass(name, declared):
    row = measure_ode_global_error(name, "gauss2d-vp", FAST, seed=1)
    assert row.verdict == "pass", row.reason
    assert row.metric == "global_error" and row.kind == "ode" and row.declared_order == declared
    assert abs(row.estimated_order - declared) <= 0.2
    assert row.order_ci[0] < row.estimated_order < row.order_ci[1]
    assert len(row.errors) == len(row.step_sizes) == len(row.nfe) == 5
    assert all(a > b for a, b in zip(row.errors, row.errors[1:]))  # errors fall with the step


def test_mixture_reference_is_dop853_and_rk4_passes():
    row = measure_ode_global_error("rk4", "mix1d3-vp", FAST, seed=0)
    assert row.verdict == "pass", row.reason
    assert "DOP853" in row.extra["reference"] and row.extra["reference_error"] < 1e-9


def test_wrong_declared_order_fails():
    row = measure_ode_global_error(WrongHeun, "gauss2d-vp", FAST, seed=1)
    assert row.verdict == "fail"
    assert abs(row.estimated_order - 1.0) < 0.15  # it is really first order
    assert "declared 2" in row.reason


def test_nan_and_raising_solvers_give_error_rows():
    row = measure_ode_global_error(NanSolver, "gauss2d-vp", FAST)
    assert row.verdict == "error" and "non-finite" in row.reason and row.solver == "nan-solver"
    row = measure_sde_strong_error(RaisingSDE, "gauss2d-vp", FAST)
    assert row.verdict == "error" and "boom at the first step" in row.reason and row.kind == "sde"
    row = measure_ode_global_error("no-such-solver", "gauss2d-vp", FAST)
    assert row.verdict == "error" and "unknown solver" in row.reason
    with pytest.raises(ValueError, match="ode solver"):
        measure_ode_global_error("em", "gauss2d-vp", FAST)


def test_adaptive_tolerance_proportionality():
    row = measure_tolerance_proportionality("rk45", "gauss2d-ve", QUICK, seed=0)
    assert row.verdict == "pass", row.reason
    assert row.abscissa == "rtol" and row.nfe == sorted(row.nfe)  # tighter rtol, more work


def test_ddim_is_exact_on_a_point_mass_and_euler_is_not():
    row = measure_point_mass_exactness(DDIM, "point2d-vp", FAST)
    assert row.verdict == "pass", row.reason
    assert max(row.errors) <= 1e-9 * 3.0  # |x| <= 3 at eps for this point mass
    euler = measure_point_mass_exactness("euler", "point2d-vp", FAST)
    assert euler.verdict == "info" and min(euler.errors) > 1e-3


def test_results_are_identical_after_pickling_the_task():
    fn = pickle.loads(pickle.dumps(measure_ode_global_error))
    a = fn("heun", "mix1d3-ve", FAST, 7)
    b = measure_ode_global_error("heun", "mix1d3-ve", FAST, 7)
    assert a.errors == b.errors and a.estimated_order == b.estimated_order


# ----------------------------------------------------------------------------------------------
# SDE strong error, the exact law, predictor-corrector
# ----------------------------------------------------------------------------------------------
def test_coarse_increments_are_sums_of_fine_ones():
    fine = np.arange(24.0).reshape(8, 3, 1)
    coarse = coarsen_increments(fine, 2)
    np.testing.assert_array_equal(coarse[0], fine[:4].sum(0))
    with pytest.raises(ValueError, match="steps"):
        coarsen_increments(fine, 3)


def test_em_strong_order_one_on_gaussian_data():
    row = measure_sde_strong_error("em", "gauss2d-vp", QUICK, seed=0)
    assert row.verdict == "pass", row.reason
    assert abs(row.estimated_order - 1.0) <= 0.3
    assert row.error_bars is not None and all(b < e / 3 for b, e in zip(row.error_bars, row.errors))


def test_weak_error_by_monte_carlo_passes_em_and_fails_a_wrong_noise_scale():
    prof = QUICK.replace(weak_samples=2_000)
    row = measure_sde_weak_error("em", "gauss2d-vp", prof, seed=0)
    assert row.verdict == "pass", row.reason
    assert row.error_bars is not None and len(row.extra["level_differences"]) == len(row.errors) - 1
    bad = measure_sde_weak_error(LoudEM, "gauss2d-vp", prof, seed=0)
    assert bad.verdict == "fail", bad.reason
    # the wrong law is resolved: the finest level's exact-RHS error stands far above its bar
    assert bad.errors[-1] > 5 * bad.error_bars[-1]


def test_exact_law_of_em_matches_monte_carlo():
    sc = get_scenario("gauss2d-vp")
    oracle = sc.oracle()
    grid = time_grid("logsnr", 16, 1.0, 1e-3, sde=oracle.sde)
    (m, C), = propagate_law(get_solver("em"), oracle, grid, [exact_gaussian_law(oracle, 1.0)])[0]
    n = 40_000
    rng = np.random.default_rng(20240601)
    x, _ = integrate_sde(get_solver("em"), ReverseProblem(oracle, oracle.sde), oracle.sample(n, 1.0, rng),
                         grid, rng=rng)
    # Five checks (2 means, 3 covariance entries), each at 5.5 standard errors: the two-sided
    # normal tail is 3.8e-8 per check, 1.9e-7 for the five (Bonferroni) -- below 1e-6.
    # se of a sample covariance entry of Gaussian data: sqrt((C_jj C_kk + C_jk^2) / n).
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(x.mean(0) - m) <= 5.5 * se_mean)
    emp = np.cov(x.T)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    iu = np.triu_indices(2)
    assert np.all(np.abs(emp - C)[iu] <= 5.5 * se_cov[iu])
    # and the law is measurably different from the exact p_eps at 16 steps (EM's bias)
    m_ex, C_ex = exact_gaussian_law(oracle, 1e-3)
    assert np.max(np.abs(C - C_ex)) > 10 * se_cov.max()


def test_exact_law_weak_orders_and_prior_mismatch():
    row = measure_exact_law("em", "gauss2d-vp", FAST)
    assert row.verdict == "pass" and abs(row.estimated_order - 1.0) <= 0.3, row.reason
    assert len(row.extra["w2"]) == len(row.errors) and row.extra["w2_from_default_prior"][-1] > 0
    heun = measure_exact_law("heun", "gauss16d-vp", FAST)
    assert heun.verdict == "pass" and heun.kind == "ode", heun.reason
    pri = measure_prior_mismatch("gauss2d-ve", QUICK)
    assert pri.metric == "prior_mismatch" and pri.verdict == "info"
    # the Monte Carlo KL(prior || p_T) agrees with the closed form within 6 of its bars
    assert abs(pri.extra["kl_prior_pT"] - pri.extra["kl_exact"]) <= 6 * pri.extra["kl_se"]


def test_probe_detects_schemes_that_draw_their_own_noise():
    oracle = get_scenario("gauss2d-vp").oracle()
    problem = ReverseProblem(oracle, oracle.sde)
    A, b, B = probe_affine_step(get_solver("em"), problem, 2, 0.5, -0.01)
    f, g2 = oracle.sde.drift_coeff(0.5), oracle.sde.diffusion_sq(0.5)
    C = oracle.marginal(0.5).covs[0]
    np.testing.assert_allclose(A, np.eye(2) - 0.01 * (f * np.eye(2) + g2 * np.linalg.inv(C)), atol=1e-13)
    np.testing.assert_allclose(B, math.sqrt(g2) * np.eye(2), atol=1e-12)
    with pytest.raises(NotAffineError):
        probe_affine_step(PredictorCorrector(), problem, 2, 0.5, -0.01)
    assert measure_exact_law("pc", "gauss2d-vp", FAST).verdict == "info"


def test_pc_floor_matches_the_variance_recursion():
    prof = QUICK.replace(pc_samples=2_000, pc_snrs=(0.16, 0.32), pc_steps=(40,))
    row = measure_pc_snr(PredictorCorrector(), "iso64d-vp", prof, seed=3)
    assert row.verdict == "pass", row.reason
    pred, ula = row.extra["predicted_inflation"], row.extra["ula_inflation"]
    assert 0.5 * ula[0] < pred[0] < 1.5 * ula[0]  # the floor is near ULA's 1/(1 - snr^2) - 1
    assert row.extra["measured_inflation"][1] > row.extra["measured_inflation"][0] + 0.02


# ----------------------------------------------------------------------------------------------
# trace estimators
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_held_probe_loglik_variance_matches_the_path_integral(probe):
    row = measure_held_probe_loglik("gauss16d-vp", QUICK, seed=0, probe=probe)
    assert row.verdict == "pass", row.reason
    theory = row.extra["theory_variance"][0]
    assert abs(np.mean(row.extra["measured_variance"]) - theory) < 0.3 * theory


@pytest.mark.parametrize("estimator, probe", [("hutchinson", "gaussian"), ("hutchinson", "rademacher"),
                                              ("hutch++", "gaussian")])
def test_trace_estimators_match_their_variance_theory(estimator, probe):
    row = measure_trace_estimator("mix16d-vp", QUICK, seed=0, estimator=estimator, probe=probe)
    assert row.verdict == "pass", row.reason
    assert row.kind == "divergence" and row.abscissa == "probes"
    # measured variances within 25 % of theory on average over the points
    np.testing.assert_allclose(row.errors, row.extra["theory_variance"], rtol=0.25)
