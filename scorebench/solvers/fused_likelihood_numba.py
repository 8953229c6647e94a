r"""Fused numba fast path: PF-ODE log-likelihood of a Gaussian-mixture oracle, per-sample DOPRI5.

For each point :math:`x` the augmented probability-flow ODE

.. math::

    \frac{d}{dt}\begin{pmatrix} x_t \\ \ell_t \end{pmatrix} =
    \begin{pmatrix} v(x_t, t) \\ \nabla\cdot v(x_t, t) \end{pmatrix},\qquad
    v = f x - \tfrac12 g^2 \nabla\log p_t,\quad \nabla\cdot v = d f - \tfrac12 g^2 \Delta\log p_t,

is integrated from :math:`(x, 0)` at :math:`t = \varepsilon` to :math:`t = T`, and
:math:`\log p_\varepsilon(x) = \log p_T(x_T) + \ell_T` (DESIGN.md, "Likelihood"). The velocity
and the exact divergence come from one fused pass over the components
(:mod:`._mixture_lanes_numba`; for small diagonal mixtures of one shape, d <= 8 and K <= 16,
from straight-line code generated for that (d, K), :mod:`._unrolled_score_numba`).

Integrator: Dormand–Prince 5(4) with FSAL, exactly scipy's ``RK45`` controller, applied to each
sample on its own: the error norm is the RMS over that sample's d + 1 augmented components of
``err_i / (atol + rtol * max(|y_i|, |y_new_i|))`` (scipy's norm, per sample instead of over the
flattened batch, so one hard point cannot hide behind the easy ones and no easy point pays for a
hard one), Hairer's initial step (scipy's ``select_initial_step``), ``SAFETY = 0.9``,
``MIN_FACTOR = 0.2``, ``MAX_FACTOR = 10``, exponent ``-1/5``, no growth after a rejection within a
step, and scipy's minimum step ``10 |nextafter(t, inf) - t|``: a sample whose step falls below it,
or that needs more than ``max_steps`` attempts, stops and is flagged (the wrapper raises
:class:`~scorebench.solvers.base.SolverError`; it never loops forever).

Parallelism: ``prange`` over chunks of samples; within a chunk ``LANES`` samples sit side by side
in SIMD lanes, but each lane integrates its own path from eps to T with its own times, step
sizes, accepts and rejects (the lanes go through the six stages of their attempts together, each
at its own time; a lane that finishes starts the next sample of its chunk at the next attempt,
see :mod:`._dopri5_lanes_numba`). A lane's arithmetic never depends on the other lanes, so results
do not depend on the lane width, the order of the points or the number of threads. No
synchronisation between chunks, no Python per step.

Operation count per sample and right-hand-side evaluation (d dims, K components, diagonal
covariances of one shape, as the benchmark ring): one ``exp`` and one ``expm1`` for the SDE
coefficients, d divisions, K exponentials, ~6Kd + 2K flops for the score and Laplacian (general
covariances: Kd divisions and logarithms, ~13Kd + 4Kd^2 flops; see :mod:`._mixture_lanes_numba`);
per attempted step 6 evaluations (FSAL) plus ~30(d + 1) flops for the stage inputs and the error
estimate. Evaluations per sample: 2 (initial step, computed for LANES samples at a time before
they take a lane) + 6 per attempted step (the NFE reported). Measured on one core of the
benchmark machine (a Sapphire-Rapids-class Xeon, 512-bit vectors; 2-D ring of 8, rtol = atol =
1e-5, 72 evaluations per sample): 15.8 ns per sample and evaluation in float64, 10.0 ns in
float32 (the 16-D, K = 8 full-covariance mixture: 347 and 195 ns), against 2.1 ns for the
ring's 8 exponentials at ``fast_exp``'s in-cache rate. On an AMD EPYC core (512-bit vectors;
rtol = atol = 2e-5, 65 evaluations per sample) the lanes' bookkeeping as SIMD passes (the
attempt's start, conditional stores, the sums of ``_loglik_rhs_numba.prepare``) took float64
from 18.9 to 17.0 ns and float32 from 11.7 to 9.8 ns, with bit-identical results; perf then
puts ~40 % of the float32 kernel in the generated score.

Precision: float32 points run a float32 specialisation (state, stages, score and divergence in
float32; times, step sizes, SDE coefficients, the error norm and the controller in float64).
Its log-densities follow the float64 kernel's to a few 1e-6 on samples that take the same
steps, and its max error against the exact log p_eps at rtol 1e-5 is the float64 kernel's
(4.9e-4 on the ring): float32 rounding (~6e-8 relative per operation) stays far below the
tolerance. 1.6x faster on the ring (twice the lanes per vector register).

References
----------
Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 1980.
Hairer, Nørsett & Wanner, "Solving Ordinary Differential Equations I", Sec. II.4 (initial step).
Grathwohl et al., "FFJORD", ICLR 2019; Song et al., ICLR 2021 (the likelihood ODE).
"""

from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import numba
import numpy as np

from scorebench.analytic._validation import check_points
from scorebench.analytic.oracle import MixtureOracle

from ._dopri5_lanes_numba import OK, STEP_TOO_SMALL, TOO_MANY_STEPS, loglik_kernel
from ._log_density_lanes_numba import component_constants
from ._mixture_lanes_numba import cached_layout
from ._sde_coeffs_numba import sde_to_params
from ._unrolled_score_numba import score_args
from .errors import SolverError

__all__ = ["FusedLoglik", "dopri5_loglik_numba", "solve_validated", "supports", "STATUS_MESSAGES",
           "MAX_STEPS"]

MAX_STEPS = 100_000  # default cap on attempted steps per sample

STATUS_MESSAGES = {
    STEP_TOO_SMALL: "the step size fell below 10 ulp of t (stiff or non-finite right-hand side)",
    TOO_MANY_STEPS: "max_steps attempted steps were not enough",
}


class FusedLoglik(NamedTuple):
    """Result of :func:`dopri5_loglik_numba` (all arrays have one entry per sample)."""

    logp: np.ndarray  #: log p_eps(x) = prior_logp + delta_logp
    prior_logp: np.ndarray  #: log p_T(x_T) under the chosen prior
    delta_logp: np.ndarray  #: integral of div v from eps to T
    x_T: np.ndarray  #: (N, d) end points of the PF-ODE paths
    nfe: np.ndarray  #: right-hand-side evaluations of each sample
    n_accepted: np.ndarray
    n_rejected: np.ndarray
    status: np.ndarray  #: 0 = finished; see STATUS_MESSAGES


# ---------------------------------------------------------------------------------------------
# Python entry point
# ---------------------------------------------------------------------------------------------
def supports(oracle) -> bool:
    """True when ``oracle`` can take the fused path (a MixtureOracle on VP, sub-VP or VE)."""
    return isinstance(oracle, MixtureOracle) and sde_to_params(oracle.sde) is not None


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a positive real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name}: must be finite and > 0, got {value}")
    return value


def dopri5_loglik_numba(oracle, x, eps=1e-5, rtol=1e-5, atol=1e-5, prior="default", *,
                        first_step=None, max_steps=MAX_STEPS, check=True):
    """log p_eps(x) of a mixture oracle by the fused per-sample DOPRI5 PF-ODE solve.

    Parameters
    ----------
    oracle : MixtureOracle
        Exact mixture oracle on a ``VPSDE``, ``SubVPSDE`` or ``VESDE`` (see :func:`supports`).
    x : ndarray, shape (N, d)
        Points at time ``eps`` (finite). float32 points run the float32 kernel: state, stages,
        score and divergence in float32, times, step sizes, SDE coefficients and the step
        control in float64 (see :mod:`._dopri5_lanes_numba`); any other float dtype runs in
        float64.
    eps : float
        Start time, ``0 < eps < T``.
    rtol, atol : float
        scipy-meaning tolerances, applied per sample to the augmented state (x, l).
    prior : {"default", "exact", "none"} or None
        ``"default"`` (or None): the SDE's prior ``N(0, prior_std^2 I)``; ``"exact"``: the
        oracle's exact log p_T (the oracle's ``exact_log_prob_T``, computed here by
        :mod:`._log_density_lanes_numba`); ``"none"``: no prior (``prior_logp`` is 0 and
        ``logp`` is ``delta_logp``), for a caller that applies its own. Samples that did not
        reach T get NaN.
    first_step : float, optional
        Initial step; by default Hairer's selection, per sample.
    max_steps : int
        Maximum attempted steps per sample.
    check : bool
        Raise :class:`~scorebench.solvers.base.SolverError` when a sample failed (step size
        underflow or ``max_steps``); with ``False`` the flags are only returned in ``status``.

    Returns
    -------
    FusedLoglik
        Per-sample ``logp``, ``prior_logp``, ``delta_logp``, ``x_T``, ``nfe``, ``n_accepted``,
        ``n_rejected``, ``status``.
    """
    if not supports(oracle):
        raise ValueError(
            "oracle: the fused numba likelihood needs a MixtureOracle on VPSDE, SubVPSDE or "
            f"VESDE, got {oracle!r}"
        )
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy array, got {type(x).__name__}")
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x = np.ascontiguousarray(check_points(x, oracle.d), dtype=dtype)
    T = float(oracle.sde.T)
    eps = _positive(eps, "eps")
    if not eps < T:
        raise ValueError(f"eps: must lie in (0, T) = (0, {T}), got {eps}")
    rtol, atol = _positive(rtol, "rtol"), _positive(atol, "atol")
    if prior is None:
        prior = "default"
    if prior not in ("default", "exact", "none"):
        raise ValueError(f"prior: expected 'default', 'exact', 'none' or None, got {prior!r}")
    h0 = 0.0 if first_step is None else _positive(first_step, "first_step")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps: expected an int >= 1, got {max_steps!r}")
    return solve_validated(oracle, x, eps, rtol, atol, prior, h0, int(max_steps), check)


class _Plan(NamedTuple):
    """What a call needs besides the points, for one (oracle, dtype): built once (see _plan)."""

    key: tuple  # (layout, SDE family code, its parameters): the plan is rebuilt when they change
    code: int
    params: np.ndarray
    lay: object  # MixtureLayout in the kernel's dtype
    score: tuple  # (unrolled, score_fn) of score_args
    lay64: object  # float64 layout of the exact prior log p_T
    a_T: float
    inv: np.ndarray  # component_constants at T
    const: np.ndarray


# per oracle and dtype; ~12 us of Python per call otherwise (the layouts, the oracle's (a, s^2)
# at T and the prior's constants), 1.5 % of a 2,000-point float32 call
_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _plan(oracle, dtype) -> _Plan:
    code, params = sde_to_params(oracle.sde)
    lay = cached_layout(oracle.mix, dtype)  # the same object while the mixture's arrays are
    key = (lay, code, tuple(params))
    plans = _PLANS.get(oracle)
    if plans is None:
        plans = _PLANS[oracle] = {}
    plan = plans.get(dtype)
    if plan is None or plan.key[0] is not lay or plan.key[1:] != key[1:]:
        lay64 = cached_layout(oracle.mix, np.float64)
        _, a_T, s2_T = oracle._coeffs(float(oracle.sde.T), 1)  # the oracle's own (a, s^2) at T
        d, K = lay64.mT.shape
        inv, const = np.empty((d, K)), np.empty(K)
        component_constants(a_T, s2_T, lay64.lamT, lay64.logw, inv, const)
        plan = plans[dtype] = _Plan(key, code, params, lay, score_args(lay, dtype, True), lay64,
                                    a_T, inv, const)
    return plan


def solve_validated(oracle, x, eps, rtol, atol, prior, first_step, max_steps, check):
    """:func:`dopri5_loglik_numba` on arguments it has validated (``x`` a C-contiguous float64 or
    float32 (N, d) array of finite values, ``eps`` in (0, T), positive floats, ``prior`` one of
    "default", "exact", "none", ``first_step`` 0.0 for Hairer's selection). ``log_likelihood``
    calls it after validating the same arguments itself."""
    plan = _plan(oracle, x.dtype.type)
    lay, lay64 = plan.lay, plan.lay64
    N, d = x.shape
    delta, xT = np.empty(N), np.empty((N, d))
    nfe = np.empty(N, dtype=np.int64)
    nacc, nrej = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    status = np.empty(N, dtype=np.int8)
    exact = prior == "exact"
    prior_lp = np.empty(N) if exact else None
    # log p_T(x_T) of the mixture, in float64, inside the kernel's chunks (_log_density_lanes_numba)
    loglik_kernel(x, eps, plan.code, plan.params, lay.diag, lay.shared, lay.mT, lay.W, lay.lamT,
                  lay.logw, *plan.score, rtol, atol, first_step, max_steps,
                  numba.get_num_threads(), xT, delta, nfe, nacc, nrej, status, exact, plan.a_T,
                  lay64.diag, lay64.mT, lay64.W, plan.inv, plan.const,
                  prior_lp if exact else delta)
    all_ok = not status.any()  # OK is 0
    ok = None if all_ok else status == OK
    if prior == "none":
        prior_lp = np.zeros(N)
    elif exact:
        pass
    elif all_ok:  # the usual case: no masked copies
        prior_lp = np.asarray(oracle.sde.prior_log_prob(xT), dtype=np.float64)
    else:
        prior_lp = np.zeros(N)
        if np.any(ok):
            prior_lp[ok] = oracle.sde.prior_log_prob(xT[ok])
    if not all_ok:
        prior_lp[~ok] = np.nan
    if check and not all_ok:
        bad = np.flatnonzero(~ok)
        raise SolverError(
            f"dopri5 (numba): {bad.size} of {N} samples did not reach T; first, sample "
            f"{bad[0]}: {STATUS_MESSAGES[int(status[bad[0]])]}"
        )
    return FusedLoglik(prior_lp + delta, prior_lp, delta, xT, nfe, nacc, nrej, status)
