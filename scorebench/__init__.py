"""scorebench: exact Gaussian-mixture oracles, fast samplers and a verification suite for
score-based diffusion models. This module only re-exports the public API."""

from .analytic import SDE as SDE
from .analytic import VESDE as VESDE
from .analytic import VPSDE as VPSDE
from .analytic import GaussianMixture as GaussianMixture
from .analytic import LinearSDE as LinearSDE
from .analytic import MixtureOracle as MixtureOracle
from .analytic import SubVPSDE as SubVPSDE
from .solvers import DenoiserAdapter as DenoiserAdapter
from .solvers import EpsilonModelAdapter as EpsilonModelAdapter
from .solvers import LikelihoodResult as LikelihoodResult
from .solvers import ODESolver as ODESolver
from .solvers import PerturbedOracle as PerturbedOracle
from .solvers import SampleResult as SampleResult
from .solvers import SDESolver as SDESolver
from .solvers import log_likelihood as log_likelihood
from .solvers import register_solver as register_solver
from .solvers import sample as sample

__version__ = "0.1.0"

__all__ = [
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "LinearSDE",
    "GaussianMixture",
    "MixtureOracle",
    "sample",
    "SampleResult",
    "log_likelihood",
    "LikelihoodResult",
    "ODESolver",
    "SDESolver",
    "register_solver",
    "EpsilonModelAdapter",
    "DenoiserAdapter",
    "PerturbedOracle",
]
