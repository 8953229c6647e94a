"""Tiled transposes of the generic mixture kernel's blocks of points
(:mod:`scorebench.analytic._numba_transpose` and the stages that use it).

Oracle: numpy's own transpose, exactly (a transpose only moves numbers; negation is exact).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from scorebench.analytic._numba_stages import load_transposed, store_logp_score
from scorebench.analytic._numba_transpose import transpose_tile, transpose_tile_negated


@njit
def _tile(src, so, ss, dst, do, ds, negate):
    if negate:
        transpose_tile_negated(src, so, ss, dst, do, ds)
    else:
        transpose_tile(src, so, ss, dst, do, ds)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("negate", [False, True])
def test_transpose_tile_moves_one_tile_and_nothing_else(dtype, negate):
    """An 8 x 8 tile at offsets (3, 5) of a (12, 21) array lands transposed at (2, 9) of a
    (14, 19) array, exactly (negated if asked); every other element stays as it was."""
    rng = np.random.default_rng(1)
    src = rng.standard_normal((12, 21)).astype(dtype)
    dst = rng.standard_normal((14, 19)).astype(dtype)
    want = dst.copy()
    tile = src[3:11, 5:13].T
    want[2:10, 9:17] = -tile if negate else tile
    _tile(src.reshape(-1), 3 * 21 + 5, 21, dst.reshape(-1), 2 * 19 + 9, 19, negate)
    np.testing.assert_array_equal(dst, want)


def test_transpose_tile_refuses_arrays_that_are_not_c_contiguous():
    """The intrinsic reads through the data pointer: a strided view is a typing error, not
    wrong numbers."""
    a = np.zeros((16, 16))
    with pytest.raises(TypingError):
        _tile(a.T, 0, 16, a, 0, 16, False)
    with pytest.raises(TypingError):
        _tile(a[:, ::2], 0, 8, a, 0, 16, False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [3, 8, 12, 16, 20])
def test_block_transposes_in_and_out(dtype, d):
    """``load_transposed`` / ``store_logp_score`` on full blocks (tiles for the first multiple
    of 8 columns, loops for the rest) and on a partial last block (padded with its first point):
    exactly numpy's transpose, negated on the way out when asked."""
    B = 240
    rng = np.random.default_rng(d)
    x = rng.standard_normal((2 * B + 37, d)).astype(dtype)
    XT = np.empty((d, B), dtype)
    for start, n in ((0, B), (B, B), (2 * B, 37)):
        load_transposed(x, start, n, XT)
        want = np.concatenate([x[start:start + n], np.repeat(x[start:start + 1], B - n, 0)])
        np.testing.assert_array_equal(XT, want.T)
    M, S = rng.standard_normal(B).astype(dtype), rng.random(B).astype(dtype) + 1
    SC = rng.standard_normal((d, B)).astype(dtype)
    for negate in (False, True):
        out_lp, out_sc = np.full(x.shape[0], 7.0, dtype), np.full(x.shape, 7.0, dtype)
        for start, n in ((B, B), (2 * B, 37)):
            store_logp_score(start, n, M, S, SC, True, True, out_lp, out_sc, negate)
            want = (-SC if negate else SC)[:, :n].T
            np.testing.assert_array_equal(out_sc[start:start + n], want)
            # (float32: |M|, log S <= 3, rounding ~2e-7 of them)
            np.testing.assert_allclose(out_lp[start:start + n], (M + np.log(S))[:n], rtol=1e-6,
                                       atol=1e-6)
        assert np.all(out_sc[:B] == 7.0) and np.all(out_lp[:B] == 7.0)  # untouched
