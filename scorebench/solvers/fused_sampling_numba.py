r"""Fused numba fast paths: Euler–Maruyama and predictor–corrector sampling of a mixture oracle.

Reverse SDE on a grid :math:`T = t_0 > t_1 > \dots > t_n = \varepsilon`, :math:`h_i = t_{i+1} - t_i < 0`:

.. math::

    \text{EM:}\quad x \leftarrow x + h_i\,[f(t_i) x - g(t_i)^2 \nabla\log p_{t_i}(x)] + g(t_i)\,\Delta W_i,
    \qquad \Delta W_i \sim N(0, |h_i| I),

and predictor–corrector (Song et al. 2021, Alg. 1; the conventions of
:class:`~scorebench.solvers.predictor_corrector.PredictorCorrector`): the EM step, then
``n_corrector`` Langevin steps at :math:`t_{i+1}`,
:math:`x \leftarrow x + \epsilon \nabla\log p_{t_{i+1}}(x) + \sqrt{2\epsilon}\, z`,
:math:`\epsilon = 2\alpha_i (\mathrm{snr}\,\|z\| / \|\nabla\log p\|)^2`, norms per sample
(``norm="sample"``) or batch means of the per-sample norms (``norm="batch"``), and
:math:`\alpha_i = (a(t_i)/a(t_{i+1}))^2` (``alpha_factor=True``) or 1.

The mixture score is fused in (:mod:`._mixture_lanes_numba`); samples are processed in blocks of
``LANES`` SIMD lanes, blocks in parallel (``prange``). EM keeps a block in cache for the whole
grid (no synchronisation at all); PC with batch norms needs the batch means before each corrector
update, so it runs step by step with two parallel passes per corrector step (compute score, noise
and norms; reduce in a fixed order; update).

Randomness. Either pre-drawn increments (``dW`` of shape (steps, N, d) with variance
``|h_i|``, and for PC ``z`` of shape (steps, n_corrector, N, d)) -- the framework's Brownian path,
for strong-error work -- or normals generated in the kernel: sample ``n`` owns the stream
``(seed, n)`` of a xoshiro256++ generator (:mod:`._numba_math`, ziggurat normals), consumed step
by step (EM: the d increments of each step; PC: then the d corrector normals of each corrector
step). A sample's draws therefore depend only on ``seed`` and its index: results are identical
across runs, thread counts and block sizes. (In-kernel noise avoids the 1.6 GB that pre-drawn
increments for 100,000 samples x 1000 steps x 2 dims would take.)

Operation count per sample and step (d dims, K components, diagonal covariances): one fused
score evaluation (~10Kd + 6K flops and K exponentials, see :mod:`._mixture_lanes_numba`),
4d flops for the update, d normal draws; PC adds one score evaluation, d draws and ~6d flops per
corrector step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._mixture_lanes_numba import lanes_score, lanes_time_setup, mixture_layout
from ._numba_math import seed_stream, standard_normal

__all__ = ["em_sample_numba", "pc_sample_numba", "supports"]

LANES = 64
_FM = {"contract"}


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _score_block(Xb, a, s2, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L, SC):
    """SC (d, B) = score of p_t at the block's points Xb (d, B), t given by (a, s2)."""
    A, S2, tmp, M, S = work[0], work[1], work[2], work[3], work[4]
    for b in range(A.shape[0]):
        A[b] = a
        S2[b] = s2
    lanes_time_setup(A, S2, lamT, logw, shared, INV, C, TR, tmp)
    lanes_score(Xb, A, diag, mT, W, INV, C, TR, False, U, L, M, S, SC, work[5])


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _em_kernel(x, coef, dW, use_dw, seed, diag, shared, mT, W, lamT, logw, out):
    """coef (steps + 1, 6): t, h, f, g^2, a, s^2 at each grid time; out (N, d) at eps."""
    N, d = x.shape
    K = mT.shape[1]
    steps = coef.shape[0] - 1
    B = LANES
    for blk in prange((N + B - 1) // B):
        lo = blk * B
        nb = min(B, N - lo)
        Xb = np.empty((d, B))
        SC = np.empty((d, B))
        work = np.empty((6, B))
        INV = np.empty((d, K, B))
        U = np.empty((d, K, B))
        C = np.empty((K, B))
        TR = np.empty((K, B))
        L = np.empty((K, B))
        rs = np.empty((4, B), dtype=np.uint64)
        for b in range(B):
            n = lo + min(b, nb - 1)  # padding lanes repeat the block's last point
            for i in range(d):
                Xb[i, b] = x[n, i]
            s0, s1, s2_, s3 = seed_stream(seed, n)
            rs[0, b], rs[1, b], rs[2, b], rs[3, b] = s0, s1, s2_, s3
        for st in range(steps):
            h, f, g2 = coef[st, 1], coef[st, 2], coef[st, 3]
            _score_block(Xb, coef[st, 4], coef[st, 5], diag, shared, mT, W, lamT, logw, work,
                         INV, C, TR, U, L, SC)
            for i in range(d):
                for b in range(B):
                    Xb[i, b] += h * (f * Xb[i, b] - g2 * SC[i, b])
            if use_dw:
                g = math.sqrt(g2)
                for b in range(nb):
                    for i in range(d):
                        Xb[i, b] += g * dW[st, lo + b, i]
            else:
                gs = math.sqrt(g2 * abs(h))
                for b in range(nb):
                    state = (rs[0, b], rs[1, b], rs[2, b], rs[3, b])
                    for i in range(d):
                        z, state = standard_normal(state)
                        Xb[i, b] += gs * z
                    rs[0, b], rs[1, b], rs[2, b], rs[3, b] = state
        for b in range(nb):
            for i in range(d):
                out[lo + b, i] = Xb[i, b]


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _pc_predict(x, st, coef, dW, zc, use_dw, rs, n_corr, diag, shared, mT, W, lamT, logw, G,
                Z, part):
    """EM step ``st`` on every sample, then score, noise and norms for the first corrector."""
    N, d = x.shape
    K = mT.shape[1]
    B = LANES
    h, f, g2 = coef[st, 1], coef[st, 2], coef[st, 3]
    for blk in prange((N + B - 1) // B):
        lo = blk * B
        nb = min(B, N - lo)
        Xb = np.empty((d, B))
        SC = np.empty((d, B))
        work = np.empty((6, B))
        INV = np.empty((d, K, B))
        U = np.empty((d, K, B))
        C = np.empty((K, B))
        TR = np.empty((K, B))
        L = np.empty((K, B))
        for b in range(B):
            n = lo + min(b, nb - 1)
            for i in range(d):
                Xb[i, b] = x[n, i]
        _score_block(Xb, coef[st, 4], coef[st, 5], diag, shared, mT, W, lamT, logw, work, INV,
                     C, TR, U, L, SC)
        g = math.sqrt(g2)
        gs = math.sqrt(g2 * abs(h))
        for b in range(nb):
            n = lo + b
            if not use_dw:
                state = (rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3])
            for i in range(d):
                if use_dw:
                    noise = g * dW[st, n, i]
                else:
                    z, state = standard_normal(state)
                    noise = gs * z
                Xb[i, b] = Xb[i, b] + h * (f * Xb[i, b] - g2 * SC[i, b]) + noise
                x[n, i] = Xb[i, b]
            if not use_dw:
                rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3] = state
        if n_corr > 0:
            _corrector_inputs(Xb, lo, nb, blk, st, 0, coef[st + 1, 4], coef[st + 1, 5], zc,
                              use_dw, rs, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L,
                              SC, G, Z, part)


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _corrector_inputs(Xb, lo, nb, blk, st, j, a, s2, zc, use_dw, rs, diag, shared, mT, W, lamT,
                      logw, work, INV, C, TR, U, L, SC, G, Z, part):
    """Score G (N, d), noise Z (N, d) for corrector step j at the block's points.

    The per-sample norms go to G[:, d] and Z[:, d]; ``part[blk]`` gets the block's sums of the
    norms and the smallest score norm (the batch means are reduced from these in block order).
    """
    d = Xb.shape[0]
    _score_block(Xb, a, s2, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L, SC)
    gsum = 0.0
    zsum = 0.0
    gmin = np.inf
    for b in range(nb):
        n = lo + b
        if not use_dw:
            state = (rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3])
        gg = 0.0
        zz = 0.0
        for i in range(d):
            if use_dw:
                z = zc[st, j, n, i]
            else:
                z, state = standard_normal(state)
            G[n, i] = SC[i, b]
            Z[n, i] = z
            gg += SC[i, b] * SC[i, b]
            zz += z * z
        if not use_dw:
            rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3] = state
        gn = math.sqrt(gg)
        zn = math.sqrt(zz)
        G[n, d] = gn
        Z[n, d] = zn
        gsum += gn
        zsum += zn
        gmin = gn if gn < gmin else gmin
    part[blk, 0] = gsum
    part[blk, 1] = zsum
    part[blk, 2] = gmin


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _pc_correct(x, st, j, coef, zc, use_dw, rs, n_corr, step_batch, per_sample, diag, shared, mT,
                W, lamT, logw, G, Z, part, snr2_alpha2):
    """Langevin update j of step st; then, unless it was the last, the next corrector's inputs."""
    N, d = x.shape
    K = mT.shape[1]
    B = LANES
    for blk in prange((N + B - 1) // B):
        lo = blk * B
        nb = min(B, N - lo)
        Xb = np.empty((d, B))
        for b in range(B):
            n = lo + min(b, nb - 1)
            if per_sample:
                ratio = Z[n, d] / G[n, d]
                eps = snr2_alpha2 * ratio * ratio
            else:
                eps = step_batch
            noise = math.sqrt(2.0 * eps)
            for i in range(d):
                Xb[i, b] = x[n, i] + eps * G[n, i] + noise * Z[n, i]
        for b in range(nb):
            for i in range(d):
                x[lo + b, i] = Xb[i, b]
        if j + 1 < n_corr:
            SC = np.empty((d, B))
            work = np.empty((6, B))
            INV = np.empty((d, K, B))
            U = np.empty((d, K, B))
            C = np.empty((K, B))
            TR = np.empty((K, B))
            L = np.empty((K, B))
            _corrector_inputs(Xb, lo, nb, blk, st, j + 1, coef[st + 1, 4], coef[st + 1, 5], zc,
                              use_dw, rs, diag, shared, mT, W, lamT, logw, work, INV, C, TR, U, L,
                              SC, G, Z, part)


@njit(cache=True, error_model="numpy")
def _pc_driver(x, coef, alpha, dW, zc, use_dw, seed, n_corr, snr, per_sample, diag, shared, mT, W,
               lamT, logw):
    """The PC time loop; returns -1 on success or the first step whose score norm was zero."""
    N, d = x.shape
    nblk = (N + LANES - 1) // LANES
    rs = np.empty((N, 4), dtype=np.uint64)
    if not use_dw:
        for n in range(N):
            s0, s1, s2, s3 = seed_stream(seed, n)
            rs[n, 0], rs[n, 1], rs[n, 2], rs[n, 3] = s0, s1, s2, s3
    G = np.empty((N, d + 1))
    Z = np.empty((N, d + 1))
    part = np.empty((nblk, 3))
    for st in range(coef.shape[0] - 1):
        _pc_predict(x, st, coef, dW, zc, use_dw, rs, n_corr, diag, shared, mT, W, lamT, logw, G,
                    Z, part)
        c = 2.0 * alpha[st] * snr * snr
        for j in range(n_corr):
            gsum = 0.0
            zsum = 0.0
            gmin = np.inf
            for blk in range(nblk):  # fixed order: the batch means do not depend on threads
                gsum += part[blk, 0]
                zsum += part[blk, 1]
                gmin = min(gmin, part[blk, 2])
            if (per_sample and gmin == 0.0) or gsum == 0.0:
                return st
            ratio = zsum / gsum
            _pc_correct(x, st, j, coef, zc, use_dw, rs, n_corr, c * ratio * ratio, per_sample,
                        diag, shared, mT, W, lamT, logw, G, Z, part, c)
    return -1


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
    if x_T.dtype != np.float64:
        raise TypeError(f"x_T: expected float64, got {x_T.dtype}")
    x = np.array(check_points(x_T, oracle.d), dtype=np.float64, order="C")
    g = check_grid(grid, oracle.sde.T)
    return x, g, _coefficients(oracle.sde, g), mixture_layout(oracle.mix)


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
    x_T : ndarray, shape (N, d), float64
    grid : array_like, shape (steps + 1,)
        Strictly decreasing times from ``T`` (see :func:`~scorebench.solvers.grids.time_grid`).
    dW : ndarray, shape (steps, N, d), optional
        Pre-drawn Brownian increments, ``dW[i] ~ N(0, |t_{i+1} - t_i| I)``.
    seed : int or numpy.random.Generator, optional
        Without ``dW``: the key of the per-sample streams (see the module docstring).

    Returns
    -------
    ndarray, shape (N, d)
        The samples at ``eps``.
    """
    x, g, coef, lay = _prepare(oracle, x_T, grid)
    N, d = x.shape
    use_dw, seed, dW = _noise(seed, dW, (g.size - 1, N, d), "dW")
    out = np.empty_like(x)
    _em_kernel(x, coef, dW, use_dw, np.uint64(seed), lay.diag, lay.shared, lay.mT, lay.W,
               lay.lamT, lay.logw, out)
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
    bad = _pc_driver(x, coef, np.ascontiguousarray(alpha), dW, z, use_dw, np.uint64(seed),
                     int(n_corrector), float(snr), norm == "sample", lay.diag, lay.shared, lay.mT,
                     lay.W, lay.lamT, lay.logw)
    if bad >= 0:
        raise SolverError(
            f"pc (numba): the score is exactly zero at step {bad} (for every sample with "
            "norm='batch', for some sample with norm='sample'); the snr step rule is undefined")
    return x
