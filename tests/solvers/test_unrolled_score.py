"""The generated straight-line mixture score (``_unrolled_score_numba``) against the generic one.

Both compute the same closed form in a different order, so they agree to round-off: a few ulp of
the result's scale (float64 2.2e-16, float32 1.2e-7). Kernel-level tests run the fused samplers
and the likelihood with the generated score switched off and on, on one noise path.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numba import njit

from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE
from scorebench.solvers import _unrolled_score_numba as unrolled
from scorebench.analytic._generated_modules import cache_dir, import_generated
from scorebench.solvers._mixture_lanes_numba import layout_as, lanes_score_diag_shared, mixture_layout
from scorebench.solvers.fused_likelihood_numba import dopri5_loglik_numba
from scorebench.solvers.fused_sampling_numba import em_sample_numba, pc_sample_numba
from scorebench.solvers.grids import time_grid

_array_ptr = unrolled.array_ptr


@njit
def _call(fn, X, A, S2, mT, lamT, logw, SC, LAP):
    fn(_array_ptr(X), _array_ptr(A), _array_ptr(S2), _array_ptr(mT), _array_ptr(lamT),
       _array_ptr(logw), _array_ptr(SC), _array_ptr(LAP), X.shape[1])


def _block(d, K, dt, B, seed):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.05, 1.0, B)
    S2 = 1.0 - A**2 + 1e-3
    mT = 3.0 * rng.standard_normal((d, K))
    X = A * mT[:, rng.integers(0, K, B)] + np.sqrt(S2) * rng.standard_normal((d, B))
    lam = rng.uniform(0.01, 0.5, d)
    lamT = np.repeat(lam[:, None], K, axis=1)
    logw = np.log(rng.dirichlet(np.ones(K)))
    return [np.ascontiguousarray(v, dtype=dt) for v in (X, A, S2, mT, lamT, logw)]


@pytest.mark.parametrize("common_time", [False, True])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("d, K", [(1, 1), (1, 5), (2, 8), (3, 16), (8, 8)])
def test_generated_score_matches_the_generic_lanes_kernel(d, K, dt, common_time):
    B = 67  # not a multiple of the SIMD width: the loop's remainder is exercised too
    X, A, S2, mT, lamT, logw = _block(d, K, dt, B, seed=10 * d + K)
    if common_time:  # the samplers' variant: every lane at lane 0's time, the rest not read
        A[:], S2[:] = A[0], S2[0]
        A_in, S2_in = A.copy(), S2.copy()
        A_in[1:], S2_in[1:] = np.nan, np.nan
    else:
        A_in, S2_in = A, S2
    L, M, S = np.empty((K, B), dt), np.empty(B, dt), np.empty(B, dt)
    P1, P2 = np.empty((d, B), dt), np.empty((d, B), dt)
    eps = np.finfo(dt).eps
    for want_lap in (True, False):
        sc_ref, lap_ref = np.empty((d, B), dt), np.empty(B, dt)
        lanes_score_diag_shared(X, A, S2, mT, lamT, logw, want_lap, L, M, S, P1, P2, sc_ref,
                                lap_ref)
        sc, lap = np.full((d, B), np.nan, dt), np.full(B, np.nan, dt)
        _call(unrolled.score_function(d, K, dt, want_lap, common_time), X, A_in, S2_in, mT,
              lamT, logw, sc, lap)
        assert sc.dtype == dt
        # same sums in another order: each entry within 64 ulp of the block's largest score
        # (measured: 4 ulp; 16 ulp with common_time, whose log-weights drop the common
        # h|x|^2 and so round relative to |beta_k| + sum_i |u_i mu_ki|, see its docstring)
        assert np.max(np.abs(sc - sc_ref)) <= 64 * eps * np.max(np.abs(sc_ref))
        if want_lap:
            # Laplacian = sum_i (q_i - v_i - s_i^2), q_i >= 0: 64 d ulp of the size of its terms
            # in each lane (measured: 8 ulp; 23 d ulp with common_time)
            v = 1.0 / (A[None, :] * A[None, :] * lamT[:, :1] + S2[None, :])
            neg = (v + sc_ref * sc_ref).sum(axis=0)
            size = np.abs(lap_ref + neg) + neg
            assert np.all(np.abs(lap - lap_ref) <= 64 * d * eps * size)
        else:
            assert np.all(np.isnan(lap))  # the score-only function leaves LAP alone


def test_applies_only_to_small_diagonal_shared_mixtures():
    def lay(d, K, covs=None):
        means = np.arange(K * d, dtype=float).reshape(K, d)
        covs = np.tile(0.1 * np.eye(d), (K, 1, 1)) if covs is None else covs
        return mixture_layout(GaussianMixture(np.ones(K), means, covs))

    assert unrolled.applies(lay(2, 8))
    assert unrolled.applies(lay(8, 8))
    assert unrolled.applies(lay(4, 16))
    assert not unrolled.applies(lay(16, 4))  # d > MAX_D: registers would spill
    assert not unrolled.applies(lay(2, 17))  # K > MAX_K
    assert not unrolled.applies(lay(8, 9))  # d K > MAX_DK
    two_shapes = np.stack([0.1 * np.eye(2), 0.2 * np.eye(2)])
    assert not unrolled.applies(lay(2, 2, two_shapes))  # not shared
    full = np.tile(np.array([[0.2, 0.05], [0.05, 0.1]]), (2, 1, 1))
    assert not unrolled.applies(lay(2, 2, full))  # not diagonal
    ok, fn = unrolled.score_args(lay(2, 8), np.float32, True)
    assert ok and fn == unrolled.score_function(2, 8, np.float32, True).address
    ok, fn = unrolled.score_args(lay(16, 4), np.float64, False)
    assert not ok and fn == unrolled.noop_score(np.float64).address


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_score_source_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="d: expected an int >= 1"):
        unrolled.score_source(bad, 3, np.float64, True)
    with pytest.raises(ValueError, match="K: expected an int >= 1"):
        unrolled.score_source(2, bad, np.float64, True)


def test_score_source_rejects_other_dtypes():
    with pytest.raises(TypeError, match="dtype: expected float64 or float32"):
        unrolled.score_source(2, 3, np.int64, True)


def _ring(K=8, radius=2.0, variance=0.05):
    ang = 2 * np.pi * np.arange(K) / K
    return GaussianMixture.isotropic(np.ones(K), radius * np.c_[np.cos(ang), np.sin(ang)],
                                     np.full(K, variance))


def _both(monkeypatch, run):
    """run() with the generated score switched off, then on."""
    with monkeypatch.context() as m:
        m.setattr(unrolled, "applies", lambda lay: False)
        off = run()
    return off, run()


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_fused_samplers_give_the_same_path_with_the_generated_score(monkeypatch, dt):
    oracle = MixtureOracle(_ring(), VPSDE())
    rng = np.random.default_rng(3)
    grid = time_grid("uniform", 50, 1.0, 1e-3)
    x = rng.standard_normal((500, 2)).astype(dt)
    dW = (np.sqrt(np.abs(np.diff(grid)))[:, None, None]
          * rng.standard_normal((grid.size - 1, 500, 2))).astype(dt)
    em_off, em_on = _both(monkeypatch, lambda: em_sample_numba(oracle, x, grid, dW=dW))
    pc_off, pc_on = _both(monkeypatch, lambda: pc_sample_numba(oracle, x, grid, seed=4))
    # 50 steps of a contracting map starting from ulp-level score differences: the paths agree
    # to a few hundred ulp of the sample scale (~2); measured 1e-15 (float64), 5e-7 (float32)
    tol = 2.0 * 1000 * np.finfo(dt).eps
    assert em_on.dtype == dt
    assert np.max(np.abs(em_on - em_off)) < tol
    assert np.max(np.abs(pc_on - pc_off)) < 10 * tol  # the corrector's step sizes amplify


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=10.0)],
                         ids=["vp", "ve"])
def test_fused_likelihood_agrees_with_the_generated_score(monkeypatch, sde):
    oracle = MixtureOracle(_ring(K=5), sde)
    x = oracle.sample(300, 1e-3, np.random.default_rng(5))
    off, on = _both(monkeypatch, lambda: dopri5_loglik_numba(oracle, x, eps=1e-3, prior="exact"))
    exact = oracle.log_prob(x, 1e-3)
    # identical step decisions unless an error norm sits within round-off of 1: then both runs
    # are still rtol-accurate solutions; the solver's own error against the exact value is the
    # yardstick (the suite asserts < 1e-3 at rtol 1e-5)
    same = off.nfe == on.nfe
    assert same.mean() > 0.95
    assert np.max(np.abs(on.logp[same] - off.logp[same])) < 1e-10
    assert np.max(np.abs(on.logp - exact)) < 2e-3
    assert np.max(np.abs(off.logp - exact)) < 2e-3


def test_generated_modules_are_written_once_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path / "k"))
    assert cache_dir() == tmp_path / "k"
    src = "VALUE = 41 + 1\n"
    mod = import_generated("sb_test_mod", src)
    assert mod.VALUE == 42
    files = list((tmp_path / "k").glob("sb_test_mod_*.py"))
    assert len(files) == 1 and files[0].read_text() == src
    stamp = files[0].stat().st_mtime_ns
    assert import_generated("sb_test_mod", src) is mod  # same source: same module, no rewrite
    assert files[0].stat().st_mtime_ns == stamp
    other = import_generated("sb_test_mod", "VALUE = 7\n")
    assert other.VALUE == 7 and len(list((tmp_path / "k").glob("sb_test_mod_*.py"))) == 2


def test_generated_module_imported_from_two_threads_at_once_is_complete_in_both(monkeypatch,
                                                                              tmp_path):
    """The module sits in sys.modules while it runs; a second thread must wait, not take it
    half-made (here it would miss VALUE, set after a 0.3 s pause)."""
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path / "k"))
    src = f"import time\ntime.sleep(0.3)\nVALUE = {id(tmp_path)}\n"
    got, start = [], threading.Barrier(2)

    def work():
        start.wait()
        got.append(getattr(import_generated("sb_test_slow", src), "VALUE", None))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert got == [id(tmp_path), id(tmp_path)]


def test_generated_modules_fall_back_when_the_cache_dir_is_not_writable(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the directory should be: mkdir fails
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    path = cache_dir()
    assert blocker not in path.parents and path.is_dir()


def test_generated_modules_reject_a_bad_prefix():
    with pytest.raises(ValueError, match="prefix: must be an identifier"):
        import_generated("not an identifier", "X = 1\n")


def test_layout_cache_per_mixture_and_dtype_rebuilt_when_an_array_is_replaced():
    from scorebench.solvers._mixture_lanes_numba import cached_layout, layout_as, mixture_layout

    rng = np.random.default_rng(8)
    A = rng.normal(size=(3, 2, 2))
    mix = GaussianMixture(np.ones(3), rng.normal(size=(3, 2)),
                          np.einsum("kij,klj->kil", A, A) + 0.1 * np.eye(2))
    lay64, lay32 = cached_layout(mix, np.float64), cached_layout(mix, np.float32)
    assert cached_layout(mix, np.float64) is lay64 and cached_layout(mix, "float32") is lay32
    fresh = layout_as(mixture_layout(mix), np.float32)
    for f in ("mT", "W", "lamT", "logw"):
        assert getattr(lay32, f).dtype == np.float32
        assert np.array_equal(getattr(lay32, f), getattr(fresh, f))
    mix.means = mix.means + 1.0  # a replaced attribute: the layout follows
    moved = cached_layout(mix, np.float64)
    assert moved is not lay64
    assert np.array_equal(moved.mT, mixture_layout(mix).mT)
    assert not np.array_equal(moved.mT, lay64.mT)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("d, K", [(8, 3), (16, 8)])
def test_blas_lanes_score_matches_the_loop_kernel(d, K, dt):
    """Full covariances, d >= 8: the two stacked matrix products of lanes_score_blas (what
    lanes_score runs there) give the loop kernel's score and Laplacian up to the order of the
    sums, and leave the augmented state's extra output row alone."""
    from scorebench.solvers._mixture_lanes_numba import (BLAS_MAX_WORK, BLAS_MIN_D, lanes_score,
                                                         lanes_score_loops, lanes_time_setup)

    rng = np.random.default_rng(40 + d)
    A = rng.standard_normal((K, d, d))
    mix = GaussianMixture(rng.random(K) + 0.2, 2.0 * rng.standard_normal((K, d)),
                          np.einsum("kij,klj->kil", A, A) / d + 0.05 * np.eye(d))
    lay = layout_as(mixture_layout(mix), dt)
    B = 64
    assert d >= BLAS_MIN_D and K * d * d * B <= BLAS_MAX_WORK  # lanes_score takes BLAS here
    a = rng.uniform(0.3, 1.0, B).astype(dt)
    s2 = (1.0 - a.astype(float) ** 2 + 1e-2).astype(dt)
    X = np.ascontiguousarray(
        (a[None, :] * mix.means[rng.integers(0, K, B)].T + rng.standard_normal((d, B))), dtype=dt)
    INV, C, TR = np.empty((d, K, B), dt), np.empty((K, B), dt), np.empty((K, B), dt)
    lanes_time_setup(a, s2, lay.lamT, lay.logw, lay.shared, INV, C, TR, np.empty(B, dt))
    L, M, S = np.empty((K, B), dt), np.empty(B, dt), np.empty(B, dt)
    sc_ref, lap_ref = np.empty((d, B), dt), np.empty(B, dt)
    lanes_score_loops(X, a, False, lay.mT, lay.W, INV, C, TR, True, np.empty((d, K, B), dt), L,
                      M, S, sc_ref, lap_ref)
    Xa = np.concatenate([X, np.full((1, B), 7.0, dt)])  # the augmented state's layout
    sc = np.full((d + 1, B), -3.0, dt)
    lap = np.empty(B, dt)
    lanes_score(Xa, a, False, lay.mT, lay.W, INV, C, TR, True, np.empty((d, K, B), dt), L, M,
                S, sc, lap)
    eps = np.finfo(dt).eps
    # sums of K d^2 terms in another order: within 32 d ulp of the block's largest entry
    # (a bound on reordered sums of d terms of that size; measured under 0.3 d ulp)
    assert np.max(np.abs(sc[:d] - sc_ref)) <= 32 * d * eps * np.max(np.abs(sc_ref))
    assert np.all(sc[d] == -3.0)
    size = np.abs(lap_ref) + (sc_ref * sc_ref).sum(0) + TR.max(0)
    assert np.all(np.abs(lap - lap_ref) <= 32 * d * eps * size)
