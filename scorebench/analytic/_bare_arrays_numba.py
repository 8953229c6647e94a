r"""Bare (meminfo-less) array aliases for the fused kernels' hot loops.

Every call between numba functions increfs and decrefs each array argument on entry and exit:
an atomic read-modify-write apiece (~20 cycles), and LLVM's reference-count pruning cannot
remove them across the branches of a kernel body. A hot loop that hands twenty arrays to a
helper per block of 64 lanes pays for forty atomics per call: measured with perf, 24 % of the
float32 likelihood kernel and 16-23 % of the fused EM kernel. :func:`bare` returns a view of
the same memory built by ``numba.carray`` from its data pointer, which has no meminfo, so the
reference counting of that view is a null test.

A bare alias does not keep its memory alive. The pattern is::

    keep = (Y, KS, work)            # the owning arrays, referenced until the end
    Y, KS = bare(Y), bare(KS)       # the hot loop uses the aliases only
    ...                             # hot loop
    touch(keep)                     # a use after the loop: the owners live until here

(numba releases a variable after its last use, so without :func:`touch` the owners could be
freed while the aliases are still read). Only C-contiguous arrays may be bared.
"""

from __future__ import annotations

from numba import carray, njit

from ._numba_intrinsics import array_ptr

__all__ = ["bare", "touch"]


@njit(cache=True, inline="always")
def bare(a):
    """``a`` (C-contiguous) as an array without a meminfo: no reference counting; the caller
    keeps ``a`` alive (see the module docstring). Raises ValueError for a non-C-contiguous
    ``a`` (a ``carray`` view of it would index the wrong elements)."""
    if not a.flags.c_contiguous:
        raise ValueError("bare: the array must be C-contiguous")
    return carray(array_ptr(a), a.shape)


@njit(cache=True)
def touch(keep):
    """A use of ``keep`` (a tuple of owning arrays) after a hot loop that used bare aliases of
    them, so that they live until then."""
    return len(keep)
