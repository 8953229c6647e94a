r"""Score-model adapters: epsilon-prediction and denoiser networks, and a perturbed oracle.

With the kernel :math:`x_t = a_t x_0 + s_t \epsilon` a network may predict the noise
:math:`\hat\epsilon(x, t) \approx E[\epsilon \mid x_t = x]` or the data
:math:`D(x, t) \approx E[x_0 \mid x_t = x]`; by Tweedie's formula the score is

.. math::

    \nabla\log p_t(x) = -\frac{\hat\epsilon(x, t)}{s_t}
                      = \frac{a_t D(x, t) - x}{s_t^2}.

:class:`EpsilonModelAdapter` and :class:`DenoiserAdapter` turn such torch modules into score
models (``score(x, t)``, numpy in -> numpy out, torch in -> torch out and differentiable).
Plain callables ``score(x, t)`` need no adapter: :func:`~scorebench.solvers.problem.as_score_model`
wraps them.

:class:`~scorebench.solvers.perturbed_oracle.PerturbedOracle` (re-exported here) is the exact score
plus a known error, for sensitivity studies.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._arrays import coef_like, is_torch, time_to_numpy
from .perturbed_oracle import PerturbedOracle

__all__ = ["EpsilonModelAdapter", "DenoiserAdapter", "PerturbedOracle"]


def _module_dtype_device(module):
    params = getattr(module, "parameters", None)
    if callable(params):
        for p in params():
            return p.dtype, p.device
    return None, None


class _TorchAdapter:
    """Shared conversion: call a torch module on (x, t), turn its output into a score."""

    what = "output"

    def __init__(self, module, sde):
        if not callable(module):
            raise TypeError(
                f"module: expected a callable torch module, got {type(module).__name__}"
            )
        for attr in ("mean_coeff", "marginal_var"):
            if not callable(getattr(sde, attr, None)):
                raise TypeError(f"sde: {type(sde).__name__} lacks {attr}(t)")
        self.module = module
        self.sde = sde
        d = getattr(module, "d", None)
        self.d = int(d) if isinstance(d, numbers.Integral) and not isinstance(d, bool) else None

    def _times(self, x, t):
        t = time_to_numpy(t)
        n = x.shape[0]
        if np.ndim(t) > 1 or (np.ndim(t) == 1 and t.shape[0] != n):
            raise ValueError(f"t: expected a scalar or shape ({n},), got {np.shape(t)}")
        s2 = np.asarray(self.sde.marginal_var(t), dtype=np.float64)
        if np.any(s2 <= 0.0):
            raise ValueError(f"t: the adapter needs t > 0 (s(t) = 0 at t = 0), got {t!r}")
        return t

    def _run(self, x, t):
        """Module output for x (torch or numpy) at times t (float or (N,) float64)."""
        import torch

        if getattr(x, "ndim", None) != 2:
            raise ValueError(f"x: expected shape (N, d), got {tuple(getattr(x, 'shape', ()))}")
        if is_torch(x):
            tin = torch.as_tensor(np.full(x.shape[0], t), dtype=x.dtype, device=x.device)
            out = self.module(x, tin)
        else:
            dtype, device = _module_dtype_device(self.module)
            xin = torch.as_tensor(np.asarray(x))
            xin = xin.to(dtype=dtype or xin.dtype, device=device or xin.device)
            tin = torch.as_tensor(np.full(x.shape[0], t), dtype=xin.dtype, device=xin.device)
            with torch.no_grad():
                out = self.module(xin, tin)
            out = out.detach().to("cpu").numpy().astype(np.asarray(x).dtype, copy=False)
        if tuple(out.shape) != tuple(x.shape):
            raise ValueError(
                f"module: returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}"
            )
        if is_torch(x) and out.dtype != x.dtype:
            out = out.to(x.dtype)
        return out

    def __call__(self, x, t):
        return self.score(x, t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.module!r}, {self.sde!r})"


class EpsilonModelAdapter(_TorchAdapter):
    r"""Score model from a noise predictor: :math:`\nabla\log p_t(x) = -\hat\epsilon(x, t)/s_t`.

    Parameters
    ----------
    module : torch.nn.Module or callable
        ``module(x, t)`` with x a tensor (N, d) and t a tensor (N,) in x's dtype and device,
        returning :math:`\hat\epsilon` of shape (N, d).
    sde : SDE
        The forward SDE the module was trained for (gives :math:`s_t`).

    Notes
    -----
    torch ``x`` is passed as is (the result is differentiable). numpy ``x`` is converted to a
    tensor in the dtype and on the device of the module's parameters (if it has any), evaluated
    under ``torch.no_grad`` and returned as a numpy array of the input's dtype. ``t`` must be > 0.
    """

    def score(self, x, t):
        """Score at (x, t), shape (N, d)."""
        t = self._times(x, t)
        eps = self._run(x, t)
        s = np.sqrt(np.asarray(self.sde.marginal_var(t), dtype=np.float64))
        return -eps / coef_like(s, eps)


class DenoiserAdapter(_TorchAdapter):
    r"""Score model from a denoiser: :math:`\nabla\log p_t(x) = (a_t D(x, t) - x) / s_t^2`.

    Parameters
    ----------
    module : torch.nn.Module or callable
        ``module(x, t)`` returning :math:`D(x, t) \approx E[x_0 \mid x_t = x]`, shape (N, d);
        called as for :class:`EpsilonModelAdapter`.
    sde : SDE
    """

    def score(self, x, t):
        """Score at (x, t), shape (N, d)."""
        t = self._times(x, t)
        den = self._run(x, t)
        a = coef_like(self.sde.mean_coeff(t), den)
        s2 = coef_like(self.sde.marginal_var(t), den)
        return (a * den - x) / s2
