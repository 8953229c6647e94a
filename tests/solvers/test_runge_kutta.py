"""Fixed-step Runge–Kutta solvers: measured orders (linear ODE and the exact Gaussian PF-ODE
flow map), quadrature exactness, NFE per step, per-sample times, numpy/torch agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from solver_toys import GaussianScore, ToyVPSDE, fitted_slope

from scorebench.analytic import VESDE, VPSDE, GaussianMixture, MixtureOracle, SubVPSDE
from scorebench.solvers.registry import get_solver
from scorebench.solvers.runge_kutta import rk_step
from scorebench.solvers.sample import sample

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
STAGES = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
# step counts inside the asymptotic range and above the round-off floor (checked: the pairwise
# slopes over these ranges are within 0.1 of the order for every SDE used below)
STEPS = {
    "euler": [32, 64, 128, 256, 512],
    "midpoint": [32, 64, 128, 256, 512],
    "heun": [32, 64, 128, 256, 512],
    "rk4": [64, 128, 256, 512],
}


def _integrate(solver, f, x, t0, t1, steps):
    grid = np.linspace(t0, t1, steps + 1)
    for i in range(steps):
        x = solver.step(f, x, grid[i], grid[i + 1] - grid[i])
    return x


@pytest.mark.parametrize("name", list(ORDERS))
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_order_on_linear_ode(name, direction):
    # y' = -(1 + t) y has y(t) = y(t0) exp(-(t - t0) - (t^2 - t0^2)/2)
    def f(y, t):
        return -(1.0 + np.reshape(t, (-1, 1))) * y

    t0, t1 = (0.0, 1.0) if direction == "forward" else (1.0, 0.0)
    y0 = np.random.default_rng(1).standard_normal((5, 3))
    exact = y0 * np.exp(-(t1 - t0) - (t1**2 - t0**2) / 2)
    solver = get_solver(name)
    steps = [8, 16, 32, 64, 128]
    errs = [np.abs(_integrate(solver, f, y0, t0, t1, n) - exact).max() for n in steps]
    assert abs(fitted_slope(1.0 / np.array(steps), errs) - ORDERS[name]) <= 0.2


_COV = np.array([[1.0, 0.6], [0.6, 0.5]])


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name", list(ORDERS))
def test_order_against_exact_gaussian_flow_map(sde, name):
    oracle = MixtureOracle(GaussianMixture([1.0], [[0.5, -1.0]], [_COV]), sde)
    x_T = oracle.sample(32, sde.T, np.random.default_rng(7))
    exact, _ = oracle.flow_map(x_T, sde.T, 1e-3)
    errs = []
    for n in STEPS[name]:
        res = sample(oracle, sde, method=name, steps=n, x_T=x_T, eps=1e-3)
        assert res.nfe == n * STAGES[name]
        errs.append(np.abs(res.x - exact).mean())
    slope = fitted_slope(1.0 / np.array(STEPS[name]), errs)
    assert abs(slope - ORDERS[name]) <= 0.2, (slope, errs)


@pytest.mark.parametrize("name, degree", [("euler", 0), ("midpoint", 1), ("heun", 1), ("rk4", 3)])
def test_quadrature_exactness(name, degree):
    # for f(y, t) = p(t) with deg p <= order - 1 one step is exact (the quadrature conditions)
    coef = np.arange(1.0, degree + 2.0)

    def f(y, t):
        return np.full_like(y, np.polyval(coef, t))

    primitive = np.polyint(coef)
    y1 = get_solver(name).step(f, np.zeros((2, 2)), 0.3, -0.7)
    expected = np.polyval(primitive, -0.4) - np.polyval(primitive, 0.3)
    np.testing.assert_allclose(y1, expected, rtol=1e-14, atol=1e-15)
    # ... and one degree more is not exact
    coef2 = np.arange(1.0, degree + 3.0)
    prim2 = np.polyint(coef2)
    y2 = get_solver(name).step(
        lambda y, t: np.full_like(y, np.polyval(coef2, t)), np.zeros((1, 1)), 0.3, -0.7
    )
    assert abs(y2[0, 0] - (np.polyval(prim2, -0.4) - np.polyval(prim2, 0.3))) > 1e-6


@pytest.mark.parametrize("name", list(ORDERS))
def test_per_sample_time_arrays_match_scalar_times(name):
    sde = ToyVPSDE()
    model = GaussianScore([0.3, -0.2], 0.5, sde)
    from scorebench.solvers.problem import ReverseProblem

    prob = ReverseProblem(model, sde)
    x = np.random.default_rng(2).standard_normal((6, 2))
    tab = get_solver(name).tableau
    a = rk_step(tab, prob.velocity, x, 0.8, -0.05)
    b = rk_step(tab, prob.velocity, x, np.full(6, 0.8), np.full(6, -0.05))
    np.testing.assert_array_equal(a, b)
    # different times per row give what each row gets on its own
    ts, hs = np.linspace(0.2, 0.9, 6), -np.linspace(0.01, 0.06, 6)
    c = rk_step(tab, prob.velocity, x, ts, hs)
    for i in range(6):
        np.testing.assert_allclose(c[i], rk_step(tab, prob.velocity, x[i : i + 1], ts[i], hs[i])[0],
                                   rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name", list(ORDERS))
def test_torch_matches_numpy(name):
    sde = VPSDE()
    oracle = MixtureOracle(GaussianMixture([1.0], [[0.5, -1.0]], [_COV]), sde)
    x_T = oracle.sample(16, sde.T, np.random.default_rng(3))
    ref = sample(oracle, sde, method=name, steps=64, x_T=x_T)
    t64 = sample(oracle, sde, method=name, steps=64, x_T=torch.from_numpy(x_T))
    assert t64.backend == "torch" and t64.x.dtype == torch.float64
    np.testing.assert_allclose(t64.x.numpy(), ref.x, rtol=0, atol=1e-12)
    t32 = sample(oracle, sde, method=name, steps=64, x_T=torch.from_numpy(x_T).float())
    assert t32.x.dtype == torch.float32
    # float32 round-off: ~ steps * stages * 2^-24 * |x| ~ 64 * 4 * 6e-8 * 3 = 5e-5 at worst
    np.testing.assert_allclose(t32.x.double().numpy(), ref.x, rtol=0, atol=1e-4)
