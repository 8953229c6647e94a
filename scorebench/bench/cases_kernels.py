r"""Kernel workloads: (e) score and Laplacian, and (f) their scaling against d and K.

Data: :func:`~.workloads.random_mixture` (full covariances) under VP at t = 0.1, points drawn
from the exact :math:`p_t`. The accuracy reference is the oracle's float64 numpy kernel
(:mod:`scorebench.analytic._mixture_numpy`, the closed form) on the first ``accuracy_rows``
points; errors are the absolute errors of every score entry and of the Laplacian together.

Implementations: scorebench's fused numba kernel (the oracle with ``backend="numba"``), its
float32 kernel (float32 points, float32 results), the numpy reference (not in the quick
profile), torch float64 and float32 (the oracle on tensors: what a torch user would call), and
the plain-numpy baseline of :func:`.peers.plain_numpy_score_laplacian`. Everything but the fused
kernel materialises (n, K, d) arrays, so it runs in chunks of at most 2**22 (n, K, d) elements
(:func:`.measure.chunked`).

Work behind the bound: N K exponentials and N K 2 d^2 projection flops (:mod:`.workloads`).
"""

from __future__ import annotations

import numpy as np

from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE

from . import peers
from .case import Case, Curve, Impl, Outcome
from .measure import abs_errors, chunked
from .workloads import pair_flops, random_mixture

__all__ = ["kernel_cases", "kernel_scaling_curves", "T_KERNEL"]

T_KERNEL = 0.1
_CHUNK_ELEMS = 1 << 22


def _chunk(mix) -> int:
    return max(1, _CHUNK_ELEMS // (mix.K * mix.d))


def _flat(values, rows):
    score, lap = values
    if not isinstance(score, np.ndarray):  # torch
        score, lap = score.double().numpy(), lap.double().numpy()
    return np.concatenate([np.asarray(score[:rows]).ravel(), np.asarray(lap[:rows])])


def _setup(d, K, n, rows, seed):
    mix = random_mixture(d, K, seed)
    sde = VPSDE()
    ref = MixtureOracle(mix, sde, backend="numpy")
    x = ref.sample(n, T_KERNEL, np.random.default_rng(seed + 1))
    rows = min(rows, n)
    exact = _flat(ref.score_and_laplacian(x[:rows], T_KERNEL), rows)
    return mix, sde, ref, x, rows, exact


def _work(mix, n):
    return {"exps": float(n) * mix.K,
            "flops": float(n) * mix.K * pair_flops(mix, common_time=True)}


def _impls(mix, sde, ref, x, numpy_row=True):
    import torch

    nb = MixtureOracle(mix, sde, backend="numba")
    chunk, work = _chunk(mix), _work(mix, x.shape[0])
    a, s2 = float(sde.mean_coeff(T_KERNEL)), float(sde.marginal_var(T_KERNEL))
    x64 = torch.as_tensor(x)
    x32 = x64.to(torch.float32)
    xn32 = x.astype(np.float32)

    def wrap(fn, precision="float64"):
        w = work if precision == "float64" else {**work, "precision": precision}
        return lambda: Outcome(fn(), 1, w)

    def sl(oracle):
        return lambda xs: oracle.score_and_laplacian(xs, T_KERNEL)

    numpy_ref = [Impl("scorebench numpy reference", "scorebench",
                      wrap(lambda: chunked(sl(ref), x, chunk)))] if numpy_row else []
    return [
        Impl("scorebench fused numba kernel", "scorebench", wrap(lambda: sl(nb)(x)),
             warmup=lambda: sl(nb)(x[:4096])),
        Impl("scorebench fused numba kernel float32", "scorebench",
             wrap(lambda: sl(nb)(xn32), "float32"), warmup=lambda: sl(nb)(xn32[:4096])),
        *numpy_ref,
        Impl("torch float64 (oracle on tensors)", "peer",
             wrap(lambda: chunked(sl(ref), x64, chunk)), warmup=lambda: sl(ref)(x64[:64])),
        Impl("torch float32 (oracle on tensors)", "peer",
             wrap(lambda: chunked(sl(ref), x32, chunk)), warmup=lambda: sl(ref)(x32[:64])),
        Impl("plain numpy (obvious way)", "baseline",
             wrap(lambda: peers.plain_numpy_score_laplacian(mix, x, a, s2))),
    ]


def kernel_cases(sizes, seed=0):
    """Cases (e): score and Laplacian for every (d, K) of the profile."""
    cases = []
    for d in sizes.kernel_dims:
        for K in sizes.kernel_Ks:
            n = max(sizes.n_kernel, sizes.kernel_min_pairs // K) if d <= 4 else sizes.n_kernel
            mix, sde, ref, x, rows, exact = _setup(d, K, n, sizes.accuracy_rows,
                                                   seed + 1000 * d + K)
            cases.append(Case(
                "e", f"score + Laplacian kernel, d={d} K={K}",
                dict(N=x.shape[0], d=d, K=K, t=T_KERNEL, sde="VP", covariances="full",
                     accuracy_rows=rows),
                _impls(mix, sde, ref, x, sizes.kernel_numpy_row),
                (lambda r, e: (lambda v: abs_errors(_flat(v, r), e)))(rows, exact),
                "|score|, |laplacian| entries vs numpy float64 reference", x.shape[0], "points/s"))
    return cases


def _curve(name, param, sizes_list, make, n, rows, seed):
    cache = {}

    def setup(size):
        if size not in cache:
            cache.clear()
            d, K = make(size)
            mix, sde, ref, x, r, exact = _setup(d, K, n, rows, seed + size)
            cache[size] = (mix, MixtureOracle(mix, sde, backend="numba"), x, r, exact)
        return cache[size]

    def run(size):
        mix, nb, x, _, _ = setup(size)
        return Outcome(nb.score_and_laplacian(x, T_KERNEL), 1, _work(mix, x.shape[0]))

    def errors(size, values):
        _, _, _, r, exact = setup(size)
        return abs_errors(_flat(values, r), exact)

    return Curve("f", name, param, tuple(sizes_list), run, errors=errors, prepare=setup,
                 params={"N": n, "t": T_KERNEL, "covariances": "full"})


def kernel_scaling_curves(sizes, seed=0):
    """(f) the fused kernel's time against d (K = 8) and against K (d = 2)."""
    return [
        _curve("score + Laplacian kernel against d (K=8)", "d", sizes.scale_d,
               lambda d: (d, 8), sizes.scale_d_n, sizes.accuracy_rows, seed + 50_000),
        _curve("score + Laplacian kernel against K (d=2)", "K", sizes.scale_K,
               lambda K: (2, K), sizes.scale_K_n, sizes.accuracy_rows, seed + 60_000),
    ]
