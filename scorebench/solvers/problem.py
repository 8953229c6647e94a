r"""Score models and the reverse-time problem that every sampler step sees.

A score model is any callable ``score(x, t)`` (or an object with a ``score`` method): the exact
oracle, a plain function, a torch module. :func:`as_score_model` wraps it so the framework can
always call ``model.score(x, t)`` with ``t`` a float or a per-sample float64 array of shape
``(N,)``, numpy ``x`` giving numpy out and torch ``x`` torch out (same dtype and device).

:class:`ReverseProblem` bundles a score model with a forward SDE
:math:`dx = f(t) x\, dt + g(t)\, dW` and provides what a step may need:

.. math::

    v(x, t) = f(t) x - \tfrac12 g(t)^2 \nabla\log p_t(x) \quad\text{(probability-flow velocity)},
    \qquad
    b(x, t) = f(t) x - g(t)^2 \nabla\log p_t(x) \quad\text{(reverse-SDE drift)},

and counts score evaluations (``nfe``; one batched call counts once). Time is kept in float64
even when the state is float32: coefficients are evaluated on float64 times and turned into
Python floats (scalar ``t``) or state-dtype arrays (per-sample ``t``) before they multiply x.

References
----------
Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
ICLR 2021, Eqs. (6) and (13).
"""

from __future__ import annotations

import numpy as np

from ._arrays import coef_like, is_torch, time_to_numpy

__all__ = ["ScoreModel", "as_score_model", "ReverseProblem"]


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


class ScoreModel:
    """Uniform face of a score model: ``score(x, t)``, optional ``laplacian(x, t)``.

    Parameters
    ----------
    obj : callable or object with a ``score`` method
        The wrapped model. A ``torch.nn.Module`` is called with torch tensors (numpy input is
        converted and the output converted back, under ``torch.no_grad``) and ``t`` as a tensor
        of shape (N,) in the state's dtype; other callables get ``t`` as a Python float or a
        float64 array/tensor of shape (N,).

    Attributes
    ----------
    model : object
        The wrapped object.
    has_laplacian : bool
        Whether ``obj`` provides ``laplacian(x, t)`` (exact divergences).
    d : int or None
        The model's dimension when it declares one (``obj.d``).
    """

    def __init__(self, obj):
        fn = getattr(obj, "score", None)
        if not callable(fn):
            fn = obj if callable(obj) else None
        if fn is None:
            raise TypeError(
                f"model: expected a callable score(x, t) or an object with a score method, "
                f"got {type(obj).__name__}"
            )
        self.model = obj
        self._score = fn
        self._module = _is_torch_module(obj)
        lap = getattr(obj, "laplacian", None)
        self._laplacian = lap if callable(lap) else None
        sl = getattr(obj, "score_and_laplacian", None)
        self._score_and_laplacian = sl if callable(sl) else None
        d = getattr(obj, "d", None)
        self.d = int(d) if isinstance(d, (int, np.integer)) and not isinstance(d, bool) else None

    @property
    def has_laplacian(self) -> bool:
        return self._laplacian is not None

    @property
    def is_torch(self) -> bool:
        """True for torch modules (their inputs must be tensors)."""
        return self._module

    # -- argument and result conversion ---------------------------------------------------
    def _inputs(self, x, t):
        t = time_to_numpy(t)
        n = x.shape[0]
        if np.ndim(t) == 1 and t.shape[0] != n:
            raise ValueError(f"t: expected a scalar or shape ({n},), got {t.shape}")
        if np.ndim(t) > 1:
            raise ValueError(f"t: expected a scalar or shape ({n},), got {np.shape(t)}")
        if not (is_torch(x) or self._module):
            return x, t
        import torch

        xin = x if is_torch(x) else torch.from_numpy(np.require(x, requirements="W"))
        if self._module:
            t_vec = np.full(n, t) if np.ndim(t) == 0 else np.require(t, requirements="W")
            tin = torch.as_tensor(t_vec, dtype=xin.dtype, device=xin.device)
        elif np.ndim(t) == 1:
            tin = torch.as_tensor(np.require(t, requirements="W"), device=xin.device)
        else:
            tin = t
        return xin, tin

    @staticmethod
    def _output(out, x, shape, what: str):
        if is_torch(x):
            import torch

            if not is_torch(out):
                out = torch.as_tensor(np.asarray(out), device=x.device)
            if out.dtype != x.dtype:
                out = out.to(x.dtype)
        else:
            if is_torch(out):
                out = out.detach().to("cpu").numpy()
            out = np.asarray(out)
            if out.dtype != x.dtype:
                out = out.astype(x.dtype)
        if tuple(out.shape) != tuple(shape):
            raise ValueError(
                f"model: {what} returned shape {tuple(out.shape)}, expected {tuple(shape)}"
            )
        return out

    def _call(self, fn, x, t):
        xin, tin = self._inputs(x, t)
        if self._module and not is_torch(x):
            import torch

            with torch.no_grad():
                return fn(xin, tin)
        return fn(xin, tin)

    # -- public ---------------------------------------------------------------------------
    def score(self, x, t):
        """``grad log p_t(x)``, shape of ``x``; ``t`` a float or an (N,) array."""
        return self._output(self._call(self._score, x, t), x, x.shape, "score")

    __call__ = score

    def laplacian(self, x, t):
        """``Laplacian of log p_t(x)``, shape (N,); only when ``has_laplacian``."""
        if self._laplacian is None:
            raise TypeError(f"model: {type(self.model).__name__} has no laplacian(x, t)")
        return self._output(self._call(self._laplacian, x, t), x, (x.shape[0],), "laplacian")

    def score_and_laplacian(self, x, t):
        """Both at once (one model call when the model provides ``score_and_laplacian``)."""
        if self._score_and_laplacian is not None:
            s, lap = self._call(self._score_and_laplacian, x, t)
            return (
                self._output(s, x, x.shape, "score"),
                self._output(lap, x, (x.shape[0],), "laplacian"),
            )
        return self.score(x, t), self.laplacian(x, t)

    def __repr__(self) -> str:
        return f"ScoreModel({self.model!r})"


def as_score_model(obj) -> ScoreModel:
    """Wrap ``obj`` (a callable ``score(x, t)``, an object with ``.score``, a torch module).

    Returns ``obj`` itself when it is already a :class:`ScoreModel`.
    """
    return obj if isinstance(obj, ScoreModel) else ScoreModel(obj)


_SDE_METHODS = ("drift_coeff", "diffusion", "diffusion_sq")


class ReverseProblem:
    """A score model and a forward SDE: what one reverse-time step may need.

    Parameters
    ----------
    model : callable or ScoreModel
        Score model, wrapped with :func:`as_score_model`.
    sde : SDE
        Forward SDE (anything with ``T``, ``drift_coeff``, ``diffusion``, ``diffusion_sq``).

    Attributes
    ----------
    nfe : int
        Batched score evaluations so far (``score``, ``velocity``, ``reverse_drift`` and
        ``score_and_laplacian`` each count one).
    """

    def __init__(self, model, sde):
        self.model = as_score_model(model)
        missing = [m for m in _SDE_METHODS if not callable(getattr(sde, m, None))]
        if missing or not hasattr(sde, "T"):
            missing += [] if hasattr(sde, "T") else ["T"]
            raise TypeError(f"sde: {type(sde).__name__} lacks {', '.join(missing)}")
        self.sde = sde
        self.nfe = 0

    @property
    def has_laplacian(self) -> bool:
        return self.model.has_laplacian

    def score(self, x, t):
        """The model's score at (x, t); counts one NFE."""
        self.nfe += 1
        return self.model.score(x, time_to_numpy(t))

    def laplacian(self, x, t):
        """The model's exact Laplacian of log p_t (does not count as an NFE)."""
        return self.model.laplacian(x, time_to_numpy(t))

    def score_and_laplacian(self, x, t):
        """Score and Laplacian together; counts one NFE."""
        self.nfe += 1
        return self.model.score_and_laplacian(x, time_to_numpy(t))

    def drift_coeff(self, t):
        """f(t) (float for a float t, float64 array for an array)."""
        return self.sde.drift_coeff(time_to_numpy(t))

    def g(self, t):
        """g(t), the diffusion coefficient (float for a float t, float64 array for an array)."""
        return self.sde.diffusion(time_to_numpy(t))

    def g2(self, t):
        """g(t)^2."""
        return self.sde.diffusion_sq(time_to_numpy(t))

    def _linear_combination(self, x, t, score_weight: float):
        t = time_to_numpy(t)
        f = self.sde.drift_coeff(t)
        g2 = self.sde.diffusion_sq(t)
        s = self.score(x, t)
        return coef_like(f, x) * x - coef_like(score_weight * np.asarray(g2), x) * s

    def velocity(self, x, t):
        """Probability-flow velocity ``f(t) x - g(t)^2 / 2 * score(x, t)``."""
        return self._linear_combination(x, t, 0.5)

    def reverse_drift(self, x, t):
        """Reverse-SDE drift ``f(t) x - g(t)^2 * score(x, t)``."""
        return self._linear_combination(x, t, 1.0)

    def reset_nfe(self) -> None:
        self.nfe = 0

    def __repr__(self) -> str:
        return f"ReverseProblem({self.model.model!r}, {self.sde!r})"
