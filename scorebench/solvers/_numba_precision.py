r"""Precision-generic building blocks: the fused kernels compile once per state dtype.

The block kernels (:mod:`._mixture_lanes_numba`, :mod:`._sampling_lanes_numba`,
:mod:`._pc_batch_numba`) are written once; numba specialises them for float64 or float32
arrays. Two helpers keep a float32 specialisation in float32 (a float literal is a float64 in
numba, and ``0.5 * z`` would promote every lane operation to float64):

``like(value, ref)``
    ``value`` as the floating type of ``ref`` (an array or a scalar;
    :mod:`scorebench.analytic._numba_dtype`, re-exported here).
``lane_exp(x)``
    :func:`~._numba_math.fast_exp` for float64, :func:`fast_exp_f32` for float32.

``fast_exp_f32``
    The float32 exponential, branch-free and vectorisable like ``fast_exp``
    (:mod:`scorebench.analytic._numba_exp`, where the float32 mixture kernels use it too;
    re-exported here).
"""

from __future__ import annotations

from scorebench.analytic._numba_dtype import by_precision, like
from scorebench.analytic._numba_exp import fast_exp_f32

from ._numba_math import fast_exp

__all__ = ["fast_exp_f32", "lane_exp", "like"]


lane_exp = by_precision(fast_exp, fast_exp_f32, """exp(x) in the precision of ``x``:
:func:`~._numba_math.fast_exp` for float64, :func:`fast_exp_f32` for float32.""")
