r"""The exact oracle: a Gaussian mixture pushed through a linear forward SDE.

For data :math:`\sum_k w_k N(\mu_k, \Sigma_k)` and kernel :math:`N(a(t) x_0, s(t)^2 I)`,

.. math:: p_t = \sum_k w_k N(a \mu_k, a^2 \Sigma_k + s^2 I)

is known exactly for every t, and with it the score, Hessian, Laplacian, the Tweedie denoiser
:math:`E[x_0 | x_t] = (x_t + s^2 \nabla \log p_t)/a`, the posterior over :math:`x_0`, the
probability-flow velocity :math:`v = f x - \tfrac12 g^2 \nabla\log p_t` with its divergence
:math:`d f - \tfrac12 g^2 \Delta \log p_t`, and, for one Gaussian component
:math:`N(\mu, U \Lambda U^\top)`, the exact PF-ODE flow map

.. math::

    x_t = a_t \mu + U\, \mathrm{diag}\big(\sqrt{\lambda(t)/\lambda(r)}\big)\, U^\top (x_r - a_r \mu),
    \qquad \log\det = \tfrac12 \sum_i \log(\lambda_i(t)/\lambda_i(r)),

with :math:`\lambda_i(t) = a(t)^2 \Lambda_i + s(t)^2`.

Backends: numpy float64 (reference), numba (fused, parallel over points) and torch (dtype and
device of the input kept, differentiable). numpy in -> numpy out, torch in -> torch out.
float32 numpy points give float32 results from every backend (the numba kernel for d <= 4 at a
common time computes them in float32, about twice as fast; the others compute in float64 and
round); any other floating numpy dtype gives float64.
"""

from __future__ import annotations

import numpy as np

from . import _backends
from ._validation import check_points, check_times, is_torch
from .mixture import GaussianMixture
from .sde import SDE

__all__ = ["MixtureOracle"]


class MixtureOracle:
    """Exact marginals, scores and flows of a Gaussian mixture under a linear SDE.

    Parameters
    ----------
    mix : GaussianMixture
        The data distribution p_0.
    sde : SDE
        The forward SDE (VPSDE, SubVPSDE, VESDE or LinearSDE).
    backend : {"auto", "numpy", "numba"}
        Backend for numpy inputs. ``"auto"`` uses the numba kernels when they are available
        and the batch has at least 32768 (point, component) pairs, or 1024 once the kernel for
        that shape is compiled in this process (no seconds of compilation for a call numpy
        answers in milliseconds); else numpy. torch inputs always use the torch backend.

    Notes
    -----
    The oracle is itself a score model: ``oracle(x, t)`` is ``oracle.score(x, t)``, and its
    ``laplacian`` gives exact divergences. ``t`` is a scalar or a per-point (N,) array.
    """

    def __init__(self, mix: GaussianMixture, sde: SDE, backend: str = "auto"):
        if not isinstance(mix, GaussianMixture):
            raise TypeError(f"mix: expected GaussianMixture, got {type(mix).__name__}")
        if not isinstance(sde, SDE):
            raise TypeError(f"sde: expected an SDE (VPSDE, SubVPSDE, VESDE, LinearSDE), got {type(sde).__name__}")
        if backend not in ("auto", "numpy", "numba"):
            raise ValueError(f"backend: expected 'auto', 'numpy' or 'numba', got {backend!r}")
        self.mix, self.sde, self.backend = mix, sde, backend
        self.d, self.K = mix.d, mix.K
        self._torch_cache = {}
        # a(t) and s(t)^2 come from _a and _s2 unless a subclass overrides the public methods
        self._plain_coeffs = (type(sde).mean_coeff is SDE.mean_coeff
                              and type(sde).marginal_var is SDE.marginal_var)
        self._singular = mix.is_singular  # a GaussianMixture's arrays are treated as immutable

    # ------------------------------------------------------------------ core
    def _coeffs(self, t, n):
        t = check_times(t, self.sde.T, n=n)
        if isinstance(t, float) and self._plain_coeffs:  # skip the public methods' re-validation
            tt = np.float64(t)
            return t, float(self.sde._a(tt)), float(self.sde._s2(tt))
        return t, self.sde.mean_coeff(t), self.sde.marginal_var(t)

    def _terms(self, x, t, want):
        x = check_points(x, self.d)
        t, a, s2 = self._coeffs(t, x.shape[0])
        self._check_density(t, s2)
        m = self.mix
        if is_torch(x):
            return _backends.torch_terms(self, x, a, s2, want)
        per_point = not isinstance(a, float) and np.ndim(a) > 0
        name = _backends.choose(self.backend, x.shape[0], self.K, self.d, want, per_point, x.dtype)
        out = _backends.KERNELS[name](x, m.means, m.eigvecs, m.eigvals, m.log_weights, a, s2, want)
        if x.dtype == np.float32:  # float32 points, float32 results, whichever kernel ran
            out = {k: v.astype(np.float32, copy=False) for k, v in out.items()}
        return out

    def _check_density(self, t, s2):
        if self._singular and np.any(np.asarray(s2) <= 0.0):
            raise ValueError(
                "t: the density at t = 0 does not exist for point-mass (singular) data; use t > 0"
            )

    def log_prob(self, x, t):
        """log p_t(x), shape (N,)."""
        return self._terms(x, t, ("logp",))["logp"]

    def score(self, x, t):
        """grad_x log p_t(x), shape (N, d)."""
        return self._terms(x, t, ("score",))["score"]

    __call__ = score

    def laplacian(self, x, t):
        """Laplacian (trace of the Hessian) of log p_t at x, shape (N,)."""
        return self._terms(x, t, ("laplacian",))["laplacian"]

    def score_and_laplacian(self, x, t):
        """Score and Laplacian in one pass: ((N, d), (N,))."""
        out = self._terms(x, t, ("score", "laplacian"))
        return out["score"], out["laplacian"]

    def hessian(self, x, t):
        """Hessian of log p_t at x, shape (N, d, d)."""
        return self._terms(x, t, ("hessian",))["hessian"]

    # ------------------------------------------------------------------ derived quantities
    def _scalar_coeff(self, fn, t, x):
        """Coefficient at t shaped to multiply x row-wise (float or (N, 1)), in x's array type."""
        c = fn(check_times(t, self.sde.T, n=x.shape[0]))
        if np.ndim(c) == 0:
            return float(c)
        c = np.asarray(c)[:, None]
        if is_torch(x):
            import torch

            return torch.as_tensor(c, dtype=x.dtype, device=x.device)
        # float32 points stay float32 (a float64 (N, 1) factor would promote the result)
        return c.astype(np.float32) if np.asarray(x).dtype == np.float32 else c

    def denoise(self, x, t):
        """Tweedie's denoiser E[x_0 | x_t = x] = (x + s^2 score) / a, shape (N, d)."""
        s = self.score(x, t)
        s2 = self._scalar_coeff(self.sde.marginal_var, t, x)
        a = self._scalar_coeff(self.sde.mean_coeff, t, x)
        return (x + s2 * s) / a

    def posterior(self, x, t):
        """Posterior of x_0 given x_t = x: (responsibilities, component means, component covs).

        Returns arrays of shapes (N, K), (N, K, d) and (K, d, d) (or (N, K, d, d) for per-point t).
        numpy only.
        """
        from ._mixture_numpy import posterior_terms

        if is_torch(x):
            raise TypeError("x: posterior() takes numpy arrays")
        x = check_points(x, self.d)
        t, a, s2 = self._coeffs(t, x.shape[0])
        self._check_density(t, s2)
        m = self.mix
        return posterior_terms(x, m.means, m.eigvecs, m.eigvals, m.log_weights, a, s2)

    def marginal(self, t) -> GaussianMixture:
        """The exact marginal p_t as a GaussianMixture."""
        t = check_times(t, self.sde.T)
        if np.ndim(t):
            raise ValueError("t: marginal() takes a scalar time")
        a, s2 = self.sde.mean_coeff(t), self.sde.marginal_var(t)
        covs = a * a * self.mix.covs + s2 * np.eye(self.d)[None]
        return GaussianMixture(self.mix.weights, a * self.mix.means, covs)

    def sample(self, n: int, t, rng: np.random.Generator) -> np.ndarray:
        """Exact samples of p_t: x_0 ~ p_0, then a x_0 + s z. Shape (n, d)."""
        t = check_times(t, self.sde.T)
        if np.ndim(t):
            raise ValueError("t: sample() takes a scalar time")
        x0 = self.mix.sample(n, rng)
        return self.sde.mean_coeff(t) * x0 + self.sde.marginal_std(t) * rng.standard_normal(x0.shape)

    def exact_log_prob_T(self, x):
        """log p_T(x), the exact prior at the horizon (an alternative to the default prior)."""
        return self.log_prob(x, self.sde.T)

    def velocity(self, x, t):
        """Probability-flow velocity v(x, t) = f(t) x - g(t)^2 / 2 * score, shape (N, d)."""
        f = self._scalar_coeff(self.sde.drift_coeff, t, x)
        g2 = self._scalar_coeff(self.sde.diffusion_sq, t, x)
        return f * x - 0.5 * g2 * self.score(x, t)

    def velocity_divergence(self, x, t):
        """div v = d f(t) - g(t)^2 / 2 * Laplacian log p_t(x), shape (N,)."""
        f = self._scalar_coeff(self.sde.drift_coeff, t, x)
        g2 = self._scalar_coeff(self.sde.diffusion_sq, t, x)
        lap = self.laplacian(x, t)
        if not isinstance(f, float):
            f, g2 = f[:, 0], g2[:, 0]
        return self.d * f - 0.5 * g2 * lap

    def reverse_drift(self, x, t):
        """Reverse-SDE drift f(t) x - g(t)^2 score, shape (N, d)."""
        f = self._scalar_coeff(self.sde.drift_coeff, t, x)
        g2 = self._scalar_coeff(self.sde.diffusion_sq, t, x)
        return f * x - g2 * self.score(x, t)

    def flow_map(self, x, r, t):
        """Exact PF-ODE map from time r to time t for a one-component mixture.

        Parameters
        ----------
        x : ndarray, shape (N, d)
            Points at time r.
        r, t : float
            Start and end times (either order).

        Returns
        -------
        x_t : ndarray, shape (N, d)
        logdet : float
            log |det d x_t / d x_r| = 1/2 sum_i log(lambda_i(t) / lambda_i(r)).
        """
        if self.K != 1:
            raise ValueError(f"mix: the exact flow map needs a one-component mixture, got K = {self.K}")
        if is_torch(x):
            raise TypeError("x: flow_map() takes numpy arrays")
        x = check_points(x, self.d)
        r = check_times(r, self.sde.T, name="r")
        t = check_times(t, self.sde.T, name="t")
        if np.ndim(r) or np.ndim(t):
            raise ValueError("t: flow_map() takes scalar times r and t")
        mu, U, lam = self.mix.means[0], self.mix.eigvecs[0], self.mix.eigvals[0]
        a_r, a_t = self.sde.mean_coeff(r), self.sde.mean_coeff(t)
        lam_r = a_r ** 2 * lam + self.sde.marginal_var(r)
        lam_t = a_t ** 2 * lam + self.sde.marginal_var(t)
        if np.any(lam_r <= 0) or np.any(lam_t <= 0):
            raise ValueError("t: the flow map of singular data is not defined at t = 0; use t > 0")
        ratio = np.sqrt(lam_t / lam_r)
        x_t = a_t * mu + ((x - a_r * mu) @ U) * ratio @ U.T
        return x_t, float(0.5 * np.sum(np.log(lam_t / lam_r)))

    def __repr__(self) -> str:
        return f"MixtureOracle({self.mix!r}, {self.sde!r})"
