r"""Linear forward SDEs with closed-form perturbation kernels.

Every family here is a linear SDE on :math:`[0, T]`

.. math:: dx = f(t)\, x\, dt + g(t)\, dW,

whose kernel is :math:`x_t \mid x_0 \sim N(a(t) x_0, s(t)^2 I)` with
:math:`a(t) = \exp\int_0^t f` and :math:`s(t)^2 = a(t)^2 \int_0^t g(u)^2 / a(u)^2\, du`, so that
:math:`a(0) = 1`, :math:`s(0) = 0` and :math:`p_0` is the data exactly.

=========  ==============  ===================================  ==============  =================
family     f(t)            g(t)^2                               a(t)            s(t)^2
=========  ==============  ===================================  ==============  =================
VP         -beta(t)/2      beta(t)                              exp(-B/2)       1 - exp(-B)
sub-VP     -beta(t)/2      beta(t) (1 - exp(-2B))               exp(-B/2)       (1 - exp(-B))^2
VE         0               2 ln(smax/smin) sigma(t)^2           1               sigma^2 - smin^2
=========  ==============  ===================================  ==============  =================

with :math:`\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})`, :math:`B(t) = \int_0^t \beta`
and :math:`\sigma(t) = \sigma_{min} (\sigma_{max}/\sigma_{min})^t`.

References
----------
Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole, "Score-Based Generative Modeling through
Stochastic Differential Equations", ICLR 2021.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_finite_array, check_positive_float, check_times, is_torch

__all__ = ["SDE", "VPSDE", "SubVPSDE", "VESDE"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _out(t, value):
    """Return a Python float for scalar ``t`` and an array otherwise."""
    return float(value) if np.ndim(t) == 0 else value


class SDE:
    """Base class of linear forward SDEs ``dx = f(t) x dt + g(t) dW``.

    Subclasses implement ``_f``, ``_g2``, ``_a`` and ``_s2`` on float64 arrays; the public methods
    validate ``t`` (finite, in ``[0, T]``) and are vectorised: a scalar in gives a float out, an
    array in gives an array out.
    """

    name = "sde"
    T = 1.0

    # --- subclasses fill these in (t is a float64 ndarray, already validated) ---
    def _f(self, t):
        raise NotImplementedError

    def _g2(self, t):
        raise NotImplementedError

    def _a(self, t):
        raise NotImplementedError

    def _s2(self, t):
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Standard deviation of the default prior ``N(0, prior_std^2 I)`` at ``t = T``."""
        return 1.0

    # --- public, validated ---
    def check_time(self, t, name: str = "t"):
        """Validate a time (scalar or 1-D array) against ``[0, T]`` and return it as float64."""
        return check_times(t, self.T, name=name)

    def _eval(self, fn, t):
        t = self.check_time(t)
        return _out(t, fn(np.asarray(t, dtype=np.float64)))

    def drift_coeff(self, t):
        """f(t), the linear drift coefficient."""
        return self._eval(self._f, t)

    def diffusion_sq(self, t):
        """g(t)^2, the squared diffusion coefficient."""
        return self._eval(self._g2, t)

    def diffusion(self, t):
        """g(t), the diffusion coefficient."""
        return self._eval(lambda u: np.sqrt(self._g2(u)), t)

    def mean_coeff(self, t):
        """a(t) = exp(int_0^t f), the kernel's mean coefficient."""
        return self._eval(self._a, t)

    def marginal_var(self, t):
        """s(t)^2, the kernel's variance."""
        return self._eval(self._s2, t)

    def marginal_std(self, t):
        """s(t), the kernel's standard deviation."""
        return self._eval(lambda u: np.sqrt(self._s2(u)), t)

    def log_snr(self, t):
        """lambda(t) = log(a(t)^2 / s(t)^2), decreasing in t; +inf at t = 0."""
        def fn(u):
            with np.errstate(divide="ignore"):
                return 2.0 * np.log(self._a(u)) - np.log(self._s2(u))

        return self._eval(fn, t)

    def t_from_log_snr(self, lam):
        """Inverse of :meth:`log_snr`: the time at which log(a^2/s^2) equals ``lam``."""
        lam_arr = np.asarray(lam, dtype=np.float64)
        if np.any(np.isnan(lam_arr)):
            raise ValueError("lam: contains nan")
        t = self._t_from_log_snr(lam_arr)
        if np.any(t < 0) or np.any(t > self.T * (1 + 1e-12)):
            raise ValueError(
                f"lam: outside the range of log_snr on [0, T]; lam must be >= {self.log_snr(self.T)}"
            )
        return _out(lam, np.minimum(t, self.T))

    def _t_from_log_snr(self, lam):
        raise NotImplementedError

    def prior_sample(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points from the default prior ``N(0, prior_std^2 I_d)``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d: expected a positive integer, got {d!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
        return self.prior_std * rng.standard_normal((int(n), int(d)))

    def prior_log_prob(self, x):
        """log N(x; 0, prior_std^2 I) for x of shape (N, d); numpy or torch."""
        if is_torch(x):
            import torch

            if x.ndim != 2 or not bool(torch.isfinite(x).all()):
                raise ValueError("x: expected a finite (N, d) tensor")
            d = x.shape[1]
            v = self.prior_std ** 2
            return -0.5 * (x * x).sum(dim=1) / v - 0.5 * d * (_LOG_2PI + np.log(v))
        x = check_finite_array(x, "x", ndim=2)
        d = x.shape[1]
        v = self.prior_std ** 2
        return -0.5 * np.einsum("nd,nd->n", x, x) / v - 0.5 * d * (_LOG_2PI + np.log(v))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self) -> dict:
        return {}

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self._params().items()))))


class _BetaLinear(SDE):
    """Shared linear-beta schedule of the VP and sub-VP families."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        self.beta_min = check_positive_float(beta_min, "beta_min")
        self.beta_max = check_positive_float(beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError(
                f"beta_max: must be >= beta_min = {self.beta_min}, got {self.beta_max}"
            )
        self.T = check_positive_float(T, "T")

    def _params(self):
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "T": self.T}

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _B(self, t):
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def _t_from_B(self, B):
        # Positive root of (db/2) t^2 + beta_min t - B = 0 in the cancellation-free form.
        db = self.beta_max - self.beta_min
        return 2.0 * B / (self.beta_min + np.sqrt(self.beta_min ** 2 + 2.0 * db * B))

    def _f(self, t):
        return -0.5 * self._beta(t)

    def _a(self, t):
        return np.exp(-0.5 * self._B(t))


class VPSDE(_BetaLinear):
    """Variance-preserving SDE: f = -beta/2, g^2 = beta, a = e^{-B/2}, s^2 = 1 - e^{-B}."""

    name = "vp"

    def _g2(self, t):
        return self._beta(t)

    def _s2(self, t):
        return -np.expm1(-self._B(t))

    def _t_from_log_snr(self, lam):
        # e^{-B} / (1 - e^{-B}) = e^lam  =>  B = log(1 + e^{-lam})
        return self._t_from_B(np.logaddexp(0.0, -lam))


class SubVPSDE(_BetaLinear):
    """Sub-VP SDE: f = -beta/2, g^2 = beta (1 - e^{-2B}), a = e^{-B/2}, s^2 = (1 - e^{-B})^2."""

    name = "subvp"

    def _g2(self, t):
        return self._beta(t) * (-np.expm1(-2.0 * self._B(t)))

    def _s2(self, t):
        return np.expm1(-self._B(t)) ** 2

    def _t_from_log_snr(self, lam):
        # u = e^{-B/2} solves u / (1 - u^2) = c with c = e^{lam/2}: u = 2c / (1 + sqrt(1 + 4c^2)).
        c = np.exp(0.5 * lam)
        u = 2.0 * c / (1.0 + np.sqrt(1.0 + 4.0 * c * c))
        return self._t_from_B(-2.0 * np.log(u))


class VESDE(SDE):
    """Variance-exploding SDE: f = 0, g^2 = 2 ln(smax/smin) sigma(t)^2, a = 1, s^2 = sigma^2 - smin^2.

    The kernel is exact for the SDE as written (Song et al. use sigma(t) as the kernel std, i.e.
    data pre-blurred by sigma_min). The default prior is N(0, sigma_max^2 I).
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0):
        self.sigma_min = check_positive_float(sigma_min, "sigma_min")
        self.sigma_max = check_positive_float(sigma_max, "sigma_max")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"sigma_max: must be > sigma_min = {self.sigma_min}, got {self.sigma_max}"
            )
        self.T = check_positive_float(T, "T")
        self._log_ratio = float(np.log(self.sigma_max / self.sigma_min))

    def _params(self):
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "T": self.T}

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def _sigma(self, t):
        return self.sigma_min * np.exp(self._log_ratio * t / self.T)

    def _f(self, t):
        return np.zeros_like(t)

    def _g2(self, t):
        return 2.0 * self._log_ratio / self.T * self._sigma(t) ** 2

    def _a(self, t):
        return np.ones_like(t)

    def _s2(self, t):
        return self.sigma_min ** 2 * np.expm1(2.0 * self._log_ratio * t / self.T)

    def _t_from_log_snr(self, lam):
        # s^2 = e^{-lam} = smin^2 (e^{2 L t / T} - 1)
        return self.T * np.log1p(np.exp(-lam) / self.sigma_min ** 2) / (2.0 * self._log_ratio)
