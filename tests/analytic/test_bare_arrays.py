"""The bare (meminfo-less) array aliases of the fused kernels' hot loops."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from scorebench.analytic._bare_arrays_numba import bare, touch


@njit
def _sum_through_bare(a):
    keep = (a,)
    b = bare(a)
    s = 0.0
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            b[i, j] += 1.0  # writes reach the owner's memory
            s += b[i, j]
    touch(keep)
    return s


@njit
def _bare_of(a):
    return bare(a).shape[0]


def test_bare_alias_reads_and_writes_the_same_memory():
    a = np.arange(12.0).reshape(3, 4)
    assert _sum_through_bare(a) == np.sum(np.arange(12.0) + 1.0)
    assert np.array_equal(a, np.arange(12.0).reshape(3, 4) + 1.0)


def test_bare_rejects_a_non_contiguous_array():
    a = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _bare_of(a)
