"""Input checks shared by the analytic oracles.

Every check raises ``ValueError`` (or ``TypeError``) whose message starts with the parameter's
name and says what was wrong. Nothing is clipped or coerced silently.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "is_torch",
    "check_positive_float",
    "check_finite_array",
    "check_points",
    "check_times",
]


def is_torch(x) -> bool:
    """True when ``x`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    mod = type(x).__module__
    return mod.startswith("torch")


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float after checking it is a finite real number > 0 (>= 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if allow_zero and value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")
    if not allow_zero and value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    return value


def check_finite_array(a, name: str, *, ndim: int | None = None, shape=None) -> np.ndarray:
    """Convert ``a`` to a float64 array and check its rank, shape and finiteness."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a real array, could not convert ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite entries (nan or inf)")
    return arr


def check_points(x, d: int, name: str = "x"):
    """Check that ``x`` is an (N, d) array or tensor of finite floats; return it unchanged.

    numpy floating arrays are returned as they are (float32 stays float32), integer arrays as
    float64, anything else (bool, complex, object) is rejected; torch inputs must be floating
    and are returned as they are (their dtype and device are kept).
    """
    if is_torch(x):
        import torch

        if not torch.is_floating_point(x):
            raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"{name}: expected shape (N, {d}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains non-finite entries (nan or inf)")
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "f":
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.float64)
        else:
            raise TypeError(f"{name}: expected a real floating-point array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{name}: expected shape (N, {d}), got {arr.shape}")
    # a finite sum means finite entries (nan and inf propagate); only a non-finite sum, which
    # finite entries can also give by overflow, needs the element-wise check (4x slower)
    if not np.isfinite(arr.sum()) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite entries (nan or inf)")
    return arr


def check_times(t, T: float, n: int | None = None, name: str = "t"):
    """Check a time: a finite scalar in [0, T], or a 1-D array of shape (n,) with entries in [0, T].

    Returns a Python float for scalars and a float64 array otherwise (torch tensors are moved to
    the CPU and converted to float64: time is always kept in double precision).
    """
    if is_torch(t):
        t = t.detach().to("cpu").double().numpy()
    if isinstance(t, bool):
        raise TypeError(f"{name}: expected a real time, got bool")
    arr = np.asarray(t, dtype=np.float64) if not isinstance(t, numbers.Real) else None
    if arr is None or arr.ndim == 0:
        value = float(t) if arr is None else float(arr)
        if not np.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value}")
        if value < 0.0 or value > T:
            raise ValueError(f"{name}: must lie in [0, T] = [0, {T}], got {value}")
        return value
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "(N,)"
        raise ValueError(f"{name}: expected a scalar or shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite entries (nan or inf)")
    if arr.size and (arr.min() < 0.0 or arr.max() > T):
        raise ValueError(
            f"{name}: must lie in [0, T] = [0, {T}], got values in [{arr.min()}, {arr.max()}]"
        )
    return arr
