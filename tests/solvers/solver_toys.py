"""Hand-written exact problems for the solver tests (independent of scorebench.analytic).

``ToyVPSDE`` is the VP SDE with a linear beta schedule written out in closed form, and
``GaussianScore`` the exact score of isotropic Gaussian data ``N(mu, var0 I)`` under it, with its
exact probability-flow map: ``p_t = N(a mu, (a^2 var0 + s^2) I)`` and the PF-ODE carries
``x_r`` to ``x_t = a_t mu + sqrt(lam_t / lam_r) (x_r - a_r mu)`` with ``lam = a^2 var0 + s^2``.
"""

from __future__ import annotations

import numpy as np


def _out(t, v):
    return float(v) if np.ndim(t) == 0 else v


class ToyVPSDE:
    """dx = -beta(t)/2 x dt + sqrt(beta(t)) dW, beta(t) = bmin + t (bmax - bmin), T = 1."""

    T = 1.0
    prior_std = 1.0

    def __init__(self, beta_min=0.1, beta_max=20.0):
        self.bmin, self.bmax = beta_min, beta_max

    def _B(self, t):
        return self.bmin * t + 0.5 * (self.bmax - self.bmin) * t * t

    def drift_coeff(self, t):
        t = np.asarray(t, dtype=np.float64)
        return _out(t, -0.5 * (self.bmin + t * (self.bmax - self.bmin)))

    def diffusion_sq(self, t):
        t = np.asarray(t, dtype=np.float64)
        return _out(t, self.bmin + t * (self.bmax - self.bmin))

    def diffusion(self, t):
        return _out(np.asarray(t), np.sqrt(self.diffusion_sq(t)))

    def mean_coeff(self, t):
        return _out(np.asarray(t), np.exp(-0.5 * self._B(np.asarray(t, dtype=np.float64))))

    def marginal_var(self, t):
        return _out(np.asarray(t), -np.expm1(-self._B(np.asarray(t, dtype=np.float64))))

    def log_snr(self, t):
        B = self._B(np.asarray(t, dtype=np.float64))
        return _out(np.asarray(t), -B - np.log(-np.expm1(-B)))

    def t_from_log_snr(self, lam):
        lam = np.asarray(lam, dtype=np.float64)
        B = np.logaddexp(0.0, -lam)
        db = self.bmax - self.bmin
        return _out(lam, 2.0 * B / (self.bmin + np.sqrt(self.bmin**2 + 2.0 * db * B)))

    def prior_sample(self, n, d, rng):
        return rng.standard_normal((n, d))


class GaussianScore:
    """Exact score of N(mu, var0 I) data under ``sde``; a score model with ``.laplacian``."""

    def __init__(self, mu, var0, sde):
        self.mu = np.asarray(mu, dtype=np.float64)
        self.var0 = float(var0)
        self.sde = sde
        self.d = self.mu.shape[0]
        self.calls = 0

    def _lam(self, t):
        return self.sde.mean_coeff(t) ** 2 * self.var0 + self.sde.marginal_var(t)

    def score(self, x, t):
        self.calls += 1
        a = np.reshape(self.sde.mean_coeff(t), (-1, 1))
        lam = np.reshape(self._lam(t), (-1, 1))
        if type(x).__module__.startswith("torch"):
            import torch

            a = torch.as_tensor(a, dtype=x.dtype)
            lam = torch.as_tensor(lam, dtype=x.dtype)
            return -(x - a * torch.as_tensor(self.mu, dtype=x.dtype)) / lam
        return -(x - a * self.mu) / lam

    __call__ = score

    def laplacian(self, x, t):
        return np.broadcast_to(-self.d / np.asarray(self._lam(t)), (x.shape[0],)).copy()

    def flow_map(self, x, r, t):
        """Exact PF-ODE map from time r to time t."""
        ar, at = self.sde.mean_coeff(r), self.sde.mean_coeff(t)
        return at * self.mu + np.sqrt(self._lam(t) / self._lam(r)) * (x - ar * self.mu)


def fitted_slope(h, err):
    """Least-squares slope of log(err) against log(h)."""
    return float(np.polyfit(np.log(h), np.log(err), 1)[0])
