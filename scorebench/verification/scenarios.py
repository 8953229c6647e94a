r"""Named verification scenarios: a data distribution with exact oracles under one forward SDE.

A scenario is a Gaussian mixture :math:`p_0 = \sum_k w_k N(\mu_k, \Sigma_k)` and a linear forward
SDE (VP, sub-VP or VE with DESIGN.md's default parameters). Through
:class:`~scorebench.analytic.oracle.MixtureOracle` every marginal :math:`p_t`, its score, Hessian
and likelihood is exact, so every measurement has an exact right-hand side. One-component
scenarios (``has_exact_flow``) also have the closed-form probability-flow map and make every
linear-Gaussian scheme's law computable with no Monte Carlo at all.

Built-in data (each under ``-vp``, ``-subvp`` and ``-ve``, e.g. ``"gauss2d-vp"``, ``"ring8-ve"``):

==============  ===  ==  ===============================================================
base            d    K   data
==============  ===  ==  ===============================================================
``gauss2d``     2    1   anisotropic Gaussian, eigenvalues (2, 0.05) rotated by 30°
``gauss16d``    16   1   anisotropic Gaussian, eigenvalues geometric in [0.05, 2], random basis
``mix1d3``      1    3   weights (0.3, 0.4, 0.3), means (-2, 0.5, 2.5), stds (0.4, 0.3, 0.6)
``points1d4``   1    4   point masses at -15, -5, 1, 10 (equal weights; no density at t = 0)
``ring8``       2    8   isotropic components (std 0.15) on the circle of radius 4
``mix16d``      16   4   diagonal covariances (variances in [0.1, 1]), spread means
``mix64d``      64   5   full covariances (eigenvalues in [0.1, 1.5], random bases)
``point2d``     2    1   a single point mass at (1, -2): DDIM's exactness check
``iso64d``      64   1   isotropic N(0, 0.25 I): predictor-corrector's variance recursion
==============  ===  ==  ===============================================================

The seeds' likelihood tutorial uses "a mixture of 3 Gaussians" in 1-D without printing its
parameters; ``mix1d3`` fixes one such mixture. Construction is deterministic: the random bases
and means come from ``np.random.default_rng`` with fixed seeds, so a scenario name always means
the same numbers, in every process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import SDE, VESDE, VPSDE, SubVPSDE

__all__ = [
    "Scenario",
    "SDE_FAMILIES",
    "list_scenarios",
    "scenario_names",
    "get_scenario",
    "register_scenario",
    "make_sde",
    "make_mixture",
]

SDE_FAMILIES = ("vp", "subvp", "ve")


# ----------------------------------------------------------------------------------------------
# data factories (top-level functions: picklable; cached per process)
# ----------------------------------------------------------------------------------------------
def _rotation2d(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _random_basis(d: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix: QR of a Gaussian matrix with the signs of R fixed."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]


def _gauss2d() -> GaussianMixture:
    u = _rotation2d(math.pi / 6.0)
    cov = u @ np.diag([2.0, 0.05]) @ u.T
    return GaussianMixture([1.0], [[0.5, -1.0]], cov[None])


def _gauss16d() -> GaussianMixture:
    rng = np.random.default_rng(1616)
    u = _random_basis(16, rng)
    cov = (u * np.geomspace(0.05, 2.0, 16)) @ u.T
    return GaussianMixture([1.0], rng.normal(0.0, 1.0, (1, 16)), cov[None])


def _mix1d3() -> GaussianMixture:
    return GaussianMixture.isotropic(
        [0.3, 0.4, 0.3], [[-2.0], [0.5], [2.5]], np.array([0.4, 0.3, 0.6]) ** 2
    )


def _points1d4() -> GaussianMixture:
    return GaussianMixture.point_masses([[-15.0], [-5.0], [1.0], [10.0]])


def _ring8() -> GaussianMixture:
    angles = 2.0 * math.pi * np.arange(8) / 8.0
    means = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture.isotropic(np.ones(8), means, np.full(8, 0.15**2))


def _mix16d() -> GaussianMixture:
    rng = np.random.default_rng(1604)
    means = rng.normal(0.0, 2.0, (4, 16))
    variances = rng.uniform(0.1, 1.0, (4, 16))
    return GaussianMixture.diagonal([0.1, 0.2, 0.3, 0.4], means, variances)


def _mix64d() -> GaussianMixture:
    rng = np.random.default_rng(6405)
    means = rng.normal(0.0, 1.5, (5, 64))
    covs = []
    for _ in range(5):
        u = _random_basis(64, rng)
        covs.append((u * rng.uniform(0.1, 1.5, 64)) @ u.T)
    return GaussianMixture([0.3, 0.25, 0.2, 0.15, 0.1], means, np.array(covs))


def _point2d() -> GaussianMixture:
    return GaussianMixture.point_masses([[1.0, -2.0]])


def _iso64d() -> GaussianMixture:
    return GaussianMixture.isotropic([1.0], np.zeros((1, 64)), [0.25])


_DATA = {
    "gauss2d": (_gauss2d, "one anisotropic Gaussian in 2-D (eigenvalues 2, 0.05; exact flow map)"),
    "gauss16d": (_gauss16d, "one anisotropic Gaussian in 16-D (eigenvalues 0.05..2; exact flow map)"),
    "mix1d3": (_mix1d3, "1-D mixture of three Gaussians (the likelihood tutorial's kind of data)"),
    "points1d4": (_points1d4, "1-D point masses at -15, -5, 1, 10 (no density at t = 0)"),
    "ring8": (_ring8, "2-D ring of 8 Gaussians (radius 4, std 0.15)"),
    "mix16d": (_mix16d, "16-D mixture of 4 diagonal Gaussians"),
    "mix64d": (_mix64d, "64-D mixture of 5 Gaussians with full covariances"),
    "point2d": (_point2d, "one point mass in 2-D (DDIM is exact on it at any step count)"),
    "iso64d": (_iso64d, "isotropic Gaussian N(0, 0.25 I) in 64-D (PC's variance recursion applies)"),
}


@functools.lru_cache(maxsize=None)
def make_mixture(base: str) -> GaussianMixture:
    """The (cached, deterministic) data distribution of a built-in scenario base name."""
    if base not in _DATA:
        raise ValueError(f"base: unknown scenario data {base!r}; expected one of {', '.join(_DATA)}")
    return _DATA[base][0]()


def make_sde(family: str) -> SDE:
    """The forward SDE of a family name with DESIGN.md's defaults ("vp", "subvp" or "ve")."""
    if family == "vp":
        return VPSDE()
    if family == "subvp":
        return SubVPSDE()
    if family == "ve":
        return VESDE()
    raise ValueError(f"family: unknown SDE family {family!r}; expected one of {', '.join(SDE_FAMILIES)}")


# ----------------------------------------------------------------------------------------------
# the scenario record and the registry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """A named data distribution under a named forward SDE.

    Attributes
    ----------
    name : str
        ``"<base>-<sde>"``, e.g. ``"gauss2d-vp"``.
    base : str
        Name of the data (a key of the built-in data, or any name for a registered scenario).
    sde_name : str
        ``"vp"``, ``"subvp"`` or ``"ve"``.
    description : str
    dim, n_components : int
        Dimension d and number of components K.
    has_exact_flow : bool
        K == 1: the PF-ODE flow map and every linear-Gaussian scheme's law are exact.
    singular : bool
        Some component has a singular covariance (point masses): no density at t = 0.
    mixture_factory, sde_factory : callable
        Zero-argument (mixture) and one-argument (family name) top-level factories, so that a
        scenario pickles by reference and rebuilds identically in any process.
    """

    name: str
    base: str
    sde_name: str
    description: str
    dim: int
    n_components: int
    has_exact_flow: bool
    singular: bool
    mixture_factory: object
    sde_factory: object = make_sde

    def mixture(self) -> GaussianMixture:
        """The data distribution p_0."""
        return self.mixture_factory()

    def sde(self) -> SDE:
        """The forward SDE."""
        return self.sde_factory(self.sde_name)

    def oracle(self) -> MixtureOracle:
        """Exact oracle of this scenario (numpy backend chosen automatically)."""
        return MixtureOracle(self.mixture(), self.sde())


_REGISTRY: dict[str, Scenario] = {}


def register_scenario(scenario: Scenario) -> Scenario:
    """Add a scenario to the registry (ValueError if its name is taken by a different one)."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected a Scenario, got {type(scenario).__name__}")
    old = _REGISTRY.get(scenario.name)
    if old is not None and old != scenario:
        raise ValueError(f"scenario: the name {scenario.name!r} is already registered")
    _REGISTRY[scenario.name] = scenario
    return scenario


def _register_builtins() -> None:
    for base, (factory, text) in _DATA.items():
        mix = make_mixture(base)
        for family in SDE_FAMILIES:
            register_scenario(
                Scenario(
                    name=f"{base}-{family}",
                    base=base,
                    sde_name=family,
                    description=f"{text}, {family.upper() if family != 'subvp' else 'sub-VP'} SDE",
                    dim=mix.d,
                    n_components=mix.K,
                    has_exact_flow=mix.K == 1,
                    singular=mix.is_singular,
                    mixture_factory=functools.partial(make_mixture, base),
                )
            )


def list_scenarios() -> list[Scenario]:
    """Every registered scenario, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def scenario_names() -> list[str]:
    """Sorted names of the registered scenarios."""
    return sorted(_REGISTRY)


def get_scenario(name) -> Scenario:
    """The scenario called ``name`` (a :class:`Scenario` is returned as is).

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered names.
    """
    if isinstance(name, Scenario):
        return name
    if not isinstance(name, str):
        raise TypeError(f"scenario: expected a scenario name (str), got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"scenario: unknown scenario {name!r}; registered: {', '.join(scenario_names())}"
        ) from None


_register_builtins()
