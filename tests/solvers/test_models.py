"""Score-model adapters and the perturbed oracle against the exact oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE
from scorebench.solvers.models import DenoiserAdapter, EpsilonModelAdapter, PerturbedOracle
from scorebench.solvers.problem import ReverseProblem, as_score_model
from scorebench.solvers.sample import sample
from scorebench.solvers.scipy_reference import solve_ivp_reference

SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}
MIX = GaussianMixture(
    [0.3, 0.7],
    [[-1.0, 0.5], [1.2, -0.3]],
    [[[0.4, 0.1], [0.1, 0.2]], [[0.05, 0.0], [0.0, 0.3]]],
)


class ExactEps(torch.nn.Module):
    """A 'network' that returns the exact noise prediction -s(t) * score (float64, torch)."""

    def __init__(self, oracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, x, t):
        s = torch.as_tensor(self.oracle.sde.marginal_std(t.detach().double().numpy()),
                            dtype=x.dtype)
        return -s[:, None] * self.oracle.score(x, t)


class ExactDenoiser(torch.nn.Module):
    def __init__(self, oracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, x, t):
        return self.oracle.denoise(x, t)


@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_epsilon_adapter_reproduces_the_oracle_score(sde_name):
    oracle = MixtureOracle(MIX, SDES[sde_name])
    model = EpsilonModelAdapter(ExactEps(oracle), oracle.sde)
    rng = np.random.default_rng(0)
    for t in (0.05, 0.5, 1.0, rng.uniform(0.01, 1.0, 40)):
        x = oracle.sample(40, 0.5, rng)
        out, ref = model.score(x, t), oracle.score(x, t)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        # eps = -s * score, then -eps / s: two roundings
        assert np.abs(out - ref).max() < 1e-12 * (1.0 + np.abs(ref).max())


@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_denoiser_adapter_reproduces_the_oracle_score(sde_name):
    oracle = MixtureOracle(MIX, SDES[sde_name])
    model = DenoiserAdapter(ExactDenoiser(oracle), oracle.sde)
    rng = np.random.default_rng(1)
    for t in (0.2, 0.7, rng.uniform(0.2, 1.0, 30)):
        x = oracle.sample(30, 0.5, rng)
        out, ref = model.score(x, t), oracle.score(x, t)
        # (a D - x)/s^2 cancels ~|x| / s^2 worth of digits: s^2 >= 0.02 for t >= 0.2 here
        scale = 1.0 + np.abs(x).max() / oracle.sde.marginal_var(0.2)
        assert np.abs(out - ref).max() < 1e-12 * scale


def test_torch_input_stays_torch_and_differentiable():
    oracle = MixtureOracle(MIX, VPSDE())
    model = EpsilonModelAdapter(ExactEps(oracle), oracle.sde)
    x_np = oracle.sample(5, 0.4, np.random.default_rng(2))
    x = torch.from_numpy(x_np.copy()).requires_grad_(True)
    score = model.score(x, 0.4)
    assert isinstance(score, torch.Tensor) and score.dtype == torch.float64
    score.sum().backward()
    # d/dx sum_i score_i = column sums of the exact Hessian of log p_t
    expected = oracle.hessian(x_np, 0.4).sum(axis=1)
    assert np.abs(x.grad.numpy() - expected).max() < 1e-10


def test_float32_module_on_numpy_float64_input():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3)  # float32 parameters

    def eps_net(x, t):
        return net(x) * (1.0 + t[:, None])

    eps_net.parameters = net.parameters  # a callable with parameters, like a module
    sde = VESDE()
    model = EpsilonModelAdapter(eps_net, sde)
    x = np.random.default_rng(3).standard_normal((7, 3))
    out = model.score(x, 0.3)
    assert out.dtype == np.float64
    with torch.no_grad():
        ref = -eps_net(torch.from_numpy(x).float(), torch.full((7,), 0.3)).double().numpy()
    ref /= sde.marginal_std(0.3)
    assert np.abs(out - ref).max() < 1e-6 * np.abs(ref).max()


def test_adapter_drives_a_sampler_like_the_oracle():
    oracle = MixtureOracle(MIX, SubVPSDE())
    x_T = oracle.sample(16, 1.0, np.random.default_rng(4))
    ref = sample(oracle, oracle.sde, method="heun", steps=20, x_T=x_T).x
    out = sample(EpsilonModelAdapter(ExactEps(oracle), oracle.sde), oracle.sde, method="heun",
                 steps=20, x_T=x_T).x
    assert np.abs(out - ref).max() < 1e-10


def test_adapter_bad_input():
    oracle = MixtureOracle(MIX, VPSDE())
    model = EpsilonModelAdapter(ExactEps(oracle), oracle.sde)
    with pytest.raises(ValueError, match="^t:"):
        model.score(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="^module:"):
        EpsilonModelAdapter(lambda x, t: x[:, :1], oracle.sde).score(np.zeros((2, 2)), 0.5)
    with pytest.raises(TypeError, match="^module:"):
        DenoiserAdapter(3, oracle.sde)
    with pytest.raises(TypeError, match="^sde:"):
        DenoiserAdapter(ExactDenoiser(oracle), object())


def test_perturbed_score_error_is_delta_exactly():
    oracle = MixtureOracle(MIX, VESDE())

    def delta(x, t):
        return 0.01 * np.sin(x) * (1.0 + np.reshape(t, (-1, 1)))

    model = PerturbedOracle(oracle, delta)
    x = oracle.sample(25, 0.3, np.random.default_rng(5))
    t = np.random.default_rng(6).uniform(0.1, 1.0, 25)
    assert np.array_equal(model.score(x, t), oracle.score(x, t) + delta(x, t))
    assert np.array_equal(model.error(x, t), delta(x, t))
    assert not as_score_model(model).has_laplacian  # no divergence given: no exact Laplacian


def test_named_perturbations_and_their_laplacians():
    oracle = MixtureOracle(MIX, VPSDE())
    x = oracle.sample(25, 0.3, np.random.default_rng(7))
    scaled = PerturbedOracle.scaled(oracle, 1.05)
    assert np.abs(scaled.score(x, 0.3) - 1.05 * oracle.score(x, 0.3)).max() < 1e-14
    assert np.abs(scaled.laplacian(x, 0.3) - 1.05 * oracle.laplacian(x, 0.3)).max() < 1e-12
    b = np.array([0.2, -0.1])
    biased = PerturbedOracle.constant_bias(oracle, b)
    assert np.array_equal(biased.error(x, 0.3), np.broadcast_to(b, x.shape))
    assert np.array_equal(biased.laplacian(x, 0.3), oracle.laplacian(x, 0.3))
    assert as_score_model(biased).has_laplacian
    xt = torch.from_numpy(x)
    assert torch.equal(biased.error(xt, 0.3), torch.as_tensor(np.tile(b, (x.shape[0], 1))))
    assert isinstance(biased.score(xt, 0.3), torch.Tensor)
    with pytest.raises(ValueError, match="^vector:"):
        PerturbedOracle.constant_bias(oracle, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="^factor:"):
        PerturbedOracle.scaled(oracle, float("inf"))
    with pytest.raises(ValueError, match="^kind:"):
        PerturbedOracle(oracle, lambda x, t: 0 * x).flow_map(x, 1.0, 0.1)


GAUSS = GaussianMixture([1.0], [[0.5, -1.0]], [[[1.0, 0.3], [0.3, 0.2]]])


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
@pytest.mark.parametrize(
    "make", [lambda o: PerturbedOracle.scaled(o, 0.9), lambda o: PerturbedOracle.scaled(o, 1.2),
             lambda o: PerturbedOracle.constant_bias(o, [0.3, -0.2])],
    ids=["scaled-0.9", "scaled-1.2", "bias"],
)
def test_perturbed_flow_map_matches_a_tight_reference_solve(sde_name, make):
    # Closed forms (scaled; bias under VE) and the quadrature form (bias under VP) against
    # DOP853 at rtol = atol = 1e-12 on the perturbed model's PF-ODE from T to 0.01.
    oracle = MixtureOracle(GAUSS, SDES[sde_name])
    model = make(oracle)
    x_T = oracle.sample(3, 1.0, np.random.default_rng(8))
    problem = ReverseProblem(model, oracle.sde)
    ref, _, _, _ = solve_ivp_reference(problem.velocity, x_T, 1.0, 0.01, rtol=1e-12, atol=1e-12,
                                       chunk_size=3)
    out, logdet = model.flow_map(x_T, 1.0, 0.01)
    assert np.abs(out - ref).max() < 1e-8 * (1.0 + np.abs(ref).max())
    exact, exact_logdet = oracle.flow_map(x_T, 1.0, 0.01)
    assert np.abs(out - exact).max() > 1e-4  # the perturbation is visible
    if model.kind == "constant_bias":
        assert logdet == pytest.approx(exact_logdet, rel=1e-13)


def test_scaled_by_one_is_the_exact_flow_map():
    oracle = MixtureOracle(GAUSS, SubVPSDE())
    x = oracle.sample(6, 0.8, np.random.default_rng(9))
    out, logdet = PerturbedOracle.scaled(oracle, 1.0).flow_map(x, 0.8, 0.05)
    exact, exact_logdet = oracle.flow_map(x, 0.8, 0.05)
    assert np.abs(out - exact).max() < 1e-13 and logdet == pytest.approx(exact_logdet, rel=1e-13)
