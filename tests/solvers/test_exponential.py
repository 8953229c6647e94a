"""DDIM and DPM-Solver-2 against exact answers: point-mass exactness and measured orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorebench.analytic.linear_sde import LinearSDE
from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.solvers.exponential import DDIM, DPMSolver2, exponential_coefficients
from scorebench.solvers.problem import ReverseProblem
from scorebench.solvers.registry import get_solver
from scorebench.solvers.sample import sample

EPS = 1e-3
SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}


def _cosine_sde():
    # Nichol & Dhariwal's cosine schedule as a LinearSDE: a(t) = cos(pi/2 (t + s)/(1 + s)) / a0,
    # f = d log a / dt, g^2 = -2 f (VP-type); t_from_log_snr runs by bisection.
    s = 0.008
    w = 0.5 * np.pi / (1.0 + s)
    return LinearSDE(
        lambda t: -w * np.tan(w * (t + s)),
        lambda t: np.sqrt(2.0 * w * np.tan(w * (t + s))),
        T=0.99,
        name="cosine",
    )


def _run(method, oracle, x_T, steps, grid="uniform"):
    return sample(oracle, oracle.sde, method=method, steps=steps, x_T=x_T, eps=EPS, grid=grid)


def test_registered_with_declared_orders():
    assert isinstance(get_solver("ddim"), DDIM) and DDIM.order == 1
    assert isinstance(get_solver("dpm-solver-2"), DPMSolver2) and DPMSolver2.order == 2
    assert DDIM.exact_on_point_mass and DPMSolver2.exact_on_point_mass  # checked below


@pytest.mark.parametrize(
    "sde_name, steps",
    [(name, n) for name in ("vp", "subvp", "ve") for n in (3, 10, 50)]
    # the LinearSDE inverts its log-SNR by bisection at every DPM-Solver-2 step: fewer steps
    + [("cosine", 3), ("cosine", 10)],
)
def test_exact_for_one_point_mass_where_euler_is_not(sde_name, steps):
    # For data = delta_mu the denoiser is exactly mu and the PF-ODE path is
    # x_t = a_t mu + (s_t / s_r)(x_r - a_r mu): DDIM (and both forms of DPM-Solver-2) reproduce
    # it to rounding at any step count, on any grid; Euler's error is O(1/steps) and large.
    sde = _cosine_sde() if sde_name == "cosine" else SDES[sde_name]
    oracle = MixtureOracle(GaussianMixture.point_masses(np.array([[0.7, -1.3, 2.0]])), sde)
    rng = np.random.default_rng(20240 + steps)
    x_T = oracle.sample(32, sde.T, rng)
    exact, _ = oracle.flow_map(x_T, sde.T, EPS)
    scale = 1.0 + np.abs(x_T).max()
    for method in ("ddim", DPMSolver2("noise"), DPMSolver2("data")):
        res = _run(method, oracle, x_T, steps)
        assert np.abs(res.x - exact).max() < 1e-10 * scale, method
    assert res.nfe == 2 * steps  # DPM-Solver-2: two score calls per step
    # Euler's error, in units of the spread s(eps) of p_eps around a(eps) mu (absolute errors are
    # small at eps because every path ends within ~s(eps) of the point): measured 0.03 (VE, 50
    # steps) up to O(1) at 3 steps.
    euler = _run("euler", oracle, x_T, steps)
    assert np.abs(euler.x - exact).max() / sde.marginal_std(EPS) > 1e-2


def _fitted_order(method, oracle, x_T, steps_list):
    exact, _ = oracle.flow_map(x_T, oracle.sde.T, EPS)
    errors = [
        np.mean(np.linalg.norm(_run(method, oracle, x_T, n, grid="logsnr").x - exact, axis=1))
        for n in steps_list
    ]
    slope = -np.polyfit(np.log(steps_list), np.log(errors), 1)[0]
    return slope, errors


@pytest.mark.parametrize("sde_name", ["vp", "subvp", "ve"])
@pytest.mark.parametrize(
    "method, order",
    [("ddim", 1), (DPMSolver2("noise"), 2), (DPMSolver2("data"), 2)],
    ids=["ddim", "dpm2-noise", "dpm2-data"],
)
def test_global_error_falls_at_declared_order(sde_name, method, order):
    # One correlated Gaussian in 2-D; exact reference: the Gaussian flow map. Uniform steps in
    # log-SNR, 20..160 (measured: the last-pair slopes are within 0.03 of the order from 20
    # steps on; at 10 steps the data form of DPM-Solver-2 on sub-VP is still at 1.7).
    sde = SDES[sde_name]
    mix = GaussianMixture(np.ones(1), np.array([[0.5, -1.0]]), np.array([[[1.0, 0.3], [0.3, 0.2]]]))
    oracle = MixtureOracle(mix, sde)
    x_T = oracle.sample(64, sde.T, np.random.default_rng(7))
    slope, errors = _fitted_order(method, oracle, x_T, [20, 40, 80, 160])
    assert abs(slope - order) < 0.2, (slope, errors)
    assert errors[-1] < errors[0] / 2 ** (3 * order - 0.6)  # fell over the 8x range


def test_linear_sde_matches_the_closed_form_family():
    # A LinearSDE written with VP's f and g (kernel by quadrature, log-SNR inverse by bisection)
    # gives the same DPM-Solver-2 samples as VPSDE to the quadrature's accuracy (~1e-12).
    vp = VPSDE()
    lin = LinearSDE(lambda t: -0.5 * (0.1 + 19.9 * t), lambda t: np.sqrt(0.1 + 19.9 * t))
    mix = GaussianMixture.isotropic([0.3, 0.7], [[-1.0, 0.0], [1.5, 0.5]], [0.2, 0.05])
    x_T = MixtureOracle(mix, vp).sample(16, 1.0, np.random.default_rng(3))
    out = [
        _run(DPMSolver2(), MixtureOracle(mix, sde), x_T, 12, grid="logsnr").x for sde in (vp, lin)
    ]
    assert np.abs(out[0] - out[1]).max() < 1e-8


@pytest.mark.parametrize("solver", [DDIM(), DPMSolver2("noise"), DPMSolver2("data")])
def test_per_sample_times_match_scalar_times(solver):
    oracle = MixtureOracle(GaussianMixture.isotropic([1.0], [[0.3, 0.1]], [0.5]), VPSDE())
    x = oracle.sample(5, 0.6, np.random.default_rng(11))
    problem = ReverseProblem(oracle, oracle.sde)
    scalar = solver.advance(problem, x, 0.6, -0.05)
    vector = solver.advance(problem, x, np.full(5, 0.6), np.full(5, -0.05))
    assert np.abs(scalar - vector).max() < 1e-14


@pytest.mark.parametrize("solver", [DDIM(), DPMSolver2()])
def test_float32_torch_state_agrees_with_float64(solver):
    mix = GaussianMixture.isotropic([0.5, 0.5], [[-1.0, 0.0], [1.0, 1.0]], [0.1, 0.3])
    oracle = MixtureOracle(mix, VPSDE())
    x_T = oracle.sample(64, 1.0, np.random.default_rng(5))
    ref = _run(solver, oracle, x_T, 20).x
    out = _run(solver, oracle, torch.from_numpy(x_T.astype(np.float32)), 20).x
    assert out.dtype == torch.float32
    # float32 rounding (~6e-8 relative) amplified by at most ~20 steps of a contracting map
    assert np.abs(out.numpy() - ref).max() < 1e-4 * (1.0 + np.abs(ref).max())


def test_coefficients_are_the_ddim_formula_and_forms_agree():
    sde = SubVPSDE()
    t, t1 = 0.7, 0.55
    a, s, a1, s1 = sde.mean_coeff(t), sde.marginal_std(t), sde.mean_coeff(t1), sde.marginal_std(t1)
    p, q = exponential_coefficients(sde, t, t1, "data")
    assert p == pytest.approx(s1 / s, rel=1e-14)
    assert q == pytest.approx(a1 - a * s1 / s, rel=1e-12)
    pn, qn = exponential_coefficients(sde, t, t1, "noise")
    # x' = pn x + qn eps with eps = (x - a D)/s must equal p x + q D for all x, D
    assert pn + qn / s == pytest.approx(p, rel=1e-12)
    assert -qn * a / s == pytest.approx(q, rel=1e-12)


def test_bad_input_raises_value_error_naming_the_parameter():
    with pytest.raises(ValueError, match="prediction"):
        DPMSolver2("epsilon")
    oracle = MixtureOracle(GaussianMixture.isotropic([1.0], [[0.0]], [1.0]), VPSDE())
    problem = ReverseProblem(oracle, oracle.sde)
    with pytest.raises(ValueError, match="^t:"):
        DDIM().advance(problem, np.zeros((2, 1)), 0.5, -0.5)
    with pytest.raises(ValueError, match="^t:"):
        DPMSolver2().advance(problem, np.zeros((2, 1)), 0.5, -0.5)
