r"""Smooth schedules with closed-form kernels, as LinearSDEs (used by :func:`.strategies.sdes`).

Each schedule object gives ``f(t)`` and ``g(t)`` (what :class:`LinearSDE` integrates by
quadrature) and, independently, the closed forms ``a(t)`` and ``s2(t)`` for reference.

References
----------
Nichol, Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021 (cosine).
"""

from __future__ import annotations

import math

import numpy as np

from scorebench.analytic.linear_sde import LinearSDE

__all__ = ["CosineSchedule", "SigmaPowerSchedule", "QuadraticBetaSchedule", "ScheduleSDE"]


class CosineSchedule:
    r"""Cosine (VP-type) schedule: :math:`a(t) = \cos\theta(t) / \cos\theta_0`,
    :math:`\theta(t) = \theta_0 + (\theta_1 - \theta_0) t / T`, so :math:`f = -\theta' \tan\theta`
    and :math:`g^2 = -2 f` (which keeps :math:`a^2 + s^2 = 1`)."""

    def __init__(self, theta0: float, theta1: float, T: float):
        self.theta0, self.theta1, self.T = theta0, theta1, T
        self.rate = (theta1 - theta0) / T

    def theta(self, t):
        return self.theta0 + self.rate * np.asarray(t, dtype=np.float64)

    def f(self, t):
        return -self.rate * np.tan(self.theta(t))

    def g(self, t):
        return np.sqrt(2.0 * self.rate * np.tan(self.theta(t)))

    def a(self, t):
        return np.cos(self.theta(t)) / math.cos(self.theta0)

    def s2(self, t):
        # 1 - a^2 = (cos^2 th0 - cos^2 th) / cos^2 th0 = sin(th - th0) sin(th + th0) / cos^2 th0,
        # written without the cancellation of 1 - a^2 at small t.
        th = self.theta(t)
        return np.sin(th - self.theta0) * np.sin(th + self.theta0) / math.cos(self.theta0) ** 2

    def __repr__(self):
        return f"cosine(theta0={self.theta0!r}, theta1={self.theta1!r}, T={self.T!r})"


class SigmaPowerSchedule:
    r"""VE-type schedule of the score-SDE tutorial: :math:`f = 0`, :math:`g(t) = \sigma^{t/T}`,
    :math:`a = 1`, :math:`s^2 = T(\sigma^{2t/T} - 1) / (2 \ln\sigma)`."""

    def __init__(self, sigma: float, T: float):
        self.sigma, self.T = sigma, T
        self.log_sigma = math.log(sigma)

    def f(self, t):
        return np.zeros_like(np.asarray(t, dtype=np.float64))

    def g(self, t):
        return np.exp(self.log_sigma * np.asarray(t, dtype=np.float64) / self.T)

    def a(self, t):
        return np.ones_like(np.asarray(t, dtype=np.float64))

    def s2(self, t):
        t = np.asarray(t, dtype=np.float64)
        return self.T * np.expm1(2.0 * self.log_sigma * t / self.T) / (2.0 * self.log_sigma)

    def __repr__(self):
        return f"sigma_power(sigma={self.sigma!r}, T={self.T!r})"


class QuadraticBetaSchedule:
    r"""VP with a quadratic :math:`\beta(t) = b_0 + b_1 t + b_2 t^2`: :math:`f = -\beta/2`,
    :math:`g^2 = \beta`, :math:`a = e^{-B/2}`, :math:`s^2 = 1 - e^{-B}`, :math:`B = \int_0^t\beta`."""

    def __init__(self, b0: float, b1: float, b2: float, T: float):
        self.b0, self.b1, self.b2, self.T = b0, b1, b2, T

    def beta(self, t):
        t = np.asarray(t, dtype=np.float64)
        return self.b0 + self.b1 * t + self.b2 * t * t

    def B(self, t):
        t = np.asarray(t, dtype=np.float64)
        return self.b0 * t + 0.5 * self.b1 * t * t + self.b2 * t ** 3 / 3.0

    def f(self, t):
        return -0.5 * self.beta(t)

    def g(self, t):
        return np.sqrt(self.beta(t))

    def a(self, t):
        return np.exp(-0.5 * self.B(t))

    def s2(self, t):
        return -np.expm1(-self.B(t))

    def __repr__(self):
        return f"quadratic_beta(b0={self.b0!r}, b1={self.b1!r}, b2={self.b2!r}, T={self.T!r})"


class ScheduleSDE(LinearSDE):
    """A LinearSDE built from a schedule object with closed forms (``schedule.a``, ``.s2``).

    The closed forms are *not* used by the SDE (it integrates f and g by quadrature like any
    LinearSDE); they are kept on ``.schedule`` so tests can compare against them.
    """

    def __init__(self, schedule, T: float):
        super().__init__(schedule.f, schedule.g, T=T, name=repr(schedule))
        self.schedule = schedule

    def __repr__(self):
        return f"LinearSDE({self.schedule!r})"
