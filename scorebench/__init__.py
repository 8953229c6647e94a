"""scorebench: exact Gaussian-mixture oracles, fast samplers and a verification suite for
score-based diffusion models. This module only re-exports the public API."""

from .analytic import SDE as SDE
from .analytic import VESDE as VESDE
from .analytic import VPSDE as VPSDE
from .analytic import GaussianMixture as GaussianMixture
from .analytic import LinearSDE as LinearSDE
from .analytic import MixtureOracle as MixtureOracle
from .analytic import SubVPSDE as SubVPSDE

__version__ = "0.1.0"

__all__ = [
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "LinearSDE",
    "GaussianMixture",
    "MixtureOracle",
]
