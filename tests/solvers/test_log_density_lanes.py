"""The lanes log-density (the fused likelihood's exact prior) against the oracle's log_prob.

Same formula, sums in another order: the difference is rounding of the summed terms, a few ulp
of max(|log p|, the largest quadratic form). The bound below is 64 ulp of that size (measured:
at most 1.5 ulp on these mixtures).
"""

from __future__ import annotations

import numpy as np
import pytest

from scorebench.analytic import VESDE, VPSDE, GaussianMixture, MixtureOracle, SubVPSDE
from scorebench.solvers._log_density_lanes_numba import log_density_rows
from scorebench.solvers._mixture_lanes_numba import cached_layout
from scorebench.solvers.fused_likelihood_numba import dopri5_loglik_numba
from scorebench.solvers.likelihood import log_likelihood

EPS64 = np.finfo(np.float64).eps


def _full(d, K, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    covs = A @ A.transpose(0, 2, 1) / d + 0.05 * np.eye(d)
    return GaussianMixture(rng.uniform(0.5, 1.5, K), 2.0 * rng.standard_normal((K, d)), covs)


def _mixtures():
    rng = np.random.default_rng(0)
    ang = 2 * np.pi * np.arange(8) / 8
    ring = GaussianMixture.isotropic(np.ones(8), 2.0 * np.c_[np.cos(ang), np.sin(ang)],
                                     np.full(8, 0.05))
    diag = GaussianMixture(rng.uniform(0.5, 2, 5), rng.standard_normal((5, 3)),
                           np.stack([np.diag(v) for v in rng.uniform(0.1, 2.0, (5, 3))]))
    # a point mass and a zero-weight component (the layout drops the latter)
    singular = GaussianMixture(np.array([1.0, 0.0, 2.0]), rng.standard_normal((3, 2)),
                               np.stack([np.zeros((2, 2)), np.eye(2), 0.3 * np.eye(2)]))
    return {"ring": ring, "diag": diag, "singular": singular, "full4": _full(4, 3, 1),
            "full16": _full(16, 8, 2)}


@pytest.mark.parametrize("name", list(_mixtures()))
@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=["vp", "subvp", "ve"])
@pytest.mark.parametrize("nchunks", [1, 2, 3])
def test_log_density_rows_matches_oracle(name, sde, nchunks):
    mix = _mixtures()[name]
    oracle = MixtureOracle(mix, sde, backend="numpy")
    rng = np.random.default_rng(1)
    lay = cached_layout(mix, np.float64)
    for t in (1e-3, 0.5, sde.T):
        a, s2 = float(sde.mean_coeff(t)), float(sde.marginal_var(t))
        # near the data and far out (quadratic forms up to ~1e6), N not a multiple of 64
        x = np.concatenate([oracle.sample(150, t, rng), 30.0 * rng.standard_normal((43, mix.d))])
        ref = oracle.log_prob(x, t)
        out = np.full(x.shape[0], np.nan)
        log_density_rows(x, a, s2, lay.diag, lay.mT, lay.W, lay.lamT, lay.logw, nchunks, out)
        dist = x[:, None, :] - a * mix.means[None]
        scale = np.abs(ref) + np.max(np.sum(dist * dist, -1), 1) / s2 + 1.0
        assert np.all(np.abs(out - ref) <= 64 * EPS64 * scale), name


def test_exact_prior_in_the_wrapper_and_in_log_likelihood():
    oracle = MixtureOracle(_full(3, 4, 5), VPSDE())
    x = oracle.sample(300, 1e-5, np.random.default_rng(2))
    res = dopri5_loglik_numba(oracle, x, rtol=1e-5, atol=1e-5, prior="exact")
    ref = oracle.log_prob(res.x_T, 1.0)
    assert np.max(np.abs(res.prior_logp - ref)) <= 64 * EPS64 * (1 + np.abs(ref).max())
    np.testing.assert_array_equal(res.logp, res.prior_logp + res.delta_logp)
    # log_likelihood hands the oracle's own exact_log_prob_T to the kernel's wrapper: the same
    # numbers as the callable applied afterwards, without calling the oracle
    calls = []
    plain = oracle.log_prob

    def counting(z, t):
        calls.append(z.shape)
        return plain(z, t)

    oracle.log_prob = counting  # instance attribute: exact_log_prob_T would go through it
    fused = log_likelihood(x, oracle, oracle.sde, prior=oracle.exact_log_prob_T, backend="numba")
    assert calls == []
    by_callable = log_likelihood(x, oracle, oracle.sde, prior=lambda z: plain(z, 1.0),
                                 backend="numba")
    np.testing.assert_array_equal(fused.delta_logp, by_callable.delta_logp)
    assert np.max(np.abs(fused.prior_logp - by_callable.prior_logp)) <= (
        64 * EPS64 * (1 + np.abs(by_callable.prior_logp).max()))
    # another oracle's exact prior is that oracle's, applied as a callable
    other = MixtureOracle(_full(3, 4, 6), VPSDE())
    res = log_likelihood(x, oracle, oracle.sde, prior=other.exact_log_prob_T, backend="numba")
    np.testing.assert_allclose(res.prior_logp, other.log_prob(res.x_T, 1.0), rtol=0, atol=0)


def test_float32_points_get_a_float64_prior():
    oracle = MixtureOracle(_mixtures()["ring"], VPSDE())
    x = oracle.sample(500, 1e-5, np.random.default_rng(3)).astype(np.float32)
    res = dopri5_loglik_numba(oracle, x, prior="exact")
    assert res.prior_logp.dtype == np.float64
    ref = oracle.log_prob(res.x_T, 1.0)
    assert np.max(np.abs(res.prior_logp - ref)) <= 64 * EPS64 * (1 + np.abs(ref).max())
