r"""Hypothesis strategies for SDEs, Gaussian mixtures and times, for testing diffusion solvers.

Downstream users get the same random-but-valid test objects scorebench tests itself with (in the
spirit of ``xarray.testing.strategies``)::

    from hypothesis import given
    from scorebench.testing import strategies as sbst

    @given(sbst.gaussian_mixtures(max_k=3), sbst.sdes(), sbst.seeds())
    def test_my_solver(mix, sde, seed): ...

Objects are well-conditioned *by construction*, never filtered with ``assume``: a mixture is
built from a drawn seed with ``np.random.default_rng(seed)``; each covariance is
:math:`U \Lambda U^\top` with :math:`U` a Haar-random orthogonal matrix (QR of a Gaussian matrix
with the signs of :math:`R`'s diagonal fixed) and eigenvalues log-uniform in
:math:`[c/\kappa, c]`, the extremes pinned so the condition number is exactly :math:`\kappa`.
Hypothesis draws the structure (number of components, dimension, :math:`\kappa`, covariance
type, point masses) so failures shrink to small, well-conditioned cases.

Requires ``hypothesis`` (the ``test`` extra).

References
----------
Nichol, Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021 (the cosine
schedule behind :func:`sdes`'s ``"cosine"`` kind).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import SDE, VESDE, VPSDE, SubVPSDE

from ._schedules import CosineSchedule, QuadraticBetaSchedule, ScheduleSDE, SigmaPowerSchedule

__all__ = [
    "seeds",
    "sdes",
    "gaussian_mixtures",
    "build_gaussian_mixture",
    "mixture_oracles",
    "times",
    "evaluation_points",
    "SDE_FAMILIES",
    "LINEAR_KINDS",
]

SDE_FAMILIES = ("vp", "subvp", "ve", "linear")
LINEAR_KINDS = ("cosine", "sigma_power", "quadratic_beta")
COVARIANCE_TYPES = ("full", "diagonal", "isotropic")


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``np.random.default_rng``: integers in ``[0, 2**32 - 1]``.

    Hypothesis' own derandomisation does not seed numpy; draw a seed with this strategy and build
    every random array from ``np.random.default_rng(seed)`` so a failure replays exactly.
    """
    return st.integers(min_value=0, max_value=2**32 - 1)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats log-uniform in ``[lo, hi]`` (endpoints included, shrinking towards ``lo``)."""
    return st.floats(math.log(lo), math.log(hi)).map(lambda u: min(max(math.exp(u), lo), hi))


# ---------------------------------------------------------------------- SDEs
@st.composite
def _linear_sdes(draw, horizons, kinds):
    T = draw(horizons)
    kind = draw(st.sampled_from(kinds))
    if kind == "cosine":
        schedule = CosineSchedule(draw(st.floats(0.005, 0.2)), draw(st.floats(1.0, 1.5)), T)
    elif kind == "sigma_power":
        schedule = SigmaPowerSchedule(draw(_log_uniform(2.0, 50.0)), T)
    else:
        schedule = QuadraticBetaSchedule(
            draw(_log_uniform(0.01, 1.0)), draw(st.floats(0.0, 20.0)), draw(st.floats(0.0, 10.0)), T
        )
    return ScheduleSDE(schedule, T)


def sdes(
    families=SDE_FAMILIES,
    *,
    horizons: st.SearchStrategy[float] | None = None,
    linear_kinds=LINEAR_KINDS,
    max_sigma: float = 1e3,
) -> st.SearchStrategy[SDE]:
    """Forward SDEs with valid random parameters.

    Parameters
    ----------
    families : sequence of {"vp", "subvp", "ve", "linear"}
        Families to draw from. ``"vp"`` and ``"subvp"`` draw ``beta_min`` log-uniform in
        ``[0.01, 2]`` and ``beta_max`` in ``[beta_min, beta_min + 30]`` (equal values, a constant
        beta, included); ``"ve"`` draws ``sigma_min`` log-uniform in ``[1e-3, 0.5]`` and
        ``sigma_max`` log-uniform in ``[max(1, 4 sigma_min), max_sigma]``; ``"linear"`` draws a
        :class:`~scorebench.analytic.linear_sde.LinearSDE` from ``linear_kinds``.
    horizons : strategy of float, optional
        The horizon T; ``st.just(1.0)`` by default.
    linear_kinds : sequence of {"cosine", "sigma_power", "quadratic_beta"}
        Smooth schedules for the ``"linear"`` family: the truncated cosine schedule of Nichol and
        Dhariwal (angle from theta0 in [0.005, 0.2] to theta1 in [1, 1.5]), the tutorial VE
        schedule g(t) = sigma^(t/T) (sigma in [2, 50]) and a VP schedule with quadratic beta.
        Each keeps its closed-form a(t), s(t)^2 on ``sde.schedule.a`` / ``.s2`` for reference.
    max_sigma : float
        Largest VE ``sigma_max`` drawn.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of SDE
    """
    unknown = set(families) - set(SDE_FAMILIES)
    if unknown or not families:
        raise ValueError(f"families: expected a non-empty subset of {SDE_FAMILIES}, got {families!r}")
    unknown = set(linear_kinds) - set(LINEAR_KINDS)
    if unknown or not linear_kinds:
        raise ValueError(
            f"linear_kinds: expected a non-empty subset of {LINEAR_KINDS}, got {linear_kinds!r}"
        )
    if not (isinstance(max_sigma, (int, float)) and math.isfinite(max_sigma) and max_sigma >= 4.0):
        raise ValueError(f"max_sigma: expected a finite float >= 4, got {max_sigma!r}")
    horizons = st.just(1.0) if horizons is None else horizons

    @st.composite
    def beta_pair(draw):
        beta_min = draw(_log_uniform(0.01, 2.0))
        return beta_min, beta_min + draw(st.floats(0.0, 30.0))

    @st.composite
    def ve(draw):
        sigma_min = draw(_log_uniform(1e-3, 0.5))
        return VESDE(sigma_min, draw(_log_uniform(max(1.0, 4.0 * sigma_min), max_sigma)), T=draw(horizons))

    options = []
    for family in families:
        if family == "vp":
            options.append(st.builds(lambda b, T: VPSDE(*b, T=T), beta_pair(), horizons))
        elif family == "subvp":
            options.append(st.builds(lambda b, T: SubVPSDE(*b, T=T), beta_pair(), horizons))
        elif family == "ve":
            options.append(ve())
        else:
            options.append(_linear_sdes(horizons, tuple(linear_kinds)))
    return st.one_of(options)


# ---------------------------------------------------------------------- mixtures
def _random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """Haar-random orthogonal matrix: QR of a Gaussian matrix, columns signed by diag(R)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def build_gaussian_mixture(
    seed: int,
    k: int,
    d: int,
    *,
    condition: float = 10.0,
    covariance_type: str = "full",
    n_point_masses: int = 0,
    mean_scale: float = 2.0,
    scale_range: tuple[float, float] = (0.1, 1.0),
) -> GaussianMixture:
    r"""Build a well-conditioned random Gaussian mixture from a seed (no hypothesis needed).

    Weights are :math:`0.8\,\mathrm{Dirichlet}(1) + 0.2/k` (every weight at least
    :math:`0.2/k`); means are :math:`N(0, \text{mean\_scale}^2 I)`. Component j has a scale
    :math:`c_j` log-uniform in ``scale_range`` and eigenvalues log-uniform in
    :math:`[c_j/\kappa, c_j]` with the largest set to :math:`c_j` and the smallest to
    :math:`c_j/\kappa` (d >= 2), so every non-degenerate covariance has condition number exactly
    :math:`\kappa` = ``condition`` (1 for ``"isotropic"``). The last ``n_point_masses``
    components get a zero covariance (point masses).

    Parameters
    ----------
    seed : int
        Seed of ``np.random.default_rng``.
    k, d : int
        Number of components and dimension.
    condition : float
        Condition number :math:`\kappa \ge 1` of each covariance.
    covariance_type : {"full", "diagonal", "isotropic"}
        ``"full"``: :math:`U \Lambda U^\top` with Haar-random orthogonal U; ``"diagonal"``:
        :math:`\Lambda` in a random order; ``"isotropic"``: :math:`c_j I`.
    n_point_masses : int
        How many components (the last ones) are point masses, ``0 <= n_point_masses <= k``.
    mean_scale : float
        Standard deviation of the component means.
    scale_range : (float, float)
        Range of the per-component scales :math:`c_j` (largest eigenvalues).

    Returns
    -------
    GaussianMixture
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type: expected one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if not (isinstance(d, (int, np.integer)) and d >= 1):
        raise ValueError(f"d: expected a positive integer, got {d!r}")
    if not (math.isfinite(condition) and condition >= 1.0):
        raise ValueError(f"condition: expected a finite float >= 1, got {condition!r}")
    if not 0 <= n_point_masses <= k:
        raise ValueError(f"n_point_masses: expected an integer in [0, {k}], got {n_point_masses!r}")
    lo, hi = scale_range
    if not 0.0 < lo <= hi < math.inf:
        raise ValueError(f"scale_range: expected 0 < lo <= hi < inf, got {scale_range!r}")
    rng = np.random.default_rng(seed)
    weights = 0.8 * rng.dirichlet(np.ones(k)) + 0.2 / k
    means = mean_scale * rng.standard_normal((k, d))
    covs = np.zeros((k, d, d))
    for j in range(k - n_point_masses):
        c = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        if covariance_type == "isotropic" or d == 1:
            lam = np.full(d, c)
        else:
            log_lam = rng.uniform(math.log(c / condition), math.log(c), size=d)
            log_lam[0], log_lam[1] = math.log(c), math.log(c / condition)
            lam = np.exp(rng.permutation(log_lam))
        if covariance_type == "full":
            U = _random_orthogonal(rng, d)
            cov = (U * lam[None, :]) @ U.T
            covs[j] = 0.5 * (cov + cov.T)
        else:
            covs[j] = np.diag(lam)
    return GaussianMixture(weights, means, covs)


@st.composite
def gaussian_mixtures(
    draw,
    *,
    min_k: int = 1,
    max_k: int = 6,
    d: int | None = None,
    min_d: int = 1,
    max_d: int = 5,
    max_condition: float = 1e4,
    allow_point_masses: bool = False,
    covariance_types=COVARIANCE_TYPES,
    mean_scale: float = 2.0,
) -> GaussianMixture:
    r"""Random Gaussian mixtures, well-conditioned by construction.

    Hypothesis draws K in ``[min_k, max_k]``, d in ``[min_d, max_d]`` (or the given ``d``), a
    condition number :math:`\kappa` log-uniform in ``[1, max_condition]`` (both ends reachable),
    a covariance type and, with ``allow_point_masses``, how many components are point masses
    (0 to K); then a seed, from which :func:`build_gaussian_mixture` makes the arrays.

    Every component's covariance has condition number :math:`\kappa` (isotropic ones 1) and
    largest eigenvalue in [0.1, 1], so eigenvalues across the whole mixture lie in
    :math:`[0.1/\kappa, 1]`; weights are at least :math:`0.2/K`; means are
    :math:`N(0, \text{mean\_scale}^2 I)`.

    Parameters
    ----------
    min_k, max_k : int
        Range of the number of components.
    d : int, optional
        Fixed dimension; when None it is drawn from ``[min_d, max_d]``.
    min_d, max_d : int
        Range of the dimension.
    max_condition : float
        Largest condition number of a covariance (>= 1).
    allow_point_masses : bool
        Allow components with zero covariance (the mixture then has no density at t = 0).
    covariance_types : sequence of {"full", "diagonal", "isotropic"}
        Covariance structures to draw from.
    mean_scale : float
        Standard deviation of the component means.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of GaussianMixture
    """
    if not (1 <= min_k <= max_k):
        raise ValueError(f"max_k: expected 1 <= min_k <= max_k, got min_k={min_k}, max_k={max_k}")
    if d is None and not (1 <= min_d <= max_d):
        raise ValueError(f"max_d: expected 1 <= min_d <= max_d, got min_d={min_d}, max_d={max_d}")
    if not (math.isfinite(max_condition) and max_condition >= 1.0):
        raise ValueError(f"max_condition: expected a finite float >= 1, got {max_condition!r}")
    if set(covariance_types) - set(COVARIANCE_TYPES) or not covariance_types:
        raise ValueError(
            f"covariance_types: expected a non-empty subset of {COVARIANCE_TYPES}, "
            f"got {covariance_types!r}"
        )
    k = draw(st.integers(min_k, max_k))
    dim = d if d is not None else draw(st.integers(min_d, max_d))
    log_cond = draw(st.floats(0.0, math.log10(max_condition)))
    condition = min(10.0 ** log_cond, max_condition)
    covariance_type = draw(st.sampled_from(tuple(covariance_types)))
    n_point = draw(st.integers(0, k)) if allow_point_masses else 0
    seed = draw(seeds())
    return build_gaussian_mixture(
        seed, k, dim, condition=condition, covariance_type=covariance_type,
        n_point_masses=n_point, mean_scale=mean_scale,
    )


def mixture_oracles(mixtures=None, sde_strategy=None) -> st.SearchStrategy[MixtureOracle]:
    """Exact oracles ``MixtureOracle(mix, sde)`` from :func:`gaussian_mixtures` and :func:`sdes`
    (or the strategies given)."""
    mixtures = gaussian_mixtures() if mixtures is None else mixtures
    sde_strategy = sdes() if sde_strategy is None else sde_strategy
    return st.builds(MixtureOracle, mixtures, sde_strategy)


def times(sde: SDE, low: float = 1e-4, high: float | None = None) -> st.SearchStrategy[float]:
    """Diffusion times in ``[low, high]`` (``high = sde.T`` by default).

    Half the draws are uniform, half log-uniform, so both the small-t end (where scores are
    large and kernels narrow) and the bulk are covered; both endpoints are reachable.

    Parameters
    ----------
    sde : SDE
        Supplies the horizon T.
    low : float
        Smallest time, > 0 (the density of point-mass data does not exist at t = 0).
    high : float, optional
        Largest time, at most ``sde.T``.
    """
    high = sde.T if high is None else high
    if not (0.0 < low <= high <= sde.T):
        raise ValueError(f"low: expected 0 < low <= high <= T = {sde.T}, got low={low}, high={high}")
    return st.one_of(st.floats(low, high), _log_uniform(low, high))


@st.composite
def evaluation_points(draw, oracle: MixtureOracle, t: float, *, n: int = 8,
                      max_sigmas: float = 6.0) -> np.ndarray:
    r"""Points at which to evaluate an oracle at time t, shape (n, d).

    Half are exact samples of :math:`p_t`; the rest sit at a component's mean
    :math:`a\mu_k` plus a random direction times ``r`` standard deviations of the widest
    direction of :math:`C_k = a^2\Sigma_k + s^2 I`, with ``r`` uniform in ``[0, max_sigmas]``
    (tails and the regions between components). Built from a drawn seed.
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    rng = np.random.default_rng(draw(seeds()))
    marg = oracle.marginal(t)
    n_exact = (n + 1) // 2
    x = [oracle.sample(n_exact, t, rng)]
    if n > n_exact:
        k = rng.integers(0, marg.K, size=n - n_exact)
        u = rng.standard_normal((n - n_exact, oracle.d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        r = rng.uniform(0.0, max_sigmas, size=(n - n_exact, 1))
        width = np.sqrt(marg.eigvals.max(axis=1))[k][:, None]
        x.append(marg.means[k] + r * width * u)
    return np.concatenate(x, axis=0)
