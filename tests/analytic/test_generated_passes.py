"""The generic mixture kernel's generated passes (d = 9..16, one product per component).

Oracles: the numpy reference ``mixture_terms`` (float64, RTOL of test_backends) and the stage
functions the passes replace (the same maths with other rounding: agreement to 1e-13 of each
output's scale, the bound test_backends allows between two float64 paths of this kernel).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_backends import WANT, _assert_close, _full_mixture, _points, _scales

from scorebench.analytic import _generated_passes_numba as passes
from scorebench.analytic import _mixture_numba
from scorebench.analytic._mixture_numba import mixture_terms_numba
from scorebench.analytic._mixture_numpy import mixture_terms
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE

SUBSETS = (("logp",), ("score",), ("laplacian",), ("score", "laplacian"), ("logp", "score"))


def _case(d, K, seed, cond=50.0, t=0.3, n=3 * 240 + 17):
    """A mixture with cond(C_k(t)) <= cond (the one-product path), samples of p_t and three far
    points: three full blocks of the kernel and a partial one."""
    rng = np.random.default_rng(seed)
    mix = _full_mixture(rng, K, d, cond)
    sde = VPSDE()
    a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
    x = _points(MixtureOracle(mix, sde), t, n, rng)
    return mix, x, a, s2


def _terms(mix, x, a, s2, want=WANT, kernel=mixture_terms_numba):
    return kernel(x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2, want)


@pytest.mark.parametrize("d, K", [(9, 5), (11, 8), (13, 1), (16, 8)])
def test_generated_passes_match_the_reference_and_the_stage_functions(monkeypatch, d, K):
    """Each d of the passes against the numpy reference (RTOL of test_backends, far points
    included) and against the stage functions they replace (forced by taking d out of the
    passes' range): the two runs really differ (FMAs; with K = 1 the score is exact in both
    and only the log-density differs), by at most 1e-13 of each output's
    scale; every subset of the outputs is bit-identical to the full call."""
    mix, x, a, s2 = _case(d, K, 100 + d)
    assert passes.applies(d)
    got = _terms(mix, x, a, s2)
    assert passes.is_loaded(d, np.float64)
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    _assert_close(got, _terms(mix, x, a, s2, kernel=mixture_terms), scale_s, scale_l)
    for sub in SUBSETS:
        part = _terms(mix, x, a, s2, sub)
        for key in sub:
            np.testing.assert_array_equal(part[key], got[key])
    monkeypatch.setattr(passes, "MAX_D", 0)
    stages = _terms(mix, x, a, s2)
    monkeypatch.undo()
    assert any(not np.array_equal(stages[key], got[key]) for key in WANT)
    np.testing.assert_array_less(np.abs(got["score"] - stages["score"]).max(1), 1e-13 * scale_s)
    np.testing.assert_array_less(np.abs(got["laplacian"] - stages["laplacian"]),
                                 1e-13 * scale_l)
    np.testing.assert_array_less(np.abs(got["logp"] - stages["logp"]),
                                 1e-13 * np.maximum(1.0, np.abs(stages["logp"])))


def test_generated_passes_in_float32_against_float64():
    """float32 points run the float32 passes: float32 results within 1e-5 of the float64 ones
    relative to each output's scale (float32 keeps ~1e-7 per operation; the log-weights carry
    ~eps |l_k| and the products d terms each), and subsets bit-identical."""
    mix, x, a, s2 = _case(16, 8, 7, n=2 * 240 + 5)
    x = x[:-3]  # the float32 bound holds near the data (far points: see mixture_terms_numba)
    ref = _terms(mix, x, a, s2)
    got = _terms(mix, x.astype(np.float32), a, s2)
    assert passes.is_loaded(16, np.float32)
    assert all(v.dtype == np.float32 for v in got.values())
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    np.testing.assert_array_less(np.abs(got["logp"] - ref["logp"]),
                                 1e-5 * np.maximum(1.0, np.abs(ref["logp"])))
    np.testing.assert_array_less(np.abs(got["score"] - ref["score"]).max(1), 1e-5 * scale_s)
    np.testing.assert_array_less(np.abs(got["laplacian"] - ref["laplacian"]), 1e-5 * scale_l)
    for sub in SUBSETS:
        part = _terms(mix, x.astype(np.float32), a, s2, sub)
        for key in sub:
            np.testing.assert_array_equal(part[key], got[key])


def test_ill_conditioned_covariances_do_not_take_the_passes(monkeypatch):
    """cond(C_k(t)) above the one-product limit: the eigenbasis path, whose passes are the stage
    functions (the generated ones are never asked for), still at RTOL of the reference."""
    mix, x, a, s2 = _case(16, 4, 3, cond=1e4, t=0.01)
    var = a * a * mix.eigvals + s2
    assert (var.max(1) / var.min(1)).max() > _mixture_numba._INVERSE_MAX_COND

    def refuse(*args):
        raise AssertionError("the generated passes were asked for")

    monkeypatch.setattr(passes, "pass_functions", refuse)
    got = _terms(mix, x, a, s2)
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    _assert_close(got, _terms(mix, x, a, s2, kernel=mixture_terms), scale_s, scale_l)


def test_pass_range_and_source():
    """The passes serve d = 9..16 (d <= 8 has the generated small-d kernel; beyond 16 the
    block size changes with d); their source embeds d and the block as constants."""
    assert [d for d in range(1, 40) if passes.applies(d)] == list(range(9, 17))
    src = passes.source(12, np.float32)
    assert f"carray(wp, (12, {passes.BLOCK}))" in src and "np.float32(0.5)" in src
    for bad in (8, 17):
        with pytest.raises(ValueError, match="d: the generated passes serve 9 <= d <= 16"):
            passes.source(bad)


def test_compiled_for_counts_the_passes(monkeypatch):
    """A common-time call with d = 9..16 needs the passes too: until they are loaded in this
    process the kernel does not count as compiled for it (per-point times never need them)."""
    mixture_terms_numba(np.zeros((3, 9)), np.zeros((1, 9)), np.eye(9)[None], np.ones((1, 9)),
                        np.zeros(1), np.full(3, 0.9), np.full(3, 0.1), ("score",))  # compiled
    monkeypatch.setattr(passes, "_FUNCTIONS", {})
    assert not _mixture_numba.compiled_for(12, per_point=False)
    assert _mixture_numba.compiled_for(12, per_point=True)
    passes.pass_functions(12)
    assert _mixture_numba.compiled_for(12, per_point=False)
    assert not _mixture_numba.compiled_for(12, per_point=False, dtype=np.float32)
