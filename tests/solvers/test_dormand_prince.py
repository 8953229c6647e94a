"""Adaptive Dormand–Prince 5(4): errors in units of tolerance, tolerance proportionality,
per-sample step control, agreement with scipy, guards, NFE accounting, augmented states."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from solver_toys import fitted_slope

from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle
from scorebench.solvers.base import SolverError
from scorebench.solvers.dormand_prince import DormandPrince45
from scorebench.solvers.problem import ReverseProblem
from scorebench.solvers.step_control import MAX_FACTOR, MIN_FACTOR, SAFETY, StepController

RK45 = DormandPrince45()


def f_nonlinear(y, t):
    """Harmonic oscillator (y0, y1) beside a logistic equation (y2); (n, 3) -> (n, 3)."""
    out = np.empty_like(y)
    out[:, 0] = y[:, 1]
    out[:, 1] = -y[:, 0]
    out[:, 2] = y[:, 2] * (1.0 - y[:, 2])
    return out


def exact_nonlinear(y0, t):
    c, s = np.cos(t), np.sin(t)
    logistic = y0[:, 2] / (y0[:, 2] + (1.0 - y0[:, 2]) * np.exp(-t))
    return np.column_stack([c * y0[:, 0] + s * y0[:, 1], -s * y0[:, 0] + c * y0[:, 1], logistic])


def _y0(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-2, 2, (n, 2)), rng.uniform(0.05, 0.9, n)])


def test_error_in_units_of_tolerance():
    # scipy's own test: rms((y - y_true) / (atol + rtol |y_true|)) < 5 for every sample
    y0 = _y0()
    for rtol in [1e-3, 1e-5, 1e-7, 1e-9]:
        atol = 1e-3 * rtol
        sol = RK45.solve(f_nonlinear, y0, 0.0, 5.0, rtol=rtol, atol=atol)
        y_true = exact_nonlinear(y0, 5.0)
        e = np.sqrt(np.mean(((sol.x - y_true) / (atol + rtol * np.abs(y_true))) ** 2, axis=1))
        assert np.all(e < 5), (rtol, e)


def test_tolerance_proportionality():
    # Higham (1991): the global error should scale like the tolerance, slope ~ 1
    y0 = _y0()
    tols = 10.0 ** -np.arange(4, 11)
    errs = [
        np.abs(RK45.solve(f_nonlinear, y0, 0.0, 5.0, rtol=t, atol=t).x
               - exact_nonlinear(y0, 5.0)).max()
        for t in tols
    ]
    slope = fitted_slope(tols, errs)
    assert 0.8 <= slope <= 1.2, (slope, errs)


@pytest.mark.parametrize("rtol", [1e-3, 1e-6, 1e-9])
@pytest.mark.parametrize("t_span", [(0.0, 5.0), (5.0, 0.5)])
def test_same_steps_and_solution_as_scipy_rk45_per_sample(rtol, t_span):
    # same pair, controller constants (SAFETY, MIN_FACTOR, MAX_FACTOR) and initial step as scipy:
    # solving the batch reproduces scipy's per-sample accepted steps and solutions
    assert (SAFETY, MIN_FACTOR, MAX_FACTOR) == (0.9, 0.2, 10.0)
    y0 = _y0()
    t0, t1 = t_span
    sol = RK45.solve(f_nonlinear, y0, t0, t1, rtol=rtol, atol=1e-3 * rtol)
    for i in range(y0.shape[0]):
        ref = solve_ivp(lambda t, y: f_nonlinear(y[None], np.array([t]))[0], t_span, y0[i],
                        method="RK45", rtol=rtol, atol=1e-3 * rtol)
        assert sol.n_accepted[i] == ref.t.size - 1
        assert 2 + 6 * sol.n_steps[i] == ref.nfev  # and the same rejected steps
        np.testing.assert_allclose(sol.x[i], ref.y[:, -1], rtol=1e-12, atol=1e-13)


def f_relax(y, t):
    """y' = -lam (y - cos t) with lam carried as a constant second component."""
    lam = y[:, 1]
    return np.column_stack([-lam * (y[:, 0] - np.cos(t)), np.zeros_like(lam)])


def test_per_sample_step_sizes():
    y0 = np.array([[2.0, 1.0], [2.0, 300.0]])  # an easy and a stiff-ish sample
    sol = RK45.solve(f_relax, y0, 0.0, 3.0, rtol=1e-6, atol=1e-9)
    assert sol.n_accepted[1] > 5 * sol.n_accepted[0]
    # each sample's steps and result are those it gets alone: no companion slows it down
    for i in range(2):
        alone = RK45.solve(f_relax, y0[i : i + 1], 0.0, 3.0, rtol=1e-6, atol=1e-9)
        assert alone.n_accepted[0] == sol.n_accepted[i]
        assert alone.n_rejected[0] == sol.n_rejected[i]
        np.testing.assert_allclose(alone.x[0], sol.x[i], rtol=1e-14, atol=0)
    # finished samples leave the active set: the easy one is evaluated only for its own steps
    np.testing.assert_array_equal(sol.n_evals, 2 + 6 * sol.n_steps)
    assert sol.nfe == 2 + 6 * sol.n_steps.max()
    # exact solution of the relaxation equation
    lam, t = y0[:, 1], 3.0
    part = lambda s: (lam**2 * np.cos(s) + lam * np.sin(s)) / (lam**2 + 1)  # noqa: E731
    exact = np.exp(-lam * t) * (y0[:, 0] - part(0.0)) + part(t)
    np.testing.assert_allclose(sol.x[:, 0], exact, rtol=0, atol=1e-5)


def test_min_step_guard_raises_instead_of_looping():
    # y' = y^2, y(0) = 1 blows up at t = 1: the step must underflow and raise
    start = time.perf_counter()
    with pytest.raises(SolverError, match=r"rk45: step size underflow for sample 0 at t = (0\.99|1\.00000)"):
        RK45.solve(lambda y, t: y * y, np.ones((1, 1)), 0.0, 2.0, rtol=1e-6, atol=1e-6)
    # f that returns nan past t < 0.5 (going backwards) also ends in the guard
    def f_nan(y, t):
        return np.where(np.reshape(t, (-1, 1)) < 0.5, np.nan, -y)

    with pytest.raises(SolverError, match="step size underflow .* non-finite"):
        RK45.solve(f_nan, np.ones((3, 2)), 1.0, 0.0, rtol=1e-6, atol=1e-6)
    assert time.perf_counter() - start < 60  # a guard, not a benchmark: only catches a hang


def test_max_steps_guard():
    with pytest.raises(SolverError, match="rk45: sample 0 reached max_steps = 5"):
        RK45.solve(f_nonlinear, _y0(1), 0.0, 50.0, rtol=1e-10, atol=1e-10, max_steps=5)


def test_first_step_and_validation():
    y0 = _y0(2)
    sol = RK45.solve(f_nonlinear, y0, 0.0, 1.0, rtol=1e-6, atol=1e-6, first_step=1e-4)
    assert np.all(sol.n_accepted >= 3)  # growth <= 10x per step from 1e-4 to reach t = 1
    np.testing.assert_allclose(sol.x, exact_nonlinear(y0, 1.0), atol=1e-5)
    with pytest.raises(ValueError, match="rtol: must be finite and > 0"):
        RK45.solve(f_nonlinear, y0, 0.0, 1.0, rtol=0.0)
    with pytest.raises(ValueError, match="atol: must be finite and > 0"):
        RK45.solve(f_nonlinear, y0, 0.0, 1.0, atol=-1.0)
    with pytest.raises(ValueError, match=r"atol: expected shape \(3,\)"):
        RK45.solve(f_nonlinear, y0, 0.0, 1.0, atol=[1e-6, 1e-6])
    with pytest.raises(ValueError, match="x: contains non-finite"):
        RK45.solve(f_nonlinear, np.full((2, 3), np.nan), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"x: expected a 2-D \(N, m\) array"):
        RK45.solve(f_nonlinear, np.ones(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="t1: must be finite"):
        RK45.solve(f_nonlinear, y0, 0.0, np.inf)
    with pytest.raises(ValueError, match="max_steps: expected an int >= 1"):
        RK45.solve(f_nonlinear, y0, 0.0, 1.0, max_steps=0)
    with pytest.raises(ValueError, match="first_step: must be finite and > 0"):
        RK45.solve(f_nonlinear, y0, 0.0, 1.0, first_step=-1.0)
    with pytest.raises(SolverError, match=r"f: returned shape \(2, 2\)"):
        RK45.solve(lambda y, t: y[:, :2], y0, 0.0, 1.0)
    with pytest.raises(ValueError, match="min_factor"):
        StepController(4, min_factor=1.5)
    # per-component tolerances are accepted
    sol = RK45.solve(f_nonlinear, y0, 0.0, 1.0, rtol=[1e-6, 1e-6, 1e-3], atol=1e-8)
    assert sol.x.shape == y0.shape


_COV = np.array([[1.0, 0.6], [0.6, 0.5]])


def _oracle():
    return MixtureOracle(GaussianMixture([1.0], [[0.5, -1.0]], [_COV]), VPSDE())


def test_pf_ode_against_exact_flow_map_and_nfe_budget():
    oracle = _oracle()
    x_T = oracle.sample(64, 1.0, np.random.default_rng(11))
    exact, _ = oracle.flow_map(x_T, 1.0, 1e-3)
    errs = []
    tols = [1e-6, 1e-7, 1e-8, 1e-9]
    for tol in tols:
        prob = ReverseProblem(oracle, oracle.sde)
        sol = RK45.solve(prob, x_T, 1.0, 1e-3, rtol=tol, atol=tol)
        assert prob.nfe == sol.nfe == 2 + 6 * sol.n_steps.max()
        errs.append(np.abs(sol.x - exact).max())
        if tol == 1e-6:
            # budget: measured nfe 104 for this batch; 20 % headroom for platform differences
            assert sol.nfe <= 125, sol.nfe
    # global error in units of the tolerance (measured 8.8, 1.8, 2.7, 2.6). Looser tolerances
    # are left out on purpose: at rtol = 1e-5 the pair's error estimate accepts one step from
    # t = 0.24 to 1e-3 for one sample (scipy's RK45 takes the very same step) and that sample's
    # error is 275 tol: local error control does not bound the global error.
    assert max(e / t for e, t in zip(errs, tols)) < 20, errs
    assert all(a > b for a, b in zip(errs, errs[1:]))


def test_augmented_state_integrates_the_log_determinant():
    # state (x, z) with z' = div v(x, t): from eps to T, z_T - z_eps = log det of the flow map
    oracle = _oracle()
    x_eps = oracle.sample(16, 1e-3, np.random.default_rng(5))

    def f_aug(y, t):
        x = y[:, :2]
        return np.column_stack([oracle.velocity(x, t), oracle.velocity_divergence(x, t)])

    y0 = np.column_stack([x_eps, np.zeros(16)])
    sol = RK45.solve(f_aug, y0, 1e-3, 1.0, rtol=1e-9, atol=1e-9)
    x_T, logdet = oracle.flow_map(x_eps, 1e-3, 1.0)
    np.testing.assert_allclose(sol.x[:, :2], x_T, rtol=0, atol=1e-7)
    np.testing.assert_allclose(sol.x[:, 2], logdet, rtol=0, atol=1e-7)


def test_torch_states_match_numpy():
    oracle = _oracle()
    x_T = oracle.sample(16, 1.0, np.random.default_rng(12))
    ref = RK45.solve(ReverseProblem(oracle, oracle.sde), x_T, 1.0, 1e-3, rtol=1e-6, atol=1e-6)
    t64 = RK45.solve(ReverseProblem(oracle, oracle.sde), torch.from_numpy(x_T), 1.0, 1e-3,
                     rtol=1e-6, atol=1e-6)
    assert isinstance(t64.x, torch.Tensor) and t64.x.dtype == torch.float64
    np.testing.assert_array_equal(t64.n_accepted, ref.n_accepted)
    np.testing.assert_allclose(t64.x.numpy(), ref.x, rtol=0, atol=1e-12)
    t32 = RK45.solve(ReverseProblem(oracle, oracle.sde), torch.from_numpy(x_T).float(), 1.0,
                     1e-3, rtol=1e-6, atol=1e-6)
    assert t32.x.dtype == torch.float32
    # float64 at rtol = 1e-6 is 1.4e-6 from the exact flow map (measured); float32 adds round-off
    # of a few ulp of |x| ~ 3 (2.4e-7 each) per step: 2e-5 leaves a wide margin (measured 3.5e-6)
    exact, _ = oracle.flow_map(x_T, 1.0, 1e-3)
    assert np.abs(ref.x - exact).max() < 5e-6
    assert np.abs(t32.x.double().numpy() - exact).max() < 2e-5
