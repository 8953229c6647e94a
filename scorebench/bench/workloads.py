r"""The workloads of ``scorebench bench`` (issue 5): data, sizes and operation counts.

=====  ========================================================================================
(a)    PF-ODE log-likelihood, exact divergence, 2-D ring of 8, N = 10,000, rtol = atol = 1e-5,
       VP; plus a work–precision sweep (max error against rtol) for the time at equal
       worst-point accuracy (max error 1e-3)
(b)    the same in 16-D with K = 8 (full covariances), N = 2,000, exact and Hutchinson
(c)    Euler–Maruyama sampling, N = 100,000, 1000 steps, d = 2, K = 8 (the ring)
(d)    predictor–corrector, one Langevin corrector step (snr 0.16), same sizes as (c)
(e)    score and Laplacian kernels, N = 1e5, d in {2, 16, 64}, K in {8, 64} (full covariances)
(f)    scaling: time against N (1e3 .. 1e6, the likelihood of (a), in chunks), d (2 .. 256)
       and K (1 .. 256) (the kernels of (e)), with fitted exponents; peak memory against N
=====  ========================================================================================

The ring of 8: eight isotropic components of variance 0.05 on the circle of radius 2, equal
weights -- the definition of ``benchmarks/_workloads.py`` (``ring_of_8``), so the pytest-benchmark
suites and this command measure the same data.

Operation counts behind the bounds (per point; :mod:`.bounds` turns them into seconds with the
exponential time, normal-draw time and matrix-multiply rate measured in the same run). Each
(point, component) pair of a score/Laplacian evaluation costs one exponential (the
responsibility) and the projections: ``2 d`` flops when every covariance is axis-aligned
(diagonal in the standard basis); with full covariances ``2 d^2`` at a common time (one product
``C_k^{-1} x``, whose inverse is formed once per time) and ``4 d^2`` when every point has its
own time (``U^T x`` and ``U (z / lambda)``: the inverse changes with t), as in
:mod:`scorebench.analytic._mixture_numba`. Per workload (kernels and samplers at a common
time, the likelihood per sample):

* likelihood: ``evals * K * (t_exp + c_d / R_mm)`` with ``evals`` the right-hand-side
  evaluations actually used (per-sample counts where the implementation reports them, else
  ``N * NFE``) and ``c_d`` the projection flops above;
* EM: ``N * steps * (K * (t_exp + c_d / R_mm) + d * t_normal)``;
* PC (one corrector): ``N * steps * 2 * (K * (t_exp + c_d / R_mm) + d * t_normal)``;
* kernels: ``N * K * (t_exp + c_d / R_mm)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scorebench.analytic.mixture import GaussianMixture

__all__ = [
    "RING_RADIUS", "RING_VARIANCE", "RING_LABEL", "ring8", "mixture_16d", "random_mixture", "axis_aligned",
    "pair_flops", "Sizes", "SIZES", "sizes_for",
]

RING_RADIUS = 2.0
RING_VARIANCE = 0.05
#: How reports name it (the verification suite's ``ring8`` scenario is a different ring).
RING_LABEL = f"ring of 8 (radius {RING_RADIUS:g}, variance {RING_VARIANCE:g})"


def ring8() -> GaussianMixture:
    """The 2-D ring of 8: isotropic components (variance 0.05) on the circle of radius 2."""
    angles = 2.0 * math.pi * np.arange(8) / 8.0
    means = RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture.isotropic(np.ones(8), means, np.full(8, RING_VARIANCE))


def random_mixture(d: int, K: int, seed: int) -> GaussianMixture:
    """K full-covariance components in d dimensions (deterministic in ``seed``).

    Means ~ N(0, 2^2 I); covariances ``U diag(lam) U^T`` with Haar-random ``U`` and eigenvalues
    uniform in [0.1, 1.5]; weights uniform in [1, 2], normalised.
    """
    for name, v in (("d", d), ("K", K)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 2.0, (K, d))
    q, r = np.linalg.qr(rng.standard_normal((K, d, d)))
    bases = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    lam = rng.uniform(0.1, 1.5, (K, d))
    covs = np.einsum("kij,kj,klj->kil", bases, lam, bases)
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    return GaussianMixture(rng.uniform(1.0, 2.0, K), means, covs)


def mixture_16d() -> GaussianMixture:
    """Workload (b)'s data: 16-D, K = 8, full covariances (``random_mixture(16, 8, 1608)``)."""
    return random_mixture(16, 8, 1608)


def axis_aligned(mix: GaussianMixture) -> bool:
    """True when every component's eigenvectors are a signed permutation (diagonal covariances)."""
    U = np.abs(mix.eigvecs)
    return bool(np.all(np.isclose(U.max(axis=2), 1.0)) and np.all(np.sum(U > 1e-12, axis=2) == 1))


def pair_flops(mix: GaussianMixture, common_time: bool) -> int:
    """Projection flops per (point, component) pair: 2 d (axis-aligned), else 2 d^2 at a common
    time (one product with C_k^{-1}) or 4 d^2 with a time per point (U^T x, U (z / lambda))."""
    if axis_aligned(mix):
        return 2 * mix.d
    return (2 if common_time else 4) * mix.d * mix.d


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeats of one bench profile (``quick``, ``full`` or ``tiny``)."""

    repeats: int
    budget_s: float  # time budget of the repeats of one implementation
    n_loglik: int
    wp_n: int
    wp_rtols: tuple
    n_loglik_16d: int
    n_sample: int
    sample_steps: int
    n_kernel: int
    kernel_dims: tuple
    kernel_Ks: tuple
    scale_N: tuple
    scale_chunk: int
    scale_d: tuple
    scale_d_n: int
    scale_K: tuple
    scale_K_n: int
    accuracy_rows: int  # kernel accuracy is checked on this many points (the reference is O(NKd))
    # time the numpy reference kernel as a row of (e) (7 s of the quick run at d = K = 64: quick
    # leaves it out, to stay within its 3 minutes from a fresh install)
    kernel_numpy_row: bool = True
    # burst-timed (short) calls get at least this many timings (runner._interleaved_repeats)
    min_burst_repeats: int = 1
    # the (e) kernels for d <= 4 get at least this many (point, component) pairs a call (N up to
    # the 1e5 for K = 8 in quick): at N = 20,000 a d = 2, K = 8 call lasts ~0.16 ms, of
    # which ~30 us is the per-call cost (Python, the parallel launch), not the kernel
    kernel_min_pairs: int = 0


# rtol = atol of the work-precision sweep: a 1-2-5 sequence, the same for every implementation,
# so that each family's time to max error 1e-3 is measured at most one half-step tighter than
# it needs (a decade grid overstated it for the batch-norm peers, which reach 1e-3 between
# 1e-5 and 1e-6, by ~20 %, and for scorebench by ~5 %)
_WP_125 = (1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6)

SIZES = {
    "full": Sizes(
        repeats=5, min_burst_repeats=9, budget_s=60.0, n_loglik=10_000, wp_n=10_000,
        wp_rtols=_WP_125 + (5e-7, 2e-7, 1e-7, 1e-8),
        n_loglik_16d=2_000, n_sample=100_000, sample_steps=1000, n_kernel=100_000,
        kernel_dims=(2, 16, 64), kernel_Ks=(8, 64), scale_N=(1_000, 10_000, 100_000, 1_000_000),
        scale_chunk=100_000, scale_d=(2, 4, 8, 16, 32, 64, 128, 256), scale_d_n=10_000,
        scale_K=(1, 2, 4, 8, 16, 32, 64, 128, 256), scale_K_n=100_000, accuracy_rows=5_000,
    ),
    "quick": Sizes(
        repeats=3, min_burst_repeats=7, budget_s=2.0, n_loglik=10_000, wp_n=2_000,
        wp_rtols=_WP_125 + (1e-7,),
        n_loglik_16d=500, n_sample=20_000, sample_steps=200, n_kernel=20_000,
        kernel_min_pairs=800_000,
        kernel_dims=(2, 16, 64), kernel_Ks=(8, 64), scale_N=(1_000, 10_000, 100_000),
        scale_chunk=50_000, scale_d=(2, 8, 32, 128), scale_d_n=5_000,
        scale_K=(1, 4, 16, 64, 256), scale_K_n=200_000, accuracy_rows=2_000,
        kernel_numpy_row=False,
    ),
    "tiny": Sizes(
        repeats=1, budget_s=1.0, n_loglik=300, wp_n=200, wp_rtols=(1e-5, 1e-6),
        n_loglik_16d=100, n_sample=300, sample_steps=50, n_kernel=500,
        kernel_dims=(2, 16), kernel_Ks=(8,), scale_N=(1_000, 10_000, 50_000), scale_chunk=10_000,
        scale_d=(2, 8), scale_d_n=300, scale_K=(1, 8), scale_K_n=500, accuracy_rows=500,
    ),
}


def sizes_for(profile: str) -> Sizes:
    """The :class:`Sizes` of ``profile`` (``"quick"``, ``"full"`` or ``"tiny"``)."""
    if profile not in SIZES:
        raise ValueError(f"profile: expected one of {', '.join(SIZES)}, got {profile!r}")
    return SIZES[profile]
