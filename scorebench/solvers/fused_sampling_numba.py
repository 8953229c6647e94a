r"""Fused numba fast paths: Euler–Maruyama and predictor–corrector sampling of a mixture oracle.

Reverse SDE on a grid :math:`T = t_0 > t_1 > \dots > t_n = \varepsilon`,
:math:`h_i = t_{i+1} - t_i < 0`:

.. math::

    \text{EM:}\quad x \leftarrow x + h_i\,[f(t_i) x - g(t_i)^2 \nabla\log p_{t_i}(x)]
                    + g(t_i)\,\Delta W_i,
    \qquad \Delta W_i \sim N(0, |h_i| I),

and predictor–corrector (Song et al. 2021, Alg. 1; the conventions of
:class:`~scorebench.solvers.predictor_corrector.PredictorCorrector`): the EM step, then
``n_corrector`` Langevin steps at :math:`t_{i+1}`,
:math:`x \leftarrow x + \epsilon \nabla\log p_{t_{i+1}}(x) + \sqrt{2\epsilon}\, z`,
:math:`\epsilon = 2\alpha_i (\mathrm{snr}\,\|z\| / \|\nabla\log p\|)^2`, norms per sample
(``norm="sample"``) or batch means of the per-sample norms (``norm="batch"``), and
:math:`\alpha_i = (a(t_i)/a(t_{i+1}))^2` (``alpha_factor=True``) or 1.

The mixture score is fused in (:mod:`._mixture_lanes_numba`); samples are processed in blocks of
``LANES`` SIMD lanes, blocks in parallel (``prange``). EM and PC with per-sample norms keep a
block in cache for the whole grid (:mod:`._sampling_lanes_numba`, no synchronisation at all); PC
with batch norms needs the batch means before each corrector update, so it runs step by step,
one parallel pass per score evaluation, the update of a corrector step applied at the start of
the next pass after a fixed-order reduction (:mod:`._pc_batch_numba`).

Randomness. Either pre-drawn increments (``dW`` of shape (steps, N, d) with variance
``|h_i|``, and for PC ``z`` of shape (steps, n_corrector, N, d)) -- the framework's Brownian path,
for strong-error work -- or normals generated in the kernel: sample ``n`` owns the stream
``(seed, n)`` of a xoshiro256++ generator (:mod:`._numba_math`), consumed step by step (EM: the
d increments of each step; PC: then the d corrector normals of each corrector step). EM and PC
with per-sample norms turn it into normals two at a time with Box–Muller, all lanes of a block
in one SIMD pass (:mod:`._lane_normals_numba`; ~1.8x the scalar ziggurat's rate); PC with batch
norms, which visits samples one by one, uses the ziggurat. A sample's draws therefore depend
only on ``seed``, its index and the sampler: results are identical across runs, thread counts
and block sizes. (In-kernel noise avoids the 1.6 GB that pre-drawn
increments for 100,000 samples x 1000 steps x 2 dims would take.)

Precision. The kernels run in the dtype of ``x_T``: float64, or float32 (8 SIMD lanes per AVX2
vector instead of 4; exponentials in float32, :mod:`._numba_precision`). Time stays float64:
the grid, the SDE coefficients and the step-size rules are computed in float64 and rounded once
to float32 per step; the normals are the float64 draws rounded to float32. What float32
costs in accuracy is measured in the tests (the same Brownian path in float32 and float64) and
reported by the benchmarks.

Operation count per sample and step (d dims, K components, diagonal covariances): one fused
score evaluation (~10Kd + 6K flops and K exponentials, see :mod:`._mixture_lanes_numba`),
4d flops for the update, d normal draws; PC adds one score evaluation, d draws and ~6d flops per
corrector step.
"""

from __future__ import annotations

import math

import numpy as np

from ._mixture_lanes_numba import cached_layout
from ._pc_batch_numba import pc_batch_driver
from ._sampling_lanes_numba import em_kernel
from ._unrolled_score_numba import score_args

__all__ = ["em_sample_numba", "pc_sample_numba", "supports"]


# ---------------------------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------------------------
def supports(oracle) -> bool:
    """True when ``oracle`` can take the fused sampling path (a MixtureOracle on any SDE)."""
    from scorebench.analytic.oracle import MixtureOracle

    return isinstance(oracle, MixtureOracle)


def _coefficients(sde, grid):
    """Per grid time: t, h = t_{i+1} - t_i (0 at the end), f, g^2, a, s^2 (closed forms)."""
    h = np.append(np.diff(grid), 0.0)
    return np.ascontiguousarray(np.stack([
        grid, h, sde.drift_coeff(grid), sde.diffusion_sq(grid), sde.mean_coeff(grid),
        sde.marginal_var(grid)], axis=1))


def _prepare(oracle, x_T, grid):
    from scorebench.analytic._validation import check_points

    from .grids import check_grid

    if not supports(oracle):
        raise ValueError(f"oracle: the fused numba samplers need a MixtureOracle, got {oracle!r}")
    if not isinstance(x_T, np.ndarray):
        raise TypeError(f"x_T: expected a numpy array, got {type(x_T).__name__}")
    if x_T.dtype not in (np.float64, np.float32):
        raise TypeError(f"x_T: expected float64 or float32, got {x_T.dtype}")
    x = np.array(check_points(x_T, oracle.d, name="x_T"), dtype=x_T.dtype, order="C")
    g = check_grid(grid, oracle.sde.T)
    return x, g, _coefficients(oracle.sde, g), cached_layout(oracle.mix, x.dtype)


def _noise(seed, arr, shape, name):
    """Validate the (seed, pre-drawn array) pair; returns (use_arr, seed, array)."""
    if arr is None:
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2 ** 63))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
                0 <= seed < 2 ** 64):
            raise ValueError(
                f"seed: expected an int in [0, 2**64) or a numpy Generator (or pass {name}), "
                f"got {seed!r}")
        return False, int(seed), np.zeros((1,) * len(shape))
    a = np.ascontiguousarray(arr, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite entries")
    return True, 0, a


def em_sample_numba(oracle, x_T, grid, dW=None, seed=None):
    """Reverse-SDE Euler–Maruyama from ``x_T`` at ``grid[0] = T`` to ``grid[-1] = eps``.

    Parameters
    ----------
    oracle : MixtureOracle
        Any SDE (the grid's coefficients come from ``oracle.sde`` in closed form or quadrature).
    x_T : ndarray, shape (N, d), float64 or float32
        The kernel runs in this dtype (see "Precision" in the module docstring).
    grid : array_like, shape (steps + 1,)
        Strictly decreasing times from ``T`` (see :func:`~scorebench.solvers.grids.time_grid`).
    dW : ndarray, shape (steps, N, d), optional
        Pre-drawn Brownian increments, ``dW[i] ~ N(0, |t_{i+1} - t_i| I)``.
    seed : int or numpy.random.Generator, optional
        Without ``dW``: the key of the per-sample streams (see the module docstring).

    Returns
    -------
    ndarray, shape (N, d), the dtype of ``x_T``
        The samples at ``eps``.
    """
    x, g, coef, lay = _prepare(oracle, x_T, grid)
    N, d = x.shape
    use_dw, seed, dW = _noise(seed, dW, (g.size - 1, N, d), "dW")
    out = np.empty_like(x)
    em_kernel(x, coef, np.ones(g.size), dW, np.zeros((1, 1, 1, 1)), use_dw, np.uint64(seed), 0,
              1.0, lay.diag, lay.shared, lay.mT, lay.W, lay.lamT, lay.logw,
              *score_args(lay, x.dtype, False, common_time=True), out)
    return out


def pc_sample_numba(oracle, x_T, grid, snr=0.16, n_corrector=1, norm="batch", alpha_factor=True,
                    dW=None, z=None, seed=None):
    """Predictor–corrector sampling (EM predictor, Langevin corrector) with the score fused in.

    Parameters
    ----------
    oracle, x_T, grid, dW, seed
        As for :func:`em_sample_numba`.
    snr : float
        Signal-to-noise ratio of the corrector step rule.
    n_corrector : int
        Langevin steps after each predictor step (>= 0).
    norm : {"batch", "sample"}
        Batch means of the per-sample norms (Song et al.'s code) or per-sample norms.
    alpha_factor : bool
        Step factor :math:`(a(t_i)/a(t_{i+1}))^2` (else 1).
    z : ndarray, shape (steps, n_corrector, N, d), optional
        Pre-drawn corrector normals; required together with ``dW`` (both or neither).

    Returns
    -------
    ndarray, shape (N, d)
    """
    from .base import SolverError

    x, g, coef, lay = _prepare(oracle, x_T, grid)
    N, d = x.shape
    if isinstance(snr, bool) or not isinstance(snr, (int, float, np.integer, np.floating)) or \
            not (math.isfinite(snr) and snr > 0):
        raise ValueError(f"snr: expected a finite number > 0, got {snr!r}")
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, (int, np.integer)) or \
            n_corrector < 0:
        raise ValueError(f"n_corrector: expected an int >= 0, got {n_corrector!r}")
    if norm not in ("batch", "sample"):
        raise ValueError(f"norm: expected 'batch' or 'sample', got {norm!r}")
    if (dW is None) != (z is None) and n_corrector > 0:
        raise ValueError("z: pass the corrector normals z together with dW (both or neither)")
    steps = g.size - 1
    use_dw, seed, dW = _noise(seed, dW, (steps, N, d), "dW")
    if use_dw and n_corrector > 0:
        _, _, z = _noise(None, z, (steps, int(n_corrector), N, d), "z")
    else:
        z = np.zeros((1, 1, 1, 1))
    a = coef[:, 4]
    alpha = (a[:-1] / a[1:]) ** 2 if alpha_factor else np.ones(steps)
    alpha = np.ascontiguousarray(alpha)
    if norm == "sample":  # no batch reduction: one pass over the grid, block by block
        out = np.empty_like(x)
        bad = em_kernel(x, coef, alpha, dW, z, use_dw, np.uint64(seed), int(n_corrector),
                        float(snr), lay.diag, lay.shared, lay.mT, lay.W, lay.lamT, lay.logw,
                        *score_args(lay, x.dtype, False, common_time=True), out)
        bad, x = (0 if bad > 0 else -1), out
    else:
        bad = pc_batch_driver(x, coef, alpha, dW, z, use_dw, np.uint64(seed), int(n_corrector),
                              float(snr), lay.diag, lay.shared, lay.mT, lay.W, lay.lamT,
                              lay.logw, *score_args(lay, x.dtype, False, common_time=True))
    if bad >= 0:
        raise SolverError(
            "pc (numba): the score is exactly zero at a corrector step (for every sample with "
            "norm='batch', for some sample with norm='sample'); the snr step rule is undefined")
    return x
