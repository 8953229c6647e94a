r"""Sampling workloads: (c) Euler–Maruyama and (d) predictor–corrector on the ring of 8.

Every implementation starts from the same exact draws :math:`x_T \sim p_T` (so the prior
mismatch is not part of anyone's error), runs ``steps`` uniform steps from T to
:math:`\varepsilon = 10^{-3}` and is scored by the weak error of its samples against the exact
:math:`p_\varepsilon` on a fixed set of features:

.. math::

    \phi(x) = \big(x_i,\; x_i x_j\ (i \le j),\; \cos\omega_m\!\cdot x,\; \sin\omega_m\!\cdot x\big),
    \qquad \text{error}_\phi = \big|\tfrac1N \textstyle\sum_n \phi(x_n) - E_{p_\varepsilon}\phi\big|,

with the exact expectations from the oracle's marginal (mean, covariance, characteristic
function at 8 fixed frequencies). Max and mean over the features are reported with the largest
Monte Carlo standard error of the features (``mc_se``): errors near it are sampling noise,
errors well above it are the scheme's bias (PC's snr floor, EM's O(h) bias).

Work behind the bound, per sample and step: EM one score evaluation (K exponentials, K c_d
flops) and d normal draws; PC twice that (predictor and one corrector).
"""

from __future__ import annotations

import numpy as np

from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE
from scorebench.solvers.sample import sample

from . import peers
from .case import Case, Impl, Outcome
from .workloads import RING_LABEL, pair_flops, ring8

__all__ = ["sampling_cases", "moment_features", "EPS_SAMPLE", "SNR"]

EPS_SAMPLE = 1e-3
SNR = 0.16
_N_OMEGA = 8


def _omegas(d: int) -> np.ndarray:
    rng = np.random.default_rng(8128)
    dirs = rng.standard_normal((_N_OMEGA, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dirs * np.linspace(0.25, 1.0, _N_OMEGA)[:, None]


def moment_features(x, omegas):
    """Per-sample features (N, F): coordinates, products x_i x_j (i <= j), cos and sin of w.x."""
    x = np.asarray(x, dtype=np.float64)
    iu = np.triu_indices(x.shape[1])
    phase = x @ omegas.T
    return np.concatenate([x, (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]], np.cos(phase),
                           np.sin(phase)], axis=1)


def _exact_features(mix, omegas):
    mean = mix.mean()
    second = mix.covariance() + np.outer(mean, mean)
    iu = np.triu_indices(mix.d)
    cf = mix.char_fn(omegas)
    return np.concatenate([mean, second[iu], cf.real, cf.imag])


def _errors(exact, omegas):
    def errors(x):
        feats = moment_features(np.asarray(x, dtype=np.float64), omegas)
        if not np.all(np.isfinite(feats)):
            return float("inf"), float("inf")
        err = np.abs(feats.mean(axis=0) - exact)
        return float(err.max()), float(err.mean())
    return errors


def _mc_se(x, omegas) -> float:
    feats = moment_features(np.asarray(x, dtype=np.float64), omegas)
    return float(np.max(feats.std(axis=0) / np.sqrt(feats.shape[0])))


def _work(oracle, n, steps, evals_per_step):
    pairs = float(n) * steps * evals_per_step * oracle.K
    return {"exps": pairs, "flops": pairs * pair_flops(oracle.mix, common_time=True),
            "normals": float(n) * steps * evals_per_step * oracle.d}


def _fused(method):
    """The fused numba sampler ``em_sample_numba`` / ``pc_sample_numba``, or (None, note)."""
    try:
        from scorebench.solvers import fused_sampling_numba as mod
    except ImportError as exc:
        return None, f"fused numba sampler unavailable: {exc}"
    fn = getattr(mod, f"{method}_sample_numba", None)
    if fn is None:
        return None, f"scorebench.solvers.fused_sampling_numba has no {method}_sample_numba"
    return fn, ""


def _ours_fused(fn, method, oracle, x_T, steps, seed):
    kw = {"snr": SNR, "n_corrector": 1, "norm": "batch"} if method == "pc" else {}
    grid = np.linspace(float(oracle.sde.T), EPS_SAMPLE, steps + 1)
    evals = 2 if method == "pc" else 1

    def call(x0):
        return fn(oracle, x0, grid, seed=seed, **kw)

    def run():
        x = call(x_T)
        work = _work(oracle, x_T.shape[0], steps, evals)
        if x_T.dtype == np.float32:  # the float32 kernel: also its fraction of the float32 bound
            work["precision"] = "float32"
        return Outcome(x, steps * evals, work)

    return run, (lambda: call(x_T[:64]))


def _ours_generic(method, oracle, x_T, steps, seed):
    def run():
        res = sample(oracle, oracle.sde, method=method, steps=steps, eps=EPS_SAMPLE, x_T=x_T,
                     rng=np.random.default_rng(seed), backend="numpy")
        return Outcome(res.x, res.nfe, _work(oracle, x_T.shape[0], steps, 2 if method == "pc" else 1),
                       {"backend": res.backend})
    return run


def _peer(fn, oracle, x_T, steps, seed, evals, **kw):
    def run():
        x, nfe = fn(oracle, x_T, steps, EPS_SAMPLE, seed, **kw)
        return Outcome(x, nfe, _work(oracle, x_T.shape[0], steps, evals))
    return run


def sampling_cases(sizes, with_peers, profile, seed=0):
    """Cases (c) EM and (d) PC (one corrector step, snr 0.16) on the ring."""
    import torch

    oracle = MixtureOracle(ring8(), VPSDE())
    n, steps = sizes.n_sample, sizes.sample_steps
    x_T = oracle.sample(n, oracle.sde.T, np.random.default_rng(seed + 10))
    omegas = _omegas(oracle.d)
    errors = _errors(_exact_features(oracle.marginal(EPS_SAMPLE), omegas), omegas)
    cases = []
    for wl, method, name, evals in (("c", "em", "Euler-Maruyama", 1),
                                    ("d", "pc", "predictor-corrector (1 Langevin step)", 2)):
        loop = peers.torch_em_loop if method == "em" else peers.torch_pc_loop
        fn, note = _fused(method)
        impls = []
        if fn is None:
            impls.append(Impl(f"scorebench {method} fused numba", "scorebench", note=note))
        else:
            run, warm = _ours_fused(fn, method, oracle, x_T, steps, seed)
            impls.append(Impl(f"scorebench {method} fused numba", "scorebench", run, warm))
            run, warm = _ours_fused(fn, method, oracle, x_T.astype(np.float32), steps, seed)
            impls.append(Impl(f"scorebench {method} fused numba float32", "scorebench", run,
                              warm))
        if profile != "quick":  # the generic driver: Python per step (minutes at full size)
            impls.append(Impl(f"scorebench {method} numpy (generic driver)", "scorebench",
                              _ours_generic(method, oracle, x_T, steps, seed)))
        impls.append(Impl(f"plain torch {method.upper()} loop (float32)", "baseline",
                          _peer(loop, oracle, x_T, steps, seed, evals, dtype=torch.float32)))
        if profile == "full" or with_peers:
            impls.append(Impl(f"plain torch {method.upper()} loop (float64)", "peer",
                              _peer(loop, oracle, x_T, steps, seed, evals)))
        if method == "em" and with_peers:
            note = peers.peer_available("torchsde")
            impls.append(Impl("torchsde sdeint euler", "peer",
                              None if note else _peer(peers.torchsde_em, oracle, x_T, steps, seed,
                                                      evals), note=note or ""))
        params = dict(N=n, d=oracle.d, K=oracle.K, steps=steps, eps=EPS_SAMPLE, sde="VP",
                      start="exact p_T", features=f"moments <= 2, char. fn at {_N_OMEGA} freqs")
        if method == "pc":
            params.update(snr=SNR, n_corrector=1, norm="batch")
        cases.append(Case(wl, f"sampling, {name}, {RING_LABEL}", params, impls, errors,
                          "weak error of moments/char. fn vs p_eps", n, "samples/s",
                          details=lambda x: {"mc_se": _mc_se(x, omegas)}))
    return cases
