"""ReverseProblem and score-model wrapping: formulas against the oracle, time handling,
numpy/torch conversion, NFE counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorebench.analytic import VESDE, VPSDE, GaussianMixture, MixtureOracle, SubVPSDE
from scorebench.solvers.problem import ReverseProblem, ScoreModel, as_score_model

MIX = GaussianMixture.isotropic([0.4, 0.6], [[-1.0, 0.5], [1.5, -0.5]], [0.3, 0.2])


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_velocity_and_drift_match_the_oracle(sde):
    oracle = MixtureOracle(MIX, sde)
    prob = ReverseProblem(oracle, sde)
    x = np.random.default_rng(0).standard_normal((5, 2))
    for t in [0.3, np.linspace(0.01, 0.9, 5)]:
        np.testing.assert_allclose(prob.velocity(x, t), oracle.velocity(x, t), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(prob.reverse_drift(x, t), oracle.reverse_drift(x, t),
                                   rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(prob.g(0.4), np.sqrt(sde.diffusion_sq(0.4)), rtol=1e-15)
    assert prob.nfe == 4
    assert prob.has_laplacian
    np.testing.assert_allclose(prob.laplacian(x, 0.3), oracle.laplacian(x, 0.3), rtol=1e-14)
    s, lap = prob.score_and_laplacian(x, 0.3)
    np.testing.assert_allclose(s, oracle.score(x, 0.3), rtol=1e-14)
    assert prob.nfe == 5


def test_per_sample_times_equal_rowwise_scalar_times():
    oracle = MixtureOracle(MIX, VPSDE())
    prob = ReverseProblem(oracle, oracle.sde)
    x = np.random.default_rng(1).standard_normal((4, 2))
    ts = np.array([0.05, 0.2, 0.5, 0.95])
    v = prob.velocity(x, ts)
    for i in range(4):
        np.testing.assert_allclose(v[i], prob.velocity(x[i : i + 1], ts[i])[0], rtol=1e-14)
    with pytest.raises(ValueError, match=r"t: expected a scalar or shape \(4,\)"):
        prob.velocity(x, ts[:3])


def test_torch_states_keep_dtype_and_time_stays_float64():
    oracle = MixtureOracle(MIX, VPSDE())
    prob = ReverseProblem(oracle, oracle.sde)
    x = np.random.default_rng(2).standard_normal((3, 2))
    ref = prob.velocity(x, 0.37)
    for dtype, tol in [(torch.float64, 1e-13), (torch.float32, 1e-5)]:
        xt = torch.from_numpy(x).to(dtype)
        for t in [0.37, torch.full((3,), 0.37, dtype=torch.float64), np.full(3, 0.37)]:
            out = prob.velocity(xt, t)
            assert isinstance(out, torch.Tensor) and out.dtype == dtype
            np.testing.assert_allclose(out.double().numpy(), ref, rtol=tol, atol=tol)


def test_wrapping_callables_modules_and_objects():
    seen = {}

    def fn(x, t):
        seen["t"] = t
        return -x

    m = as_score_model(fn)
    assert as_score_model(m) is m and not m.has_laplacian and m.d is None
    x = np.ones((3, 2), dtype=np.float32)
    out = m.score(x, 0.5)
    assert out.dtype == np.float32 and isinstance(seen["t"], float)
    m.score(x, np.array([0.1, 0.2, 0.3]))
    assert seen["t"].dtype == np.float64  # time stays float64 for a float32 state
    with pytest.raises(TypeError, match="model: .* has no laplacian"):
        m.laplacian(x, 0.5)

    class Net(torch.nn.Module):
        def forward(self, x, t):
            seen["net_t"] = t
            return -x * t[:, None]

    net = ScoreModel(Net())
    assert net.is_torch
    out = net.score(np.ones((3, 2)), 0.5)  # numpy in -> numpy out, module called with tensors
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, -0.5)
    assert isinstance(seen["net_t"], torch.Tensor) and seen["net_t"].shape == (3,)

    class ReturnsNumpy:
        d = 2

        def score(self, x, t):
            return -np.asarray(x)

    wrapped = as_score_model(ReturnsNumpy())
    assert wrapped.d == 2
    out = wrapped.score(torch.ones(2, 2), 0.1)  # numpy out converted to torch for torch in
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    with pytest.raises(TypeError, match="model: expected a callable score"):
        as_score_model("not a model")
