"""sample(..., backend="auto"/"numba") routes EM and PC on a mixture oracle to the fused kernels."""

import numpy as np
import pytest

from scorebench.analytic import GaussianMixture, MixtureOracle, VPSDE
from scorebench.solvers import sample

SDE = VPSDE()
# One 1-D Gaussian N(1, 0.25): reverse-EM from exact p_T samples targets N(a m, a^2 v + s^2) at eps.
ORACLE = MixtureOracle(GaussianMixture([1.0], [[1.0]], [[[0.25]]]), SDE)


def _start(n, seed):
    return ORACLE.sample(n, SDE.T, np.random.default_rng(seed))


@pytest.mark.parametrize("method", ["em", "pc"])
def test_auto_takes_numba_for_large_batches_and_is_reproducible(method):
    x_T = _start(8192, 1)
    a = sample(ORACLE, SDE, method=method, steps=200, x_T=x_T, rng=np.random.default_rng(5))
    b = sample(ORACLE, SDE, method=method, steps=200, x_T=x_T, rng=np.random.default_rng(5))
    assert a.backend == "numba"
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nfe == 200 * (1 if method == "em" else 2)


def test_numba_and_numpy_backends_sample_the_same_law():
    # Two independent samples of the same scheme: the difference of their means has standard
    # deviation sqrt(2 v / n). A two-sided z of 5.3 fails with probability 1.2e-7; the variance
    # check uses the normal approximation of the sample variance, sd ~ v sqrt(2 / n) each,
    # difference sd ~ v sqrt(4 / n), also at z = 5.3 (n = 20000 makes the approximation tight).
    n = 20_000
    x_T = _start(n, 2)
    fused = sample(ORACLE, SDE, method="em", steps=200, x_T=x_T, rng=np.random.default_rng(3),
                   backend="numba").x[:, 0]
    plain = sample(ORACLE, SDE, method="em", steps=200, x_T=x_T, rng=np.random.default_rng(4),
                   backend="numpy").x[:, 0]
    v = plain.var()
    assert abs(fused.mean() - plain.mean()) < 5.3 * np.sqrt(2 * v / n)
    assert abs(fused.var() - plain.var()) < 5.3 * v * np.sqrt(4 / n)
    # and both are close to the exact marginal at eps (the EM bias at 200 steps is far smaller)
    exact = ORACLE.marginal(1e-3)
    assert abs(fused.mean() - exact.mean()[0]) < 5.3 * np.sqrt(v / n) + 0.02


def test_numba_backend_rejects_what_it_cannot_run():
    x_T = _start(16, 0)
    with pytest.raises(ValueError, match="backend"):
        sample(ORACLE, SDE, method="heun", steps=4, x_T=x_T, backend="numba")
    with pytest.raises(ValueError, match="backend"):
        sample(lambda x, t: -x, SDE, method="em", steps=4, x_T=x_T, rng=0, backend="numba")


@pytest.mark.parametrize("method", ["em", "pc"])
def test_float32_start_gets_float32_samples_from_the_fused_path(method):
    # The batch size must not decide whether a float32 call works: above NUMBA_MIN_SAMPLES the
    # fused kernels run in float32 and hand back float32. Same seed, same noise stream: the
    # float64 run from the same start differs by float32 round-off only (50 steps, ~30
    # roundings of 6e-8 relative each on |x| <~ 4: budget 50 * 30 * 6e-8 * 4 = 3.6e-4).
    x_T = _start(8192, 6).astype(np.float32)
    lo = sample(ORACLE, SDE, method=method, steps=50, x_T=x_T, rng=np.random.default_rng(7))
    hi = sample(ORACLE, SDE, method=method, steps=50, x_T=x_T.astype(np.float64),
                rng=np.random.default_rng(7))
    assert lo.backend == hi.backend == "numba"
    assert lo.x.dtype == np.float32 and hi.x.dtype == np.float64
    assert np.max(np.abs(lo.x - hi.x)) < 3.6e-4
