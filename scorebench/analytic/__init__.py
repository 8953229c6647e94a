"""Exact oracles: SDE families, Gaussian mixtures and their exact marginals, scores and flows."""

from .linear_sde import LinearSDE as LinearSDE
from .mixture import GaussianMixture as GaussianMixture
from .oracle import MixtureOracle as MixtureOracle
from .sde import SDE as SDE
from .sde import SubVPSDE as SubVPSDE
from .sde import VESDE as VESDE
from .sde import VPSDE as VPSDE

__all__ = ["SDE", "VPSDE", "SubVPSDE", "VESDE", "LinearSDE", "GaussianMixture", "MixtureOracle"]
