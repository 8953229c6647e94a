r"""Products with the Jacobian of a score model, for divergence estimators.

A divergence estimator of the probability-flow velocity
:math:`v(x, t) = f(t) x - \tfrac12 g(t)^2 s(x, t)` needs the score :math:`s = \nabla\log p_t`
and products :math:`J V` with its Jacobian :math:`J = \partial s / \partial x` (the Hessian of
:math:`\log p_t` for an exact score), one (d, d) matrix per sample. :func:`linearize` evaluates
the score once at a batch (x, t) and returns a :class:`Linearization` whose ``matvec(V)`` maps
``V`` of shape (N, d, k) -- k vectors per sample -- to the k products per sample. Three ways:

``"oracle"``
    A :class:`~scorebench.analytic.MixtureOracle` with a numpy state: the mixture Hessian
    :math:`H = \sum_k \pi_k (g_k g_k^\top - C_k^{-1}) - s s^\top` (see
    :mod:`scorebench.analytic._mixture_numpy`) applied in factored form,
    :math:`C_k^{-1} V = U_k \mathrm{diag}(1/\lambda_k) U_k^\top V`, never forming H:
    O(K d^2 k) per sample, and quadratic forms :math:`v^\top H v` in half that.
``"hessian"``
    A model with an exact ``hessian(x, t)`` of shape (N, d, d): batched matrix products.
``"autograd"``
    Anything torch can differentiate: one forward pass with ``requires_grad``, then k
    vector-Jacobian products batched in one backward call
    (``torch.autograd.grad(..., is_grads_batched=True)``, which vmaps the backward pass; the
    forward pass is not vmapped, so models that validate their input with data-dependent Python
    control flow, as the oracle does, still work -- ``torch.func.vjp`` would wrap them and fail).
    It returns :math:`J^\top V`; for an exact score J is symmetric, and every trace estimator
    here is unchanged by a transpose (:math:`\mathrm{tr} J^\top = \mathrm{tr} J`,
    :math:`v^\top J^\top v = v^\top J v`). numpy states are wrapped into torch float64 tensors
    and the products returned as numpy.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._arrays import is_torch, time_to_numpy
from .problem import as_score_model

__all__ = ["JACOBIAN_METHODS", "Linearization", "linearize", "choose_jacobian"]

JACOBIAN_METHODS = ("auto", "oracle", "hessian", "autograd")

# Temporaries of the factored mixture products are kept near 2**22 float64 elements (32 MB).
_CHUNK_ELEMS = 1 << 22
_AUTOGRAD_CHUNK_ELEMS = 1 << 20


def _is_oracle(obj) -> bool:
    from ..analytic.oracle import MixtureOracle

    return type(obj) is MixtureOracle  # a subclass may override the score


def choose_jacobian(model, x, how: str = "auto") -> str:
    """The Jacobian route for ``model`` (a score model, possibly wrapped) at a state like ``x``."""
    if how not in JACOBIAN_METHODS:
        raise ValueError(f"jacobian: expected one of {', '.join(JACOBIAN_METHODS)}, got {how!r}")
    raw = getattr(as_score_model(model), "model", model)
    if how == "oracle" and not (_is_oracle(raw) and not is_torch(x)):
        raise ValueError("jacobian: 'oracle' needs a MixtureOracle model and a numpy state")
    if how == "hessian" and not callable(getattr(raw, "hessian", None)):
        raise ValueError(
            f"jacobian: 'hessian' needs a model with hessian(x, t); {type(raw).__name__} has none"
        )
    if how != "auto":
        return how
    if _is_oracle(raw) and not is_torch(x):
        return "oracle"
    if callable(getattr(raw, "hessian", None)) and not is_torch(x):
        return "hessian"
    return "autograd"


class Linearization:
    """The score at (x, t) and products with its Jacobian.

    Attributes
    ----------
    score : ndarray or Tensor, shape (N, d)
        The score, same kind and dtype as ``x``.

    Methods
    -------
    matvec(V)
        ``V`` of shape (N, d, k) -> the k products ``J V`` per sample, shape (N, d, k)
        (``J^T V`` on the autograd route).
    quad(V)
        ``V`` of shape (N, d, k) -> the quadratic forms ``v_j^T J v_j``, shape (N, k).
    """

    score = None

    def matvec(self, V):
        raise NotImplementedError

    def quad(self, V):
        return (V * self.matvec(V)).sum(1)


class _OracleLinearization(Linearization):
    r"""Factored mixture Hessian of a numpy :class:`MixtureOracle` (never forms H).

    With :math:`z_k = U_k^\top(x - a\mu_k)`, :math:`\zeta_k = z_k/\lambda_k` and, for a vector v,
    :math:`u_k = U_k^\top v`: :math:`g_k = -U_k\zeta_k`, :math:`g_k\cdot v = -\zeta_k\cdot u_k`,
    :math:`C_k^{-1}v = U_k(u_k/\lambda_k)`, so

    .. math::

        Hv = -\sum_k U_k\big[\pi_k(\zeta_k (g_k\cdot v) + u_k/\lambda_k)\big] - s\,(s\cdot v),
        \qquad
        v^\top H v = \sum_k \pi_k\big((g_k\cdot v)^2 - \textstyle\sum_e u_{ke}^2/\lambda_{ke}\big)
                     - (s\cdot v)^2 .

    The projections onto all K eigenbases, and the sum of the back-projections, are each one
    matrix multiply with the stacked eigenvectors (d x Kd).
    """

    def __init__(self, oracle, x, t):
        mix, sde = oracle.mix, oracle.sde
        t = time_to_numpy(t)
        a, s2 = sde.mean_coeff(t), sde.marginal_var(t)
        per = np.ndim(t) > 0
        ac = np.asarray(a)[:, None, None] if per else a
        s2c = np.asarray(s2)[:, None, None] if per else s2
        n, d = x.shape
        K = mix.K
        U = mix.eigvecs
        # stacked eigenvectors: x @ Ustack = [U_1^T x, ..., U_K^T x]; w @ Uback = sum_k U_k w_k
        self._Ustack = np.ascontiguousarray(U.transpose(1, 0, 2).reshape(d, K * d))
        self._Uback = np.ascontiguousarray(U.transpose(0, 2, 1).reshape(K * d, d))
        mt = np.einsum("kde,kd->ke", U, mix.means)
        z = (x @ self._Ustack).reshape(n, K, d) - ac * mt[None]
        var = ac * ac * mix.eigvals[None] + s2c
        if np.any(var <= 0.0):
            raise ValueError("t: the density at t = 0 does not exist for singular data; use t > 0")
        inv = np.broadcast_to(1.0 / var, z.shape)
        zi = z * inv
        logr = mix.log_weights[None] - 0.5 * (z * zi).sum(-1) - 0.5 * np.log(var).sum(-1)
        logr = logr - logr.max(axis=1, keepdims=True)
        pi = np.exp(logr)
        pi /= pi.sum(axis=1, keepdims=True)
        self.score = -((pi[:, :, None] * zi).reshape(n, K * d) @ self._Uback)
        self._inv, self._pi, self._zi, self._K = inv, pi, zi, K

    def _chunks(self, V):
        n, d, k = V.shape
        step = max(1, _CHUNK_ELEMS // max(1, self._K * d * k))
        return [slice(i, i + step) for i in range(0, n, step)]

    def _project(self, v):
        """u[n, j, k, e] = (U_k^T v_j)_e and g_k . v_j = -zeta_k . u_k, shape (n, j, K)."""
        n, d, k = v.shape
        u = (v.transpose(0, 2, 1).reshape(n * k, d) @ self._Ustack).reshape(n, k, self._K, d)
        return u

    def matvec(self, V):
        V = np.asarray(V, dtype=np.float64)
        out = np.empty_like(V)
        n_all, d, k = V.shape
        for sl in self._chunks(V):
            v = V[sl]
            n = v.shape[0]
            u = self._project(v)
            pi, zi, inv = self._pi[sl][:, None], self._zi[sl][:, None], self._inv[sl][:, None]
            gv = -(zi * u).sum(-1)  # (n, j, K)
            w = pi[..., None] * (zi * gv[..., None] + inv * u)  # (n, j, K, d)
            hv = -(w.reshape(n * k, self._K * d) @ self._Uback).reshape(n, k, d)
            s = self.score[sl]
            sv = np.einsum("nd,ndj->nj", s, v)
            out[sl] = hv.transpose(0, 2, 1) - s[:, :, None] * sv[:, None, :]
        return out

    def quad(self, V):
        V = np.asarray(V, dtype=np.float64)
        out = np.empty((V.shape[0], V.shape[2]))
        for sl in self._chunks(V):
            v = V[sl]
            u = self._project(v)
            pi, zi, inv = self._pi[sl][:, None], self._zi[sl][:, None], self._inv[sl][:, None]
            gv = -(zi * u).sum(-1)
            cq = (u * u * inv).sum(-1)
            sv = np.einsum("nd,ndj->nj", self.score[sl], v)
            out[sl] = (pi * (gv * gv - cq)).sum(-1) - sv * sv
        return out


def _call_hessian(raw, x, t):
    """``raw.hessian(x, t)`` with the ScoreModel's conventions for ``t`` and the array kind."""
    t = time_to_numpy(t)
    if is_torch(x) and np.ndim(t):
        import torch

        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    h = raw.hessian(x, t)
    n, d = x.shape
    if tuple(h.shape) != (n, d, d):
        raise ValueError(f"model: hessian returned shape {tuple(h.shape)}, expected {(n, d, d)}")
    return h


class _HessianLinearization(Linearization):
    """Batched products with an exact Hessian ``model.hessian(x, t)``, shape (N, d, d)."""

    def __init__(self, model, x, t):
        self.score = model.score(x, t)
        h = _call_hessian(model.model, x, t)
        if is_torch(x):
            self._H = h.to(x.dtype) if is_torch(h) else _torch_like(np.asarray(h), x)
        else:
            self._H = np.asarray(h.detach().cpu().numpy() if is_torch(h) else h, dtype=x.dtype)

    def matvec(self, V):
        return self._H @ V


def _torch_like(a, x):
    import torch

    return torch.as_tensor(a, dtype=x.dtype, device=x.device)


_BATCHED_GRAD_WARNING = "There is a performance drop because we have not yet implemented"


class _AutogradLinearization(Linearization):
    """Vector-Jacobian products of a torch-differentiable score, batched over vectors."""

    def __init__(self, model, x, t):
        import torch

        self._numpy = not is_torch(x)
        xt = torch.tensor(np.asarray(x), dtype=torch.float64) if self._numpy else x.detach()
        xt = xt.requires_grad_(True)
        try:
            with torch.enable_grad():
                s = model.score(xt, t)
        except (TypeError, RuntimeError) as exc:
            raise TypeError(
                f"model: autograd through {type(model.model).__name__} failed ({exc}); the exact "
                "divergence without a laplacian(x, t), and the Hutchinson estimators without a "
                "hessian(x, t), need a score written with torch operations"
            ) from exc
        if not (is_torch(s) and s.requires_grad):
            raise TypeError(
                f"model: the score of {type(model.model).__name__} is not differentiable by torch "
                "autograd (it returned a tensor without a gradient graph); give the model a "
                "laplacian(x, t) or hessian(x, t), or write it with torch operations"
            )
        self._x, self._s = xt, s
        self.score = s.detach().numpy() if self._numpy else s.detach()

    def matvec(self, V):
        import torch

        Vt = torch.as_tensor(np.array(V, dtype=np.float64)) if self._numpy else V
        n, d, k = Vt.shape
        # (k, N, d) batches of cotangents; the batched backward holds k copies of the model's
        # intermediates (k N K d for a mixture), so chunks are kept near 2**20 cotangent entries
        step = max(1, _AUTOGRAD_CHUNK_ELEMS // max(1, n * d))
        parts = []
        for j in range(0, k, step):
            cot = Vt[:, :, j : j + step].permute(2, 0, 1).contiguous().to(self._s.dtype)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_BATCHED_GRAD_WARNING)
                (g,) = torch.autograd.grad(
                    self._s, self._x, cot, retain_graph=True, is_grads_batched=True
                )
            parts.append(g.permute(1, 2, 0))
        out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        return out.detach().numpy() if self._numpy else out.detach()


def linearize(model, x, t, how: str = "auto") -> Linearization:
    """Evaluate the score at (x, t) and prepare products with its Jacobian.

    Parameters
    ----------
    model : score model
        Anything :func:`~scorebench.solvers.problem.as_score_model` accepts.
    x : ndarray or Tensor, shape (N, d)
    t : float or ndarray, shape (N,)
        Time(s), float64.
    how : {"auto", "oracle", "hessian", "autograd"}
        See the module docstring; ``"auto"`` takes the first that applies, in that order
        (``"hessian"`` only for numpy states).

    Returns
    -------
    Linearization
    """
    route = choose_jacobian(model, x, how)
    model = as_score_model(model)
    if route == "oracle":
        return _OracleLinearization(model.model, np.asarray(x, dtype=np.float64), t)
    if route == "hessian":
        return _HessianLinearization(model, x, t)
    return _AutogradLinearization(model, x, t)
