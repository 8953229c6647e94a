r"""A perturbed oracle: the exact score plus a controlled error delta(x, t).

:class:`PerturbedOracle` is the exact score plus a known error :math:`\delta(x, t)`, for
separating score error from discretisation error. Its exact effect on samples is known in two
cases, for a one-component Gaussian oracle :math:`N(\mu, U\Lambda U^\top)` with
:math:`\lambda_i(t) = a_t^2\Lambda_i + s_t^2` (:meth:`PerturbedOracle.flow_map`):

* ``scaled(oracle, c)``: the score :math:`c\,\nabla\log p_t`. Since
  :math:`\tfrac12 g^2/\lambda_i = \tfrac12 \frac{d}{dt}\log\lambda_i - f`, the PF-ODE for
  :math:`y = U^\top(x - a_t\mu)` decouples into
  :math:`\dot y_i = [(1 - c) f + \tfrac c2 \frac{d}{dt}\log\lambda_i]\, y_i`, so

  .. math:: y_i(t) = \Big(\frac{a_t}{a_r}\Big)^{1-c}
                     \Big(\frac{\lambda_i(t)}{\lambda_i(r)}\Big)^{c/2} y_i(r),

  the mean :math:`a_t\mu` is untouched and a Gaussian :math:`N(a_T\mu, \tau^2 I)` at T maps to
  :math:`N(a_\varepsilon\mu, U\,\mathrm{diag}(\tau^2 (a_\varepsilon/a_T)^{2(1-c)}
  (\lambda_i(\varepsilon)/\lambda_i(T))^{c})\,U^\top)` (c = 1: the exact map).
* ``constant_bias(oracle, b)``: the score plus a constant vector b. Then
  :math:`\dot y_i = \tfrac12 \frac{d}{dt}\log\lambda_i\, y_i - \tfrac12 g^2 b_i` with
  :math:`b_i = (U^\top b)_i`, so

  .. math:: y_i(t) = \sqrt{\frac{\lambda_i(t)}{\lambda_i(r)}}\, y_i(r)
                     - \frac{b_i}{2}\sqrt{\lambda_i(t)}
                       \int_r^t \frac{g(u)^2}{\sqrt{\lambda_i(u)}}\,du,
          \qquad \int_r^t \frac{g^2}{\sqrt{\lambda_i}} = 2\big(\sqrt{\lambda_i(t)} -
          \sqrt{\lambda_i(r)}\big) - 2\int_r^t f \sqrt{\lambda_i}\, du,

  a pure shift of every path (covariance and log-determinant unchanged); for VE (f = 0) the shift
  is :math:`-b_i(\lambda_i(t) - \sqrt{\lambda_i(t)\lambda_i(r)})` in closed form, otherwise the
  smooth remaining integral is computed by adaptive quadrature.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..analytic.sde import VESDE
from ._arrays import is_torch, like

__all__ = ["PerturbedOracle"]


class PerturbedOracle:
    r"""The exact score plus a controlled error: ``score = oracle.score(x, t) + delta(x, t)``.

    Parameters
    ----------
    oracle : MixtureOracle or score model
        The exact score (anything with ``score(x, t)``).
    delta : callable
        ``delta(x, t)`` of the shape of ``x`` (numpy or torch, as ``x``).
    divergence : callable, optional
        ``divergence(x, t)`` = :math:`\nabla\cdot\delta`, shape (N,). When it is given and the
        oracle has ``laplacian``, the perturbed model has the exact
        ``laplacian = oracle.laplacian + divergence`` (exact likelihood divergences).

    Attributes
    ----------
    kind : str
        ``"custom"``, ``"scaled"`` or ``"constant_bias"``.
    factor, bias : float or ndarray
        The parameter of the named constructors (``None`` otherwise).

    Notes
    -----
    ``error(x, t)`` returns ``delta(x, t)``: the model's score error, exactly.
    """

    def __init__(self, oracle, delta, divergence=None):
        if not callable(getattr(oracle, "score", None)):
            raise TypeError(
                f"oracle: expected an object with score(x, t), got {type(oracle).__name__}"
            )
        if not callable(delta):
            raise TypeError(f"delta: expected a callable delta(x, t), got {type(delta).__name__}")
        if divergence is not None and not callable(divergence):
            raise TypeError(
                f"divergence: expected a callable divergence(x, t) or None, got "
                f"{type(divergence).__name__}"
            )
        self.oracle = oracle
        self.delta = delta
        self.kind = "custom"
        self.factor = None
        self.bias = None
        d = getattr(oracle, "d", None)
        self.d = int(d) if isinstance(d, numbers.Integral) and not isinstance(d, bool) else None
        self.sde = getattr(oracle, "sde", None)
        if divergence is not None and callable(getattr(oracle, "laplacian", None)):
            self._divergence = divergence
            # Only models with an exact divergence expose laplacian (the framework checks for it).
            self.laplacian = self._laplacian
            self.score_and_laplacian = self._score_and_laplacian

    # -- named constructors -------------------------------------------------------------------
    @classmethod
    def scaled(cls, oracle, factor: float) -> PerturbedOracle:
        r"""The score ``factor * oracle.score``: ``delta = (factor - 1) * score``."""
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise ValueError(f"factor: expected a real number, got {factor!r}")
        factor = float(factor)
        if not np.isfinite(factor):
            raise ValueError(f"factor: must be finite, got {factor}")
        c = factor - 1.0

        def delta(x, t):
            return c * oracle.score(x, t)

        def divergence(x, t):
            return c * oracle.laplacian(x, t)

        model = cls(oracle, delta, divergence)
        model.kind, model.factor = "scaled", factor
        return model

    @classmethod
    def constant_bias(cls, oracle, vector) -> PerturbedOracle:
        """The score plus a constant vector ``b`` of shape (d,) (divergence 0)."""
        b = np.asarray(vector, dtype=np.float64)
        d = getattr(oracle, "d", None)
        if b.ndim != 1 or (d is not None and b.shape[0] != d):
            want = d if d is not None else "d"
            raise ValueError(f"vector: expected shape ({want},), got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError("vector: contains non-finite entries (nan or inf)")

        def delta(x, t):
            if x.shape[-1] != b.shape[0]:
                raise ValueError(f"x: expected shape (N, {b.shape[0]}), got {tuple(x.shape)}")
            out = like(b, x)
            if is_torch(x):
                return out.expand(x.shape).clone()
            return np.broadcast_to(out, x.shape).copy()

        def divergence(x, t):
            z = np.zeros(x.shape[0])
            return like(z, x)

        model = cls(oracle, delta, divergence)
        model.kind, model.bias = "constant_bias", b.copy()
        return model

    # -- score model face ----------------------------------------------------------------------
    def score(self, x, t):
        """``oracle.score(x, t) + delta(x, t)``, shape of ``x``."""
        return self.oracle.score(x, t) + self.delta(x, t)

    __call__ = score

    def error(self, x, t):
        """The score error ``delta(x, t)``."""
        return self.delta(x, t)

    def _laplacian(self, x, t):
        return self.oracle.laplacian(x, t) + self._divergence(x, t)

    def _score_and_laplacian(self, x, t):
        return self.score(x, t), self._laplacian(x, t)

    # -- exact effect on the probability-flow map ---------------------------------------------
    def flow_map(self, x, r, t):
        r"""Exact PF-ODE map of the perturbed model from r to t (one-component Gaussian oracle).

        Available for ``scaled`` and ``constant_bias`` models of a
        :class:`~scorebench.analytic.oracle.MixtureOracle` with K = 1; formulas in the module
        docstring.

        Parameters
        ----------
        x : ndarray, shape (N, d)
        r, t : float
            Start and end times, both > 0 for singular (point-mass) data.

        Returns
        -------
        x_t : ndarray, shape (N, d)
        logdet : float
            ``log |det d x_t / d x_r|``.
        """
        if self.kind not in ("scaled", "constant_bias"):
            raise ValueError(
                "kind: the exact flow map is known for scaled and constant_bias models only, "
                f"got {self.kind!r}"
            )
        mix = getattr(self.oracle, "mix", None)
        if mix is None or self.sde is None or mix.K != 1:
            raise ValueError("oracle: the exact flow map needs a MixtureOracle with one component")
        if is_torch(x):
            raise TypeError("x: flow_map() takes numpy arrays")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != mix.d or not np.all(np.isfinite(x)):
            raise ValueError(f"x: expected a finite array of shape (N, {mix.d}), got {x.shape}")
        sde = self.sde
        r, t = float(sde.check_time(r, "r")), float(sde.check_time(t, "t"))
        mu, U, lam0 = mix.means[0], mix.eigvecs[0], mix.eigvals[0]

        def lam(u):
            return sde.mean_coeff(u) ** 2 * lam0 + sde.marginal_var(u)

        lam_r, lam_t = lam(r), lam(t)
        if np.any(lam_r <= 0) or np.any(lam_t <= 0):
            raise ValueError("t: the flow map of singular data is not defined at t = 0; use t > 0")
        a_r, a_t = sde.mean_coeff(r), sde.mean_coeff(t)
        y = (x - a_r * mu) @ U
        if self.kind == "scaled":
            c = self.factor
            gain = (a_t / a_r) ** (1.0 - c) * (lam_t / lam_r) ** (0.5 * c)
            y_t = y * gain
        else:
            gain = np.sqrt(lam_t / lam_r)
            b = U.T @ self.bias
            y_t = y * gain - 0.5 * b * np.sqrt(lam_t) * self._bias_integral(lam, r, t)
        x_t = a_t * mu + y_t @ U.T
        return x_t, float(np.sum(np.log(gain)))

    def _bias_integral(self, lam, r, t):
        r"""``int_r^t g^2 / sqrt(lambda_i)`` per direction, via ``g^2 = lambda' - 2 f lambda``."""
        from scipy.integrate import quad_vec

        sde = self.sde
        closed = 2.0 * (np.sqrt(lam(t)) - np.sqrt(lam(r)))
        if isinstance(sde, VESDE):
            return closed
        rest, _ = quad_vec(
            lambda u: sde.drift_coeff(u) * np.sqrt(lam(u)), r, t, epsabs=0.0, epsrel=1e-13
        )
        return closed - 2.0 * rest

    def __repr__(self) -> str:
        extra = {"scaled": f", factor={self.factor}", "constant_bias": f", bias={self.bias!r}"}
        return f"PerturbedOracle({self.oracle!r}, kind={self.kind!r}{extra.get(self.kind, '')})"
