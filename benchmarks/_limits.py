"""Kernels that measure this machine's limits: exponential and matrix-multiply throughput.

The oracle benchmarks compare their times with the bound their operation counts imply,
:math:`N K\\, t_{exp} + \\mathrm{flops} / R_{mm}` (see :mod:`scorebench.analytic._mixture_numba`),
using the best exponential time and matrix-multiply rate measured here in the same run.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from scorebench.analytic._numba_exp import exp_nonpositive

__all__ = ["numba_exp_all_threads", "exp_arguments"]

_BLOCK = 4096


@njit(parallel=True, cache=True)
def _exp_blocks(x, out, nchunks):
    nblocks = x.shape[0] // _BLOCK
    per = (nblocks + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        for b in range(ch * per, min(nblocks, (ch + 1) * per)):
            s = b * _BLOCK
            exp_nonpositive(x[s:s + _BLOCK], out[s:s + _BLOCK], _BLOCK)


def numba_exp_all_threads(x, out):
    """``out = exp(x)`` for ``x <= 0`` of a length divisible by 4096, on all numba threads."""
    _exp_blocks(x, out, numba.get_num_threads())


def exp_arguments(n, seed=0):
    """``n`` arguments in [-30, 0], the range the log-sum-exp weights live in."""
    return -30.0 * np.random.default_rng(seed).random(n)
