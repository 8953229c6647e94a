r"""Exponential integrators of the probability-flow ODE in log-SNR time: DDIM and DPM-Solver-2.

Write :math:`\lambda(t) = \tfrac12 \log(a_t^2 / s_t^2)` (half the log-SNR of
:meth:`~scorebench.analytic.sde.SDE.log_snr`, Lu et al.'s :math:`\lambda`), and use the
data prediction :math:`D(x, t) = (x + s_t^2 \nabla\log p_t(x)) / a_t` (Tweedie) or the noise
prediction :math:`\hat\epsilon(x, t) = -s_t \nabla\log p_t(x) = (x - a_t D)/s_t`. The PF-ODE
:math:`dx/dt = f x - \tfrac12 g^2 \nabla\log p_t` of any linear SDE then has the exact
variation-of-constants forms (Lu et al. 2022, Prop. 3.1; the data-prediction one in Lu et al.
2022b)

.. math::

    x_{t'} = \frac{a_{t'}}{a_t} x_t - a_{t'} \int_{\lambda_t}^{\lambda_{t'}} e^{-\lambda}
             \hat\epsilon(x_\lambda, \lambda)\, d\lambda
           = \frac{s_{t'}}{s_t} x_t + s_{t'} \int_{\lambda_t}^{\lambda_{t'}} e^{\lambda}
             D(x_\lambda, \lambda)\, d\lambda,

whose linear part is integrated exactly. With :math:`h = \lambda_{t'} - \lambda_t`:

* **DDIM** (:class:`DDIM`, order 1) freezes the denoiser over the step:

  .. math:: x_{t'} = \frac{s_{t'}}{s_t} x_t + \Big(a_{t'} - a_t \frac{s_{t'}}{s_t}\Big) D(x_t, t)
                   = \frac{s_{t'}}{s_t} x_t - a_{t'} \operatorname{expm1}(-h)\, D(x_t, t),

  identical to the noise form :math:`\frac{a_{t'}}{a_t} x_t - s_{t'} \operatorname{expm1}(h)
  \hat\epsilon(x_t, t)` (Song, Meng & Ermon 2021, the generative process with
  :math:`\sigma = 0`). For a single point mass :math:`\mu` the denoiser is exactly :math:`\mu`
  everywhere, the PF-ODE path is :math:`x_t = a_t\mu + (s_t/s_r)(x_r - a_r\mu)`, and DDIM
  reproduces it to rounding at any step count (Euler does not).
* **DPM-Solver-2** (:class:`DPMSolver2`, order 2, Lu et al. 2022, Alg. 1 with
  :math:`r_1 = 1/2`) takes a DDIM step to the log-SNR midpoint
  :math:`t_m = \lambda^{-1}(\lambda_t + h/2)` and uses the prediction there for the whole step.
  Noise-prediction form (the paper's):

  .. math::

      u = \frac{a_m}{a_t} x_t - s_m \operatorname{expm1}(h/2)\, \hat\epsilon(x_t, t), \qquad
      x_{t'} = \frac{a_{t'}}{a_t} x_t - s_{t'} \operatorname{expm1}(h)\, \hat\epsilon(u, t_m);

  data-prediction form (DPM-Solver++(2S) with :math:`r = 1/2`, Lu et al. 2022b):

  .. math::

      u = \frac{s_m}{s_t} x_t - a_m \operatorname{expm1}(-h/2)\, D(x_t, t), \qquad
      x_{t'} = \frac{s_{t'}}{s_t} x_t - a_{t'} \operatorname{expm1}(-h)\, D(u, t_m).

  Both are exact for a single point mass (the noise prediction is constant along its paths).

The coefficients need only :math:`a`, :math:`s`, the log-SNR and its inverse
(``sde.t_from_log_snr``), so the integrators run for VP, sub-VP, VE and any ``LinearSDE``, on any
time grid (the ``"logsnr"`` grid makes :math:`h` constant). ``expm1`` keeps the small-step
coefficients free of cancellation. Either time direction works (``dt > 0`` is DDIM inversion).

References
----------
J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
C. Lu, Y. Zhou, F. Bao, J. Chen, C. Li, J. Zhu, "DPM-Solver: A Fast ODE Solver for Diffusion
Probabilistic Model Sampling in Around 10 Steps", NeurIPS 2022.
C. Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
arXiv:2211.01095 (2022b).
"""

from __future__ import annotations

import numpy as np

from ._arrays import coef_like, time_to_numpy
from .base import ODESolver
from .registry import register_solver

__all__ = ["exponential_coefficients", "DDIM", "DPMSolver2"]

PREDICTIONS = ("noise", "data")


def _schedule(sde, t):
    """(a, s, half log-SNR) at ``t`` as float64 (float for a float ``t``)."""
    a = sde.mean_coeff(t)
    s = sde.marginal_std(t)
    lam = 0.5 * np.asarray(sde.log_snr(t), dtype=np.float64)
    return a, s, (float(lam) if np.ndim(lam) == 0 else lam)


def exponential_coefficients(sde, t, t_next, prediction: str = "data"):
    r"""Coefficients ``(p, q)`` of the first-order exponential step ``x' = p x + q pred(x, t)``.

    ``prediction="data"``: ``p = s'/s``, ``q = -a' expm1(-h)`` (``pred`` = the denoiser D);
    ``prediction="noise"``: ``p = a'/a``, ``q = -s' expm1(h)`` (``pred`` = the noise
    prediction), with ``h`` the change of half log-SNR from ``t`` to ``t_next``.

    Parameters
    ----------
    sde : SDE
    t, t_next : float or ndarray, shape (N,)
        Both > 0 (the log-SNR is infinite at 0).
    prediction : {"data", "noise"}

    Returns
    -------
    p, q : float or ndarray, shape (N,)
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: expected 'noise' or 'data', got {prediction!r}")
    t, t_next = time_to_numpy(t), time_to_numpy(t_next)
    if np.any(np.asarray(t) <= 0.0) or np.any(np.asarray(t_next) <= 0.0):
        raise ValueError(
            f"t: exponential integrators need t > 0 and t + dt > 0 (finite log-SNR), "
            f"got t = {t!r}, t + dt = {t_next!r}"
        )
    a, s, lam = _schedule(sde, t)
    a1, s1, lam1 = _schedule(sde, t_next)
    h = np.asarray(lam1, dtype=np.float64) - lam
    if prediction == "data":
        p = np.asarray(s1, dtype=np.float64) / s
        q = -np.asarray(a1, dtype=np.float64) * np.expm1(-h)
    else:
        p = np.asarray(a1, dtype=np.float64) / a
        q = -np.asarray(s1, dtype=np.float64) * np.expm1(h)
    if np.ndim(p) == 0 and np.ndim(q) == 0:
        return float(p), float(q)
    return p, q


def _prediction(problem, x, t, prediction: str):
    """The data prediction D(x, t) or the noise prediction -s(t) score(x, t)."""
    score = problem.score(x, t)
    s2 = problem.sde.marginal_var(t)
    if prediction == "data":
        a = problem.sde.mean_coeff(t)
        return (x + coef_like(s2, x) * score) / coef_like(a, x)
    return -coef_like(np.sqrt(s2), x) * score


def _exp_step(problem, x, t, t_next, pred, prediction: str):
    p, q = exponential_coefficients(problem.sde, t, t_next, prediction)
    return coef_like(p, x) * x + coef_like(q, x) * pred


def _check_prediction(prediction) -> str:
    if not isinstance(prediction, str) or prediction not in PREDICTIONS:
        raise ValueError(f"prediction: expected 'noise' or 'data', got {prediction!r}")
    return prediction


@register_solver
class DDIM(ODESolver):
    r"""DDIM: the first-order exponential integrator of the PF-ODE (one score call per step).

    .. math:: x_{t'} = \frac{s_{t'}}{s_t} x_t + \Big(a_{t'} - a_t\frac{s_{t'}}{s_t}\Big)
                       \frac{x_t + s_t^2 \nabla\log p_t(x_t)}{a_t}.

    Order 1 (global error :math:`O(h)` in :math:`\lambda`); exact at any step count for a single
    point mass. See the module docstring for the derivation.
    """

    name = "ddim"
    order = 1
    #: Reproduces the PF-ODE of a single point mass to rounding at any step count.
    exact_on_point_mass = True

    def advance(self, problem, x, t, dt):
        t = time_to_numpy(t)
        t_next = t + time_to_numpy(dt)
        pred = _prediction(problem, x, t, "data")
        return _exp_step(problem, x, t, t_next, pred, "data")


@register_solver
class DPMSolver2(ODESolver):
    r"""DPM-Solver-2 (Lu et al. 2022): second-order exponential integrator, midpoint in log-SNR.

    Two score calls per step: at ``t`` and at :math:`t_m = \lambda^{-1}((\lambda_t +
    \lambda_{t'})/2)`, reached by a DDIM step; the full step then reuses the prediction at
    :math:`t_m` in the exact-linear-part formula.

    Parameters
    ----------
    prediction : {"noise", "data"}
        ``"noise"`` (default) is Lu et al.'s DPM-Solver-2 in the noise-prediction form;
        ``"data"`` is the data-prediction form (DPM-Solver++(2S) with r = 1/2). Both have order 2
        and are exact for a single point mass; they differ at O(h^3) per step otherwise.
    """

    name = "dpm-solver-2"
    order = 2
    exact_on_point_mass = True

    def __init__(self, prediction: str = "noise"):
        self.prediction = _check_prediction(prediction)

    def __repr__(self) -> str:
        return f"DPMSolver2(prediction={self.prediction!r})"

    def advance(self, problem, x, t, dt):
        sde = problem.sde
        t = time_to_numpy(t)
        t_next = t + time_to_numpy(dt)
        if np.any(np.asarray(t_next) <= 0.0) or np.any(np.asarray(t) <= 0.0):
            raise ValueError(
                f"t: DPM-Solver-2 needs t > 0 and t + dt > 0, got t = {t!r}, t + dt = {t_next!r}"
            )
        lam_mid = 0.5 * (np.asarray(sde.log_snr(t), dtype=np.float64) + sde.log_snr(t_next))
        t_mid = sde.t_from_log_snr(float(lam_mid) if np.ndim(lam_mid) == 0 else lam_mid)
        mode = self.prediction
        u = _exp_step(problem, x, t, t_mid, _prediction(problem, x, t, mode), mode)
        return _exp_step(problem, x, t, t_next, _prediction(problem, u, t_mid, mode), mode)
