r"""Likelihood workloads: (a) the ring, its work–precision sweep, (b) 16-D, and (f) N-scaling.

Every implementation gets the same points ``x ~ p_eps`` (exact samples), the same exact score
and the same prior, the oracle's exact :math:`\log p_T` (so the prior mismatch of the default
N(0, I) prior is not part of anyone's error), and is scored by :math:`|\log \hat p - \log
p_\varepsilon(x)|` against the oracle's exact log-density. The float32 rows get the same points
rounded to float32 (a change of log p_eps below 1e-5 here) and are scored against the float64
exact values.

Work behind the bound: ``evals * K`` exponentials and ``evals * K * c_d`` projection flops
(per-sample times: ``4 d^2`` for full covariances)
(:mod:`.workloads`), with ``evals`` the per-sample right-hand-side evaluations summed over the
samples for scorebench's per-sample DOPRI5 (``2 + 6 (accepted + rejected)`` each: Hairer's
initial step, then six new stages per attempt with FSAL) and ``N * NFE`` for batched peers.
"""

from __future__ import annotations

import numpy as np

from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE
from scorebench.solvers.likelihood import log_likelihood

from . import peers
from .case import Case, Curve, Impl, Outcome
from .measure import abs_errors, chunked
from .workloads import RING_LABEL, mixture_16d, pair_flops, ring8

__all__ = ["likelihood_cases", "work_precision_case", "likelihood_scaling_curve", "EPS_LOGLIK", "WP_TARGET"]

EPS_LOGLIK = 1e-5
TOL = 1e-5
WP_TARGET = 1e-3  # worst-point accuracy of the work-precision comparison


def _setup(mix, n, seed):
    oracle = MixtureOracle(mix, VPSDE())
    x = oracle.sample(n, EPS_LOGLIK, np.random.default_rng(seed))
    return oracle, x, oracle.log_prob(x, EPS_LOGLIK)


def _work(oracle, evals):
    K = oracle.K
    return {"exps": float(evals) * K,
            "flops": float(evals) * K * pair_flops(oracle.mix, common_time=False)}


def _ours(oracle, x, rtol, divergence="exact", backend="numba", seed=0):
    def run():
        res = log_likelihood(x, oracle, oracle.sde, divergence=divergence, rtol=rtol, atol=rtol,
                             eps=EPS_LOGLIK, prior=oracle.exact_log_prob_T, backend=backend,
                             rng=np.random.default_rng(seed) if divergence != "exact" else None)
        evals = int(np.sum(2 + 6 * (res.n_accepted + res.n_rejected)))
        work = _work(oracle, evals)
        if x.dtype == np.float32:  # the float32 kernel: also its fraction of the float32 bound
            work["precision"] = "float32"
        return Outcome(res.logp, res.nfe, work, {"backend": res.backend, "rhs_evals": evals})
    return run


def _peer(fn, oracle, x, rtol):
    def run():
        logp, nfe = fn(x, oracle, EPS_LOGLIK, rtol, rtol, oracle.exact_log_prob_T)
        return Outcome(logp, nfe, _work(oracle, x.shape[0] * nfe))
    return run


def _fused_available():
    try:
        from scorebench.solvers import fused_likelihood_numba  # noqa: F401
    except ImportError as exc:
        return f"fused numba likelihood unavailable: {exc}"
    return None


def _warm(oracle, x, **kw):
    return lambda: _ours(oracle, x[:64], TOL, **kw)()


def _peer_impls(oracle, x, rtol, with_peers, suffix=""):
    impls = [Impl(f"scipy RK45 flat (numpy score){suffix}", "peer",
                  _peer(peers.scipy_flat_loglik, oracle, x, rtol), family="scipy RK45 flat",
                  params={"rtol": rtol})]
    if with_peers:
        impls.append(Impl(f"seed-style scipy + torch autograd{suffix}", "baseline",
                          _peer(peers.seed_style_loglik, oracle, x, rtol), family="seed-style",
                          params={"rtol": rtol}))
        note = peers.peer_available("torchdiffeq")
        impls.append(Impl(f"torchdiffeq dopri5 (batched){suffix}", "peer",
                          None if note else _peer(peers.torchdiffeq_loglik, oracle, x, rtol),
                          note=note or "", family="torchdiffeq dopri5", params={"rtol": rtol}))
    return impls


def _ours_impl(label, oracle, x, rtol, **kw):
    note = _fused_available() if kw.get("backend", "numba") == "numba" else None
    return Impl(label, "scorebench", None if note else _ours(oracle, x, rtol, **kw),
                warmup=None if note else _warm(oracle, x, **kw), note=note or "",
                family=label.split(" (rtol")[0], params={"rtol": rtol})


def _case(workload, name, oracle, x, exact, impls, **params):
    return Case(workload, name, dict(N=x.shape[0], d=oracle.d, K=oracle.K, sde="VP",
                                     eps=EPS_LOGLIK, prior="exact log p_T", **params),
                impls, lambda v: abs_errors(v, exact), "|log p - log p_eps|", x.shape[0], "points/s")


def likelihood_cases(sizes, with_peers, seed=0):
    """Cases (a) (the ring) and (b) (16-D, exact and Hutchinson)."""
    oracle, x, exact = _setup(ring8(), sizes.n_loglik, seed)
    impls = [_ours_impl("scorebench rk45 fused numba", oracle, x, TOL),
             _ours_impl("scorebench rk45 fused numba float32", oracle, x.astype(np.float32), TOL),
             _ours_impl("scorebench rk45 numpy (generic driver)", oracle, x, TOL, backend="numpy")]
    cases = [_case("a", f"log-likelihood, {RING_LABEL}, exact divergence", oracle, x, exact,
                   impls + _peer_impls(oracle, x, TOL, with_peers), rtol=TOL, atol=TOL)]
    oracle, x, exact = _setup(mixture_16d(), sizes.n_loglik_16d, seed + 1)
    impls = [_ours_impl("scorebench rk45 fused numba", oracle, x, TOL),
             _ours_impl("scorebench rk45 numpy, Hutchinson (1 Rademacher probe)", oracle, x, TOL,
                        divergence="hutchinson", backend="numpy", seed=seed)]
    impls[1].note = ("stochastic: one probe held along each path, so the error is the "
                     "estimator's spread (unbiased), not the solver's")
    cases.append(_case("b", "log-likelihood, 16-D K=8 full covariances", oracle, x, exact,
                       impls + _peer_impls(oracle, x, TOL, with_peers), rtol=TOL, atol=TOL))
    return cases


def work_precision_case(sizes, with_peers, seed=0):
    """(a) at several rtol = atol: the time each family needs to reach max error ``WP_TARGET``.

    The runner skips a family's tighter tolerances once it has reached the target.
    """
    oracle, x, exact = _setup(ring8(), sizes.wp_n, seed + 2)
    impls = []
    for rtol in sizes.wp_rtols:
        tag = f" (rtol={rtol:g})"
        impls.append(_ours_impl("scorebench rk45 fused numba" + tag, oracle, x, rtol))
        impls.append(_ours_impl("scorebench rk45 fused numba float32" + tag, oracle,
                                x.astype(np.float32), rtol))
        impls += _peer_impls(oracle, x, rtol, with_peers, suffix=tag)
    case = _case("a", f"work-precision, {RING_LABEL} (time to max error 1e-3)", oracle, x, exact,
                 impls, rtols=list(sizes.wp_rtols))
    case.target = WP_TARGET
    return case


def likelihood_scaling_curve(sizes, seed=0):
    """(f) time and peak memory of the fused ring likelihood against N, run in chunks."""
    oracle, x, exact = _setup(ring8(), max(sizes.scale_N), seed + 3)
    chunk = sizes.scale_chunk

    def run(n):
        res = chunked(lambda xs: log_likelihood(xs, oracle, oracle.sde, rtol=TOL, atol=TOL,
                                                eps=EPS_LOGLIK, prior=oracle.exact_log_prob_T,
                                                backend="numba"), x[:n], chunk)
        evals = int(np.sum(2 + 6 * (res.n_accepted + res.n_rejected)))
        return Outcome(res.logp, res.nfe, _work(oracle, evals))

    return Curve("f", "log-likelihood (fused, chunked) against N", "N", tuple(sizes.scale_N), run,
                 errors=lambda n, v: abs_errors(v, exact[:n]), memory=True,
                 params={"chunk": chunk, "d": 2, "K": 8, "rtol": TOL})
