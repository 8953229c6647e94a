"""The sampling driver: argument validation, solver failures, reproducibility, grids, the
framework-owned Brownian increments, backends."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from solver_toys import GaussianScore, ToyVPSDE

from scorebench.analytic import VPSDE, GaussianMixture, MixtureOracle
from scorebench.solvers.base import AdaptiveODESolver, ODESolver, SDESolver, SolverError
from scorebench.solvers.grids import GRID_KINDS
from scorebench.solvers.integrate import brownian_increments
from scorebench.solvers.sample import SampleResult, sample

SDE = ToyVPSDE()
MODEL = GaussianScore([0.5, -1.0], 0.3, SDE)


def _x(n=4, d=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(), ValueError, r"n: required when x_T is not given"),
        (dict(n=0, rng=0), ValueError, r"n: expected an int >= 1, got 0"),
        (dict(n=2.5, rng=0), ValueError, r"n: expected an int >= 1"),
        (dict(x_T=_x(), steps=0), ValueError, r"steps: must be >= 1, got 0"),
        (dict(x_T=_x(), steps=-2), ValueError, r"steps: must be >= 1"),
        (dict(x_T=_x(), steps=1.5), ValueError, r"steps: expected an int >= 1, got 1.5"),
        (dict(x_T=_x(), method="rk45", rtol=0.0), ValueError, r"rtol: must be finite and > 0"),
        (dict(x_T=_x(), method="rk45", rtol=-1e-3), ValueError, r"rtol: must be finite and > 0"),
        (dict(x_T=_x(), method="rk45", atol=0.0), ValueError, r"atol: must be finite and > 0"),
        (dict(x_T=_x(), rtol=np.nan), ValueError, r"rtol: must be finite and > 0"),
        (dict(x_T=_x(), eps=0.0), ValueError, r"eps: must lie in the open interval \(0, T\)"),
        (dict(x_T=_x(), eps=1.0), ValueError, r"eps: must lie in the open interval \(0, T\)"),
        (dict(x_T=_x(), eps=-0.1), ValueError, r"eps: must lie in the open interval"),
        (dict(x_T=_x(), eps=np.inf), ValueError, r"eps: must be finite"),
        (dict(x_T=_x(), method="eulr"), ValueError,
         r"method: unknown solver 'eulr'; registered: .*em, euler, heun, .*rk4, rk45"),
        (dict(x_T=np.array([[0.0, np.nan]])), ValueError, r"x_T: contains non-finite"),
        (dict(x_T=np.array([[0.0, np.inf]])), ValueError, r"x_T: contains non-finite"),
        (dict(x_T=np.zeros(3)), ValueError, r"x_T: expected shape \(N, d\), got \(3,\)"),
        (dict(x_T=np.zeros((3, 5))), ValueError, r"x_T: expected shape \(N, 2\) to match d = 2"),
        (dict(x_T=np.zeros((3, 2)), n=4), ValueError, r"x_T: expected shape \(4, d\)"),
        (dict(x_T=np.zeros((3, 2), dtype=int)), TypeError, r"x_T: expected a floating-point"),
        (dict(n=3, d=5, rng=0), ValueError, r"d: 5 does not match the model's dimension 2"),
        (dict(x_T=_x(), backend="cuda"), ValueError, r"backend: expected one of auto, numpy, torch"),
        (dict(x_T=torch.zeros(2, 2), backend="numpy"), ValueError,
         r"backend: 'numpy' was requested but x_T is a torch tensor"),
        (dict(n=3, rng="seed"), TypeError, r"rng: expected numpy.random.Generator"),
        (dict(n=3), ValueError, r"rng: required to draw x_T from the prior"),
        (dict(x_T=_x(), method="em"), ValueError, r"rng: required to draw Brownian increments"),
        (dict(x_T=_x(), method="rk45", steps=10), ValueError,
         r"steps: not used by the adaptive method 'rk45'"),
        (dict(x_T=_x(), method="rk45", return_path=True), ValueError, r"return_path: not available"),
        (dict(x_T=_x(), grid="cosine"), ValueError, r"grid: unknown kind 'cosine'"),
        (dict(x_T=_x(), method="rk45", grid="karras"), ValueError,
         r"grid: not used by the adaptive method 'rk45'"),
        (dict(x_T=_x(), steps=3, grid=[1.0, 0.5, 1e-3]), ValueError, r"grid: has 2 steps but steps = 3"),
        (dict(x_T=_x(), steps=2, grid=[1.0, 0.5, 0.1]), ValueError, r"grid: must end exactly at eps"),
        (dict(x_T=_x(), dw=np.zeros((10, 4, 2))), ValueError, r"dw: only SDE methods take"),
        (dict(x_T=_x(), method="em", steps=5, dw=np.zeros((4, 4, 2))), ValueError,
         r"dw: expected shape \(5, 4, 2\)"),
        (dict(x_T=_x(), method="em", steps=1, dw=np.full((1, 4, 2), np.nan)), ValueError,
         r"dw: contains non-finite"),
        (dict(x_T=_x(), return_path=1), ValueError, r"return_path: expected a bool"),
    ],
)
def test_argument_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sample(MODEL, SDE, **kwargs)


def test_bad_model_and_sde():
    with pytest.raises(TypeError, match="model: expected a callable score"):
        sample(42, SDE, x_T=_x())
    with pytest.raises(TypeError, match="sde: object lacks drift_coeff, diffusion, diffusion_sq, T"):
        sample(MODEL, object(), x_T=_x())
    with pytest.raises(SolverError, match=r"'euler' raised ValueError: model: score returned "
                                          r"shape \(4, 3\), expected \(4, 2\) at step 0"):
        sample(lambda x, t: np.zeros((x.shape[0], 3)), SDE, x_T=_x())


# ---------------------------------------------------------------------------------------------
# solvers that fail
# ---------------------------------------------------------------------------------------------
class NaNAfterThree(ODESolver, abstract=True):
    name = "test-nan"
    order = 1

    def step(self, f, x, t, dt):
        return x + dt * f(x, t) if t > 0.7 else x * np.nan


class Raising(SDESolver, abstract=True):
    name = "test-raise"
    strong_order = 1.0
    weak_order = 1.0

    def step(self, drift, g, x, t, dt, dw):
        raise ZeroDivisionError("boom")


class WrongShape(ODESolver, abstract=True):
    name = "test-shape"
    order = 1

    def step(self, f, x, t, dt):
        return x[:, :1]


class NaNAdaptive(AdaptiveODESolver, abstract=True):
    name = "test-nan-adaptive"
    order = 1
    error_order = 1

    def _solve(self, f, x, t0, t1, rtol, atol, first_step, max_steps):
        z = np.zeros(x.shape[0], dtype=np.int64)
        return x * np.inf, z, z, z


def _concrete(cls):
    return type(cls.__name__ + "Concrete", (cls,), {})


def test_plugin_returning_nan_raises_solver_error():
    with pytest.raises(SolverError, match=r"solver 'test-nan' returned non-finite values .* "
                                          r"at step 4 \(t = 0\.6399"):
        sample(MODEL, SDE, method=_concrete(NaNAfterThree), steps=10, x_T=_x(), eps=0.1)
    with pytest.raises(SolverError, match=r"solver 'test-raise' raised ZeroDivisionError: boom "
                                          r"at step 0 \(t = 1\.0 -> 0\.9"):
        sample(MODEL, SDE, method=_concrete(Raising)(), steps=10, x_T=_x(), eps=0.1, rng=0)
    with pytest.raises(SolverError, match=r"solver 'test-shape' returned shape \(4, 1\)"):
        sample(MODEL, SDE, method=_concrete(WrongShape), steps=3, x_T=_x())
    with pytest.raises(SolverError, match=r"solver 'test-nan-adaptive' returned non-finite"):
        sample(MODEL, SDE, method=_concrete(NaNAdaptive), x_T=_x())
    # a score model that produces nan is reported the same way, with the solver and the step
    bad = GaussianScore([0.0, 0.0], 0.0, SDE)  # var0 = 0 and score at t -> 0 is finite ...
    with pytest.raises(SolverError, match=r"solver 'euler' returned non-finite values"):
        sample(lambda x, t: bad(x, t) * (np.nan if np.min(t) < 0.5 else 1.0), SDE,
               x_T=_x(), steps=4)
    assert issubclass(SolverError, RuntimeError)


def test_plugin_from_file_spec_runs(tmp_path):
    path = tmp_path / "my_heun.py"
    path.write_text(textwrap.dedent(
        """
        from scorebench.solvers.base import ODESolver

        class MyHeun(ODESolver):
            name = "test-my-heun-file"
            order = 2

            def step(self, f, x, t, dt):
                k1 = f(x, t)
                k2 = f(x + dt * k1, t + dt)
                return x + 0.5 * dt * (k1 + k2)
        """
    ))
    x_T = _x(8)
    mine = sample(MODEL, SDE, method=f"{path}:MyHeun", steps=20, x_T=x_T)
    ref = sample(MODEL, SDE, method="heun", steps=20, x_T=x_T)
    assert mine.method == "test-my-heun-file"
    np.testing.assert_allclose(mine.x, ref.x, rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# reproducibility, grids, increments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["em", "euler", "rk45"])
def test_fixed_seed_gives_identical_samples(method):
    kw = dict(n=50, method=method, eps=1e-3)
    if method != "rk45":
        kw["steps"] = 30
    a = sample(MODEL, SDE, rng=np.random.default_rng(123), **kw)
    b = sample(MODEL, SDE, rng=np.random.default_rng(123), **kw)
    c = sample(MODEL, SDE, rng=np.random.default_rng(124), **kw)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.any(a.x == c.x)
    assert isinstance(a, SampleResult) and a.backend == "numpy" and a.method == method


def test_fixed_seed_torch_backend():
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return sample(MODEL, SDE, n=20, d=2, method="em", steps=20, rng=g, backend="torch").x

    a, b = run(7), run(7)
    assert a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, run(8))


@pytest.mark.parametrize("grid", GRID_KINDS)
@pytest.mark.parametrize("method", ["em", "heun"])
def test_grids_end_exactly_at_eps(grid, method):
    eps = 3e-3
    res = sample(MODEL, SDE, method=method, steps=7, x_T=_x(), eps=eps, grid=grid, rng=0,
                 return_path=True)
    assert res.times[0] == SDE.T and res.times[-1] == eps and res.times.size == 8
    assert res.steps == 7 and len(res.path) == 8
    np.testing.assert_array_equal(res.path[-1], res.x)
    assert res.nfe == 7 * (1 if method == "em" else 2)


def test_explicit_grid_is_used():
    grid = np.array([1.0, 0.6, 0.2, 0.01])
    res = sample(MODEL, SDE, method="euler", steps=3, x_T=_x(), eps=0.01, grid=grid)
    np.testing.assert_array_equal(res.times, grid)
    x = _x()
    for t, t_next in zip(grid[:-1], grid[1:]):
        f = SDE.drift_coeff(t)
        x = x + (t_next - t) * (f * x - 0.5 * SDE.diffusion_sq(t) * MODEL.score(x, t))
    np.testing.assert_allclose(res.x, x, rtol=1e-15, atol=1e-15)


def test_prior_then_increments_from_one_stream_and_predrawn_increments():
    n, d, steps, eps = 30, 2, 16, 1e-3
    res = sample(MODEL, SDE, n=n, method="em", steps=steps, eps=eps, rng=np.random.default_rng(9))
    rng = np.random.default_rng(9)
    x_T = SDE.prior_sample(n, d, rng)
    dw = brownian_increments(rng, n, d, res.times)
    again = sample(MODEL, SDE, method="em", steps=steps, eps=eps, x_T=x_T, dw=dw)
    np.testing.assert_array_equal(res.x, again.x)


def test_brownian_increments_variance():
    # one step of |dt| = 0.25 drawn for M = 200,000 numbers: the sample variance has relative
    # std sqrt(2/M) = 3.2e-3; 6.5 std (2.0e-2) is exceeded with probability < 1e-10
    dw = brownian_increments(np.random.default_rng(0), 100_000, 2, [1.0, 0.75])
    assert dw.shape == (1, 100_000, 2)
    assert abs(dw.var() / 0.25 - 1.0) < 6.5 * np.sqrt(2 / 200_000)
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        brownian_increments(np.random.default_rng(0), 0, 2, [1.0, 0.5])
    with pytest.raises(ValueError, match="grid: must be strictly monotone"):
        brownian_increments(np.random.default_rng(0), 2, 2, [1.0, 1.0, 0.5])


def test_em_strong_order_with_summed_increments():
    # one Brownian path per sample on a fine grid of 1024 steps; coarse increments are sums of
    # fine ones. Reference: the 1024-step solution (8x finer than the finest level fitted).
    sde = VPSDE()
    oracle = MixtureOracle(GaussianMixture([1.0], [[0.5, -1.0]], [np.diag([0.5, 0.2])]), sde)
    n, d, fine, eps = 200, 2, 1024, 1e-2
    rng = np.random.default_rng(2024)
    x_T = oracle.sample(n, sde.T, rng)
    grid = np.linspace(1.0, eps, fine + 1)
    dw = brownian_increments(rng, n, d, grid)
    ref = sample(oracle, sde, method="em", steps=fine, x_T=x_T, eps=eps, grid=grid, dw=dw).x
    levels = [16, 32, 64, 128]
    errs = []
    for steps in levels:
        k = fine // steps
        coarse = dw.reshape(steps, k, n, d).sum(axis=1)
        x = sample(oracle, sde, method="em", steps=steps, x_T=x_T, eps=eps, grid=grid[::k],
                   dw=coarse).x
        errs.append(np.abs(x - ref).mean())
    slope = np.polyfit(np.log(1.0 / np.array(levels)), np.log(errs), 1)[0]
    # additive noise: strong order 1 (0.3 is the SDE tolerance peers use; measured 0.97)
    assert abs(slope - 1.0) <= 0.3, (slope, errs)


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------
def test_backends():
    x_T = _x(6)
    ref = sample(MODEL, SDE, method="heun", steps=10, x_T=x_T)
    auto = sample(MODEL, SDE, method="heun", steps=10, x_T=torch.from_numpy(x_T))
    forced = sample(MODEL, SDE, method="heun", steps=10, x_T=x_T, backend="torch")
    assert auto.backend == forced.backend == "torch"
    for res in (auto, forced):
        np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=0, atol=1e-13)
    # a torch module as the score model selects torch, numpy in still gives the right answer
    class Net(torch.nn.Module):
        def forward(self, x, t):
            assert t.shape == (x.shape[0],) and t.dtype == x.dtype
            return torch.as_tensor(MODEL.score(x.numpy(), t.double().numpy()), dtype=x.dtype)

    net = sample(Net(), SDE, method="heun", steps=10, x_T=x_T)
    assert net.backend == "torch"
    np.testing.assert_allclose(net.x.numpy(), ref.x, rtol=0, atol=1e-13)


class _TorchGaussianScore:
    """Exact score of N(m, v I) data under ToyVPSDE, written with torch ops on x's device."""

    d = 2

    def score(self, x, t):
        a = torch.as_tensor(np.reshape(SDE.mean_coeff(t), (-1, 1)), dtype=x.dtype, device=x.device)
        lam = torch.as_tensor(np.reshape(MODEL._lam(t), (-1, 1)), dtype=x.dtype, device=x.device)
        mu = torch.as_tensor(MODEL.mu, dtype=x.dtype, device=x.device)
        return -(x - a * mu) / lam


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["euler", "heun", "rk4", "rk45"])
def test_cuda_matches_cpu(method):
    x_T = torch.from_numpy(_x(64))
    kw = dict(method=method) if method == "rk45" else dict(method=method, steps=40)
    cpu = sample(_TorchGaussianScore(), SDE, x_T=x_T, **kw)
    gpu = sample(_TorchGaussianScore(), SDE, x_T=x_T.cuda(), **kw)
    assert gpu.x.device.type == "cuda" and gpu.x.dtype == torch.float64
    np.testing.assert_allclose(gpu.x.cpu().numpy(), cpu.x.numpy(), rtol=0, atol=1e-12)
    g32 = sample(_TorchGaussianScore(), SDE, x_T=x_T.float().cuda(), **kw)
    assert g32.x.dtype == torch.float32
    # float32: a few ulp of |x| ~ 3 per step (40 steps, or ~20 adaptive): far below 1e-4
    np.testing.assert_allclose(g32.x.double().cpu().numpy(), cpu.x.numpy(), rtol=0, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_em_fixed_seed():
    def run(seed):
        g = torch.Generator(device="cuda").manual_seed(seed)
        return sample(_TorchGaussianScore(), SDE, n=100, method="em", steps=50, rng=g,
                      backend="torch").x

    a = run(3)
    assert a.device.type == "cuda"
    assert torch.equal(a, run(3)) and not torch.equal(a, run(4))
