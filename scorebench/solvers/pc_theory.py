r"""The deterministic variance recursion of predictor–corrector sampling on a Gaussian target.

For data :math:`N(0, \sigma_0^2 I_d)` the marginal at time t is :math:`N(0, \sigma_t^2 I)` with
:math:`\sigma_t^2 = a_t^2 \sigma_0^2 + s_t^2` and the exact score is :math:`-x/\sigma_t^2`. Every
step of :class:`~scorebench.solvers.predictor_corrector.PredictorCorrector` is then linear in
the state and the noise, and with Song et al.'s batch-averaged norms the Langevin step size is a
deterministic function of the current per-coordinate variance v (in the limit of a large batch):

* predictor from t to :math:`t' = t - h` (Euler–Maruyama, the default):
  :math:`x' = c\,x + g(t)\, dW`, :math:`c = 1 - h\,(f(t) + g(t)^2/\sigma_t^2)`, so
  :math:`v \leftarrow c^2 v + g(t)^2 h`; the ancestral predictor has
  :math:`c = (a_{t'}/a_t)(1 - r s_t^2/\sigma_t^2)` and noise variance :math:`r s_{t'}^2`
  (:func:`~scorebench.solvers.ancestral.ancestral_coefficients`);
* each Langevin corrector step at :math:`t'` with :math:`\sigma^2 = \sigma_{t'}^2`:
  :math:`x \leftarrow x + \epsilon\,\nabla\log p_{t'}(x) + \sqrt{2\epsilon}\, z`, so
  :math:`v \leftarrow (1 - \epsilon/\sigma^2)^2 v + 2\epsilon`, with the snr rule
  :math:`\epsilon = 2\alpha(\mathrm{snr}\,\overline{|z|}/\overline{|\nabla\log p|})^2`. For an
  isotropic Gaussian state :math:`\overline{|\nabla\log p|} = \sqrt{v}\,\overline{|z'|}/\sigma^2`
  with :math:`\overline{|z'|}` and :math:`\overline{|z|}` batch means of the same chi
  distribution, so :math:`\epsilon \to 2\alpha\,\mathrm{snr}^2 \sigma^4 / v` for any d as the
  batch grows (fluctuations are :math:`O(1/\sqrt{N d})` relative).

The corrector alone has the fixed point :math:`v^* = (1 + \alpha\,\mathrm{snr}^2)\sigma^2`
(:func:`corrector_fixed_point`), close to the stationary variance
:math:`\sigma^2/(1 - \alpha\,\mathrm{snr}^2)` of the unadjusted Langevin algorithm run at the
step the rule gives at :math:`v = \sigma^2` (:func:`ula_inflation`): 2.56 % and 2.63 % at
snr = 0.16. The step does not shrink with h, so PC has no order in h; its error has a floor set
by snr, which :func:`pc_variance_recursion` computes for a given grid. Per-sample norms
(``norm="sample"``) make the step size a random, sample-dependent quantity, the state is no
longer Gaussian and no such recursion is exact (the DESIGN's 64-D simulation: about 9 %).

References
----------
Y. Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
ICLR 2021, Alg. 1 and App. G.
G. O. Roberts, R. L. Tweedie, "Exponential convergence of Langevin distributions and their
discrete approximations", Bernoulli 2 (1996) (ULA's bias on Gaussian targets).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .ancestral import ancestral_coefficients

__all__ = [
    "corrector_fixed_point",
    "ula_inflation",
    "pc_variance_recursion",
    "pc_inflation",
]

PREDICTORS = ("em", "ancestral")


def _positive(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be finite and {bound}, got {value}")
    return value


def _check_snr_alpha(snr, alpha):
    snr = _positive(snr, "snr")
    alpha = _positive(alpha, "alpha")
    if alpha * snr * snr >= 1.0:
        raise ValueError(f"snr: alpha * snr^2 must be < 1, got {alpha * snr * snr}")
    return snr, alpha


def corrector_fixed_point(snr: float, alpha: float = 1.0) -> float:
    r"""Fixed point :math:`v^*/\sigma^2 = 1 + \alpha\,\mathrm{snr}^2` of the batch-norm corrector.

    Solves :math:`v = (1 - \epsilon/\sigma^2)^2 v + 2\epsilon` with
    :math:`\epsilon = 2\alpha\,\mathrm{snr}^2\sigma^4/v`.
    """
    snr, alpha = _check_snr_alpha(snr, alpha)
    return 1.0 + alpha * snr * snr


def ula_inflation(snr: float, alpha: float = 1.0) -> float:
    r"""ULA's stationary variance ratio :math:`1/(1 - \alpha\,\mathrm{snr}^2)` on a Gaussian target.

    The unadjusted Langevin algorithm with fixed step :math:`\epsilon` on :math:`N(0, \sigma^2)`
    has stationary variance :math:`\sigma^2/(1 - \epsilon/(2\sigma^2))`; the snr rule at
    :math:`v = \sigma^2` gives :math:`\epsilon = 2\alpha\,\mathrm{snr}^2\sigma^2`.
    """
    snr, alpha = _check_snr_alpha(snr, alpha)
    return 1.0 / (1.0 - alpha * snr * snr)


def _check_grid(grid, T: float) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)):
        raise ValueError(f"grid: expected a finite 1-D array of >= 2 times, got shape {g.shape}")
    if not np.all(np.diff(g) < 0):
        raise ValueError("grid: must be strictly decreasing (from T down to eps)")
    if g[-1] <= 0.0 or g[0] > T:
        raise ValueError(f"grid: times must lie in (0, T] = (0, {T}], got [{g[-1]}, {g[0]}]")
    return g


def pc_variance_recursion(
    sde,
    grid,
    data_var: float,
    v_T: float,
    snr: float = 0.16,
    n_corrector: int = 1,
    predictor: str = "em",
    alpha_factor: bool = True,
) -> np.ndarray:
    r"""Per-coordinate variance of PC samples (batch norms) along ``grid``, target N(0, data_var I).

    Parameters
    ----------
    sde : SDE
    grid : array_like, shape (n + 1,)
        Decreasing times from the start (usually T) to eps, all > 0.
    data_var : float
        :math:`\sigma_0^2` of the zero-mean isotropic Gaussian data (>= 0).
    v_T : float
        Variance of the initial state at ``grid[0]`` (1 for VP's default prior, the exact
        :math:`\sigma_T^2` for exact p_T samples).
    snr : float
        Signal-to-noise ratio of the Langevin step rule.
    n_corrector : int
        Langevin steps after each predictor step (0 gives the predictor alone).
    predictor : {"em", "ancestral"}
    alpha_factor : bool
        Include Song et al.'s factor :math:`\alpha = (a_t/a_{t'})^2` in the step size (see
        :class:`~scorebench.solvers.predictor_corrector.PredictorCorrector`).

    Returns
    -------
    ndarray, shape (n + 1,)
        ``v[0] = v_T`` and ``v[i]`` the variance after step i (predictor and correctors).
    """
    g = _check_grid(grid, sde.T)
    data_var = _positive(data_var, "data_var", allow_zero=True)
    v = _positive(v_T, "v_T")
    snr = _positive(snr, "snr")
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, numbers.Integral):
        raise ValueError(f"n_corrector: expected an int >= 0, got {n_corrector!r}")
    if n_corrector < 0:
        raise ValueError(f"n_corrector: must be >= 0, got {n_corrector}")
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor: expected 'em' or 'ancestral', got {predictor!r}")
    out = [v]
    for t, t1 in zip(g[:-1], g[1:]):
        t, t1 = float(t), float(t1)
        h = t - t1
        sig2_t = sde.mean_coeff(t) ** 2 * data_var + sde.marginal_var(t)
        if predictor == "em":
            c = 1.0 - h * (sde.drift_coeff(t) + sde.diffusion_sq(t) / sig2_t)
            q = sde.diffusion_sq(t) * h
        else:
            m, cc, n = ancestral_coefficients(sde, t, t1)
            c, q = m * (1.0 - cc / sig2_t), n * n
        v = c * c * v + q
        sig2 = sde.mean_coeff(t1) ** 2 * data_var + sde.marginal_var(t1)
        alpha = (sde.mean_coeff(t) / sde.mean_coeff(t1)) ** 2 if alpha_factor else 1.0
        for _ in range(int(n_corrector)):
            eps = 2.0 * alpha * snr * snr * sig2 * sig2 / v
            v = (1.0 - eps / sig2) ** 2 * v + 2.0 * eps
        out.append(v)
    return np.asarray(out)


def pc_inflation(sde, grid, data_var: float, v_T: float, snr: float = 0.16, **kwargs) -> float:
    r"""Ratio of PC's final variance to the exact :math:`\sigma_{\varepsilon}^2`, minus one.

    ``kwargs`` go to :func:`pc_variance_recursion`. At snr = 0.16 with a fine grid this is the
    floor of about 2.5 % the DESIGN quotes.
    """
    v = pc_variance_recursion(sde, grid, data_var, v_T, snr, **kwargs)
    t_end = float(np.asarray(grid, dtype=np.float64)[-1])
    exact = sde.mean_coeff(t_end) ** 2 * float(data_var) + sde.marginal_var(t_end)
    return float(v[-1] / exact - 1.0)
