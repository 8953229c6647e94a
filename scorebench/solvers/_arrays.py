"""Small helpers that let the solvers treat numpy arrays and torch tensors alike.

Time is always kept as float64 numpy data (a Python float for a scalar, a float64 ``ndarray`` of
shape ``(N,)`` per sample); states may be numpy arrays or torch tensors of any float dtype. These
helpers convert a time coefficient to something that multiplies a state of either kind, without
importing torch unless a tensor is actually present.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "is_torch",
    "time_to_numpy",
    "coef_like",
    "all_finite",
    "to_numpy",
    "index_rows",
    "like",
    "where_rows",
    "row_rms",
    "abs_max",
    "copy",
]


def is_torch(x) -> bool:
    """True when ``x`` is a ``torch.Tensor`` (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def time_to_numpy(t):
    """Return ``t`` as a Python float (scalar) or a 1-D float64 ndarray (per-sample times).

    torch tensors are detached, moved to the CPU and converted to float64.
    """
    if is_torch(t):
        t = t.detach().to("cpu").double().numpy()
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        return float(t)
    arr = np.asarray(t, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    return arr


def coef_like(c, x):
    """Make a time coefficient ``c`` (float or (N,) array) multiply a state ``x`` of shape (N, ...).

    A scalar becomes a Python float (so float32 tensors stay float32); an (N,) array is reshaped
    to (N, 1, ..., 1) and, for a torch state, becomes a tensor of the state's dtype and device.
    """
    if np.ndim(c) == 0:
        return float(c)
    c = np.asarray(c, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    if is_torch(x):
        import torch

        return torch.as_tensor(c, dtype=x.dtype, device=x.device)
    return c.astype(x.dtype, copy=False)


def all_finite(x) -> bool:
    """True when every entry of the array or tensor ``x`` is finite."""
    if is_torch(x):
        import torch

        return bool(torch.isfinite(x).all())
    return bool(np.all(np.isfinite(x)))


def to_numpy(x) -> np.ndarray:
    """A numpy view/copy of ``x`` (torch tensors are detached and moved to the CPU)."""
    if is_torch(x):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def index_rows(x, idx: np.ndarray):
    """``x[idx]`` for an integer index array, for numpy or torch ``x``."""
    if is_torch(x):
        import torch

        return x[torch.as_tensor(idx, dtype=torch.long, device=x.device)]
    return x[idx]


def like(a: np.ndarray, x):
    """Convert the numpy array ``a`` to the kind (numpy/torch), dtype and device of ``x``."""
    if is_torch(x):
        import torch

        return torch.as_tensor(np.asarray(a), dtype=x.dtype, device=x.device)
    return np.asarray(a, dtype=x.dtype)


def where_rows(mask: np.ndarray, a, b):
    """Row-wise select: row i of ``a`` where ``mask[i]`` is true, else row i of ``b``."""
    if is_torch(a):
        import torch

        m = torch.as_tensor(mask, dtype=torch.bool, device=a.device).reshape(
            (-1,) + (1,) * (a.ndim - 1)
        )
        return torch.where(m, a, b)
    return np.where(np.asarray(mask).reshape((-1,) + (1,) * (a.ndim - 1)), a, b)


def row_rms(a) -> np.ndarray:
    """Root mean square over all but the first axis, as a float64 numpy array of shape (N,)."""
    if is_torch(a):
        flat = a.reshape(a.shape[0], -1)
        return to_numpy((flat * flat).mean(dim=1).sqrt()).astype(np.float64)
    flat = np.asarray(a).reshape(a.shape[0], -1)
    return np.sqrt(np.mean(flat * flat, axis=1)).astype(np.float64, copy=False)


def abs_max(a, b):
    """Elementwise ``max(|a|, |b|)``."""
    if is_torch(a):
        import torch

        return torch.maximum(a.abs(), b.abs())
    return np.maximum(np.abs(a), np.abs(b))


def copy(x):
    """An independent copy of an array or tensor."""
    return x.clone() if is_torch(x) else np.array(x, copy=True)
