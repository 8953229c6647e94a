r"""ODE log-likelihoods: the probability-flow ODE augmented with the log-density change.

Along the probability-flow path :math:`dx/dt = v(x, t) = f x - \tfrac12 g^2 \nabla\log p_t(x)`
started at :math:`x_\varepsilon = x`, the instantaneous change of variables gives
:math:`\tfrac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)`, so

.. math::

    \log p_\varepsilon(x) = \log p_T(x_T) + \int_\varepsilon^T \nabla\cdot v(x_t, t)\, dt .

:func:`log_likelihood` integrates the augmented state :math:`z = (x, \ell)` of shape
(N, d + 1), :math:`dz/dt = (v, \nabla\cdot v)`, :math:`\ell(\varepsilon) = 0`, from
:math:`\varepsilon` to T through the same steppers as sampling: the adaptive ``"rk45"`` (or any
registered :class:`~scorebench.solvers.base.AdaptiveODESolver`) via its ``solve``, and fixed-step
solvers via their ``step`` on the uniform grid of ``steps`` steps. The divergence comes from
:mod:`.divergence` (exact, Hutchinson or Hutch++).

Error control (adaptive methods) is per sample and includes the log-density component: each
sample's error is the RMS over its d + 1 components of
``err / (atol + rtol max(|z_old|, |z_new|))``, scipy's meaning of the tolerances applied to the
augmented state, so both the path and the accumulated log-density of every point are controlled and no point's error hides in a
batch-wide norm. Stochastic estimators carry one more column, the sample's row index (constant,
zero derivative), so that per-sample probes follow their sample when the adaptive solver drops
finished samples from the batch; that column has zero error and its tolerances are chosen so the
norm equals the RMS over the d + 1 real components exactly (see :mod:`.augmented_ode`).

Bits per dimension: ``bpd = -logp / (d ln 2)``; with ``dequantize = n`` (bins per unit length of
x) the discrete log-probability of the bin holding x is approximately ``logp - d ln n`` (density
times bin volume :math:`n^{-d}`), so ``bpd = -logp / (d ln 2) + log2(n)``: +8 for 8-bit data
scaled to [0, 1] (n = 256), +7 for 8-bit data scaled to [-1, 1] (n = 128; score_sde's
``offset = 7``). x must already be dequantised (uniform noise added) by the caller.

The fused numba path (oracle model, ``"rk45"``, exact divergence) plugs in at
:func:`_fast_path`, the one place where it is looked up.

References
----------
R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018 (instantaneous
change of variables). Y. Song et al., "Score-Based Generative Modeling through Stochastic
Differential Equations", ICLR 2021, Sec. 4.3 and App. D.2.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from ._arrays import all_finite, is_torch, to_numpy
from .augmented_ode import integrate_augmented
from .base import ODESolver, solver_kind
from .divergence import DIVERGENCES, PROBES, check_probes, get_divergence
from .grids import check_eps, check_steps
from .registry import get_solver, solver_names

__all__ = ["LikelihoodResult", "log_likelihood", "BACKENDS"]

BACKENDS = ("auto", "numpy", "torch", "numba")
_LN2 = math.log(2.0)


@dataclass
class LikelihoodResult:
    """Log-likelihoods of a batch and how they were computed.

    Attributes
    ----------
    logp : ndarray or Tensor, shape (N,)
        ``log p_eps(x)`` estimates (``prior_logp + delta_logp``).
    bpd : ndarray or Tensor, shape (N,)
        Bits per dimension, ``-logp / (d ln 2)`` (+ ``log2(dequantize)``).
    nfe : int
        Batched evaluations of the augmented right-hand side (each one score evaluation, plus
        the backward passes of autograd divergences).
    prior_logp : ndarray or Tensor, shape (N,)
        ``log p_T(x_T)`` under the prior used.
    delta_logp : ndarray or Tensor, shape (N,)
        ``int_eps^T div v dt`` along each path.
    x_T : ndarray or Tensor, shape (N, d)
        End points of the probability-flow paths at T.
    n_accepted, n_rejected : ndarray of int, shape (N,)
        Per-sample step statistics (fixed-step methods: ``steps`` and 0).
    method, divergence, backend : str
    wall_s : float
    """

    logp: object
    bpd: object
    nfe: int
    prior_logp: object
    delta_logp: object
    x_T: object
    n_accepted: np.ndarray
    n_rejected: np.ndarray
    method: str
    divergence: str
    backend: str = "numpy"
    wall_s: float = 0.0

    @property
    def n_steps(self) -> np.ndarray:
        """Attempted steps per sample."""
        return self.n_accepted + self.n_rejected


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _check_x(x):
    if is_torch(x):
        import torch

        if not torch.is_floating_point(x):
            raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    else:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x: expected a non-empty (N, d) array, got shape {tuple(x.shape)}")
    if not all_finite(x):
        raise ValueError("x: contains non-finite entries (nan or inf)")
    return x


def _check_tol(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return float(value)


def _check_rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: stochastic divergences need an explicit numpy.random.Generator or an int seed, "
        f"got {type(rng).__name__}"
    )


def _ode_names() -> list[str]:
    return sorted(solver_names("ode") + solver_names("adaptive"))


def _check_method(method):
    try:
        solver = get_solver(method, param="method")
    except ValueError as exc:
        if isinstance(method, str) and ":" not in method:
            raise ValueError(
                f"method: unknown ODE solver {method!r}; expected one of {', '.join(_ode_names())}"
            ) from None
        raise ValueError(str(exc)) from exc
    kind = solver_kind(type(solver))
    if kind == "sde":
        raise ValueError(
            f"method: {solver.name!r} is an SDE solver; the likelihood needs an ODE solver, one of "
            f"{', '.join(_ode_names())}"
        )
    if kind == "ode" and type(solver).step is ODESolver.step:
        raise ValueError(
            f"method: {solver.name!r} implements only advance() (it needs the score itself), so it "
            "cannot integrate the augmented likelihood ODE; use a step(f, x, t, dt) solver"
        )
    return solver, kind


def _check_dequantize(dequantize):
    if dequantize is None:
        return None
    if isinstance(dequantize, bool) or not isinstance(dequantize, numbers.Real):
        raise ValueError(
            f"dequantize: expected None or bins per unit length > 0, got {dequantize!r}"
        )
    if not (math.isfinite(dequantize) and dequantize > 0):
        raise ValueError(f"dequantize: must be finite and > 0, got {dequantize!r}")
    return float(dequantize)


# ----------------------------------------------------------------------------------------------
# the fused fast path
# ----------------------------------------------------------------------------------------------
def _fast_path(model, sde, method, divergence, backend, prior=None):
    """The fused numba likelihood kernel, when it applies; else ``None``.

    The one place where ``scorebench.solvers.fused_likelihood_numba.dopri5_loglik_numba`` is
    plugged in: it applies to a :class:`~scorebench.analytic.MixtureOracle` model (exactly that
    class, on the same SDE as ``sde``) with
    ``method="rk45"``, ``divergence="exact"`` and ``backend`` ``"auto"`` or ``"numba"``. The
    module is imported lazily; while it does not exist (or numba is missing) this returns
    ``None`` and the generic path runs.

    Returns
    -------
    callable or None
        ``run(x, eps, T, rtol, atol) -> (x_T, delta_logp, nfe, n_accepted, n_rejected,
        prior_logp)`` on float64 or float32 numpy arrays (``nfe``: the largest per-sample count
        of right-hand-side evaluations, what a batch in lockstep would need). ``prior_logp`` is
        ``None`` (the caller applies ``prior``) unless ``prior`` is this oracle's own
        ``exact_log_prob_T``: then the kernel computes it in its chunks (the same formula in
        float64, :mod:`._log_density_lanes_numba`, ~50 us less per 2,000 points than the
        oracle's general entry point).
    """
    if backend not in ("auto", "numba") or divergence != "exact" or method != "rk45":
        return None
    from ..analytic.oracle import MixtureOracle

    oracle = getattr(model, "model", model)
    # exactly the oracle (a subclass may override its score) on the very SDE being integrated
    if type(oracle) is not MixtureOracle or oracle.sde != sde:
        return None
    try:
        from .fused_likelihood_numba import MAX_STEPS, solve_validated, supports
    except ImportError:  # module absent, or numba missing: the generic path runs
        return None
    if not supports(oracle):
        return None

    exact_prior = (getattr(prior, "__self__", None) is oracle
                   and getattr(prior, "__func__", None) is MixtureOracle.exact_log_prob_T)

    def run(x, eps, T, rtol, atol):
        # x, eps, rtol and atol are log_likelihood's, validated there (finite (N, d) points,
        # 0 < eps < T, positive tolerances): no second validation (~10 us a call)
        out = solve_validated(oracle, np.ascontiguousarray(x), eps, rtol, atol,
                              "exact" if exact_prior else "none", 0.0, MAX_STEPS, True)
        # per-sample evaluation counts; the batch-equivalent count is the largest one
        nfe = int(out.nfe.max()) if out.nfe.size else 0
        return (out.x_T, out.delta_logp, nfe, out.n_accepted, out.n_rejected,
                out.prior_logp if exact_prior else None)

    return run


def _to_backend(x, backend):
    """The working array: numpy or torch as asked, or the input's own kind for auto."""
    if backend == "torch" and not is_torch(x):
        import torch

        return torch.as_tensor(np.asarray(x))
    if backend in ("numpy", "numba") and is_torch(x):
        return x.detach().cpu().numpy()
    return x


def _like_input(a, x):
    """Result ``a`` back in the kind of the input ``x`` (numpy in -> numpy out, torch -> torch)."""
    if type(a) is np.ndarray and type(x) is np.ndarray:  # the common case, first
        return a.astype(x.dtype, copy=False) if a.dtype.kind == "f" else a
    if is_torch(x):
        import torch

        return a.to(device=x.device, dtype=x.dtype) if is_torch(a) else torch.as_tensor(
            np.asarray(a), dtype=x.dtype, device=x.device
        )
    a = to_numpy(a)
    return np.asarray(a, dtype=x.dtype) if a.dtype.kind == "f" else a


def _prior_log_prob(prior, sde, x_T):
    out = sde.prior_log_prob(x_T) if prior is None else prior(x_T)
    n = x_T.shape[0]
    if getattr(out, "shape", None) is None or tuple(out.shape) != (n,):
        shape = tuple(getattr(out, "shape", ()))
        raise ValueError(f"prior: returned shape {shape}, expected ({n},)")
    if not all_finite(out):
        raise ValueError("prior: returned non-finite log-densities")
    return out


def log_likelihood(
    x,
    model,
    sde,
    divergence="exact",
    probes=1,
    method="rk45",
    rtol=1e-5,
    atol=1e-5,
    eps=1e-5,
    prior=None,
    rng=None,
    steps=None,
    probe="rademacher",
    backend="auto",
    dequantize=None,
) -> LikelihoodResult:
    r"""Log-density of points under the model's probability-flow ODE, :math:`\log p_\varepsilon(x)`.

    Parameters
    ----------
    x : ndarray or Tensor, shape (N, d)
        Points at time ``eps`` (finite floats). numpy in -> numpy out, torch in -> torch out,
        in the input's dtype. On the fused numba path a float32 array runs the float32 kernel
        (state, stages and score in float32; times, steps and step control in float64; its
        error against the exact density is the float64 kernel's at the tolerances that matter,
        rtol >= 1e-6 — see :mod:`scorebench.solvers.fused_likelihood_numba`); any other float
        dtype runs in float64.
    model : score model
        A callable ``score(x, t)``, an object with ``score`` (and optionally ``laplacian``), the
        oracle, or a torch module.
    sde : SDE
        The forward SDE.
    divergence : {"exact", "hutchinson", "hutch++"}
        Divergence estimator (:mod:`scorebench.solvers.divergence`).
    probes : int
        Probes per sample for the stochastic estimators (matrix-vector products for
        ``"hutch++"``, >= 3); drawn once per call and held fixed along each path.
    method : str or solver
        ``"rk45"`` (adaptive, default), any registered adaptive or fixed-step ODE solver.
    rtol, atol : float
        Tolerances of adaptive methods, applied per sample to the augmented state
        (log-density included).
    eps : float
        Start time, ``0 < eps < T``.
    prior : callable, optional
        ``log p_T(x_T)``; default ``sde.prior_log_prob``. E.g. ``oracle.exact_log_prob_T``.
    rng : numpy.random.Generator or int, optional
        Source of the probes (required for stochastic estimators).
    steps : int, optional
        Uniform steps from eps to T, required for fixed-step methods (not allowed for adaptive).
    probe : {"rademacher", "gaussian"}
    backend : {"auto", "numpy", "torch", "numba"}
        ``"auto"``: the fused numba kernel where it applies (:func:`_fast_path`), else the
        input's own array kind. ``"numpy"``/``"torch"`` force the working arrays (results are
        returned in the input's kind); ``"numba"`` requires the fused kernel.
    dequantize : float, optional
        Bins per unit length of x (256 for 8-bit data in [0, 1]); adds ``log2(dequantize)`` to
        bpd (see the module notes).

    Returns
    -------
    LikelihoodResult

    Raises
    ------
    ValueError
        Bad input, naming the parameter (unknown names list the valid choices).
    SolverError
        The solver failed or produced non-finite values.
    """
    x = _check_x(x)
    n, d = x.shape
    if not all(callable(getattr(sde, m, None)) for m in ("drift_coeff", "diffusion_sq")):
        raise TypeError(
            f"sde: expected an SDE (drift_coeff, diffusion_sq, T), got {type(sde).__name__}"
        )
    model_d = getattr(getattr(model, "model", model), "d", None)
    if isinstance(model_d, (int, np.integer)) and not isinstance(model_d, bool) and model_d != d:
        raise ValueError(f"x: expected shape (N, {model_d}) for this model, got {tuple(x.shape)}")
    T = float(sde.T)
    eps = check_eps(eps, T)
    rtol, atol = _check_tol(rtol, "rtol"), _check_tol(atol, "atol")
    if not isinstance(divergence, str) or divergence not in DIVERGENCES:
        raise ValueError(
            f"divergence: unknown estimator {divergence!r}; "
            f"expected one of {', '.join(DIVERGENCES)}"
        )
    if probe not in PROBES:
        raise ValueError(f"probe: expected one of {', '.join(PROBES)}, got {probe!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if prior is not None and not callable(prior):
        raise TypeError(
            f"prior: expected None or a callable log p_T(x), got {type(prior).__name__}"
        )
    dequantize = _check_dequantize(dequantize)
    solver, kind = _check_method(method)
    if kind == "adaptive" and steps is not None:
        raise ValueError(f"steps: only for fixed-step methods; {solver.name!r} is adaptive")
    if kind == "ode":
        if steps is None:
            raise ValueError(f"steps: required for the fixed-step method {solver.name!r}")
        steps = check_steps(steps)
    start = time.perf_counter()
    fast = _fast_path(model, sde, solver.name if kind == "adaptive" else None, divergence, backend,
                      prior)
    if backend == "numba" and (fast is None or is_torch(x)):
        raise ValueError(
            "backend: 'numba' needs scorebench.solvers.fused_likelihood_numba, a MixtureOracle "
            "model, method='rk45', divergence='exact' and a numpy x"
        )
    if fast is None or is_torch(x):  # the generic path (the fused one needs no estimator)
        fast = None
        div = get_divergence(divergence, model, sde, probes=probes, probe=probe)
        if div.stochastic:
            rng = _check_rng(rng)
    else:
        check_probes(probes)  # validated for "exact" too, as get_divergence does
    if fast is not None:
        xn = np.asarray(x)  # float32 runs the float32 kernel, any other float dtype float64
        xn = xn if xn.dtype == np.float32 else xn.astype(np.float64, copy=False)
        x_T, delta, nfe, n_acc, n_rej, prior_logp = fast(xn, eps, T, rtol, atol)
        used = "numba"
    else:
        used = backend if backend in ("numpy", "torch") else ("torch" if is_torch(x) else "numpy")
        x_T, delta, nfe, n_acc, n_rej = integrate_augmented(
            _to_backend(x, used), div, solver, kind, eps, T, rtol, atol, steps, rng
        )
        prior_logp = None
    if prior_logp is None:
        prior_logp = _prior_log_prob(prior, sde, x_T)
    logp = prior_logp + delta
    bpd = -logp / (d * _LN2) + (math.log2(dequantize) if dequantize is not None else 0.0)
    wall = time.perf_counter() - start
    return LikelihoodResult(
        logp=_like_input(logp, x),
        bpd=_like_input(bpd, x),
        nfe=int(nfe),
        prior_logp=_like_input(prior_logp, x),
        delta_logp=_like_input(delta, x),
        x_T=_like_input(x_T, x),
        n_accepted=np.asarray(n_acc, dtype=np.int64),
        n_rejected=np.asarray(n_rej, dtype=np.int64),
        method=solver.name,
        divergence=divergence,
        backend=used,
        wall_s=wall,
    )
