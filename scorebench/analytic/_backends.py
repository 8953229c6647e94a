"""Backend selection for the mixture kernels.

``KERNELS`` maps a backend name to a function with the signature of
:func:`._mixture_numpy.mixture_terms`. The numba kernels are imported lazily (so importing
scorebench does not compile anything); when numba is unavailable ``"auto"`` falls back to numpy.
"""

from __future__ import annotations

from ._mixture_numpy import mixture_terms

__all__ = ["KERNELS", "choose", "torch_terms", "numba_available"]


class _Kernels(dict):
    def __missing__(self, name):
        if name == "numba":
            from ._mixture_numba import mixture_terms_numba

            self["numba"] = mixture_terms_numba
            return mixture_terms_numba
        raise KeyError(name)


KERNELS = _Kernels(numpy=mixture_terms)

# Below this many (point, component) pairs the numpy reference is about as fast as the numba
# kernel (which runs such small calls on the calling thread alone): measured on a Zen 3 core,
# numpy vs numba log_prob at K = 8 and 64 points, d = 8 and 16, 0.18-0.23 vs 0.18-0.20 ms;
# at 256 points numba is 3x (d = 16) to 6x (d = 2) faster.
_NUMBA_MIN_WORK = 1 << 10
# Between the two, numba once its kernel is compiled in this process: a first call would
# otherwise wait for compilation (seconds; 0.2 s to load it from numba's disk cache, measured)
# for a call that numpy answers in milliseconds. But numpy is slow there (~100 ns per pair for
# d = 2, K = 8: 1.6 ms for 2000 points against ~0.03 ms in the generated kernel), so once this
# process has spent about as long in such numpy calls as loading would take, 2^21 pairs
# (~0.2 s), the next mid-sized call loads numba and all later ones use it (the rent-or-buy
# rule: never more than twice the better choice in hindsight).
_NUMBA_COMPILE_WORK = 1 << 15
_NUMPY_PAIRS_BEFORE_NUMBA = 1 << 21
_numpy_pairs = 0
_numba_ok = None


def numba_available() -> bool:
    """True when the numba kernels import (numba installed and the module compiles)."""
    global _numba_ok
    if _numba_ok is None:
        try:
            KERNELS["numba"]
            _numba_ok = True
        except Exception:  # numba missing or broken: the numpy reference still works
            _numba_ok = False
    return _numba_ok


def choose(backend: str, n: int, k: int, d: int, want, per_point: bool = False,
           dtype=None) -> str:
    """Pick the kernel for a numpy batch of ``n`` points and ``k`` components in ``d`` dims
    (``per_point``: one time per point rather than a common time; ``dtype``: the points'
    dtype, float64 unless float32)."""
    if backend == "numpy":
        return "numpy"
    if backend == "numba":
        if not numba_available():
            raise ValueError("backend: 'numba' was requested but numba is not available")
        return "numba" if "hessian" not in want and "resp" not in want else "numpy"
    if "hessian" in want or "resp" in want or n * k < _NUMBA_MIN_WORK or not numba_available():
        return "numpy"
    if n * k < _NUMBA_COMPILE_WORK:
        from ._mixture_numba import compiled_for

        global _numpy_pairs
        if (compiled_for(d, per_point, dtype or "float64", k)
                or _numpy_pairs >= _NUMPY_PAIRS_BEFORE_NUMBA):
            return "numba"
        _numpy_pairs += n * k
        return "numpy"
    return "numba"


def torch_terms(oracle, x, a, s2, want):
    """Evaluate the mixture terms on a torch tensor (dtype/device kept, differentiable)."""
    from ._mixture_torch import mixture_terms_torch

    return mixture_terms_torch(oracle, x, a, s2, want)
