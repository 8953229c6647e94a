"""Samplers, ODE/SDE steppers, likelihoods, divergence estimators and the plug-in interface.

Importing this package registers every built-in solver. This module only re-exports.
"""

from . import ancestral as _ancestral  # noqa: F401  (registers "ancestral")
from . import dormand_prince as _dormand_prince  # noqa: F401  (registers "rk45")
from . import euler_maruyama as _euler_maruyama  # noqa: F401  (registers "em")
from . import exponential as _exponential  # noqa: F401  (registers "ddim", "dpm-solver-2")
from . import predictor_corrector as _predictor_corrector  # noqa: F401  (registers "pc")
from . import runge_kutta as _runge_kutta  # noqa: F401  (registers euler, midpoint, heun, rk4)
from . import scipy_reference as _scipy_reference  # noqa: F401  (registers scipy-*)
from .base import AdaptiveODESolver as AdaptiveODESolver
from .base import AdaptiveSolution as AdaptiveSolution
from .base import ODESolver as ODESolver
from .base import SDESolver as SDESolver
from .base import SolverError as SolverError
from .grids import time_grid as time_grid
from .integrate import brownian_increments as brownian_increments
from .likelihood import LikelihoodResult as LikelihoodResult
from .likelihood import log_likelihood as log_likelihood
from .models import DenoiserAdapter as DenoiserAdapter
from .models import EpsilonModelAdapter as EpsilonModelAdapter
from .models import PerturbedOracle as PerturbedOracle
from .problem import ReverseProblem as ReverseProblem
from .problem import as_score_model as as_score_model
from .registry import get_solver as get_solver
from .registry import list_solvers as list_solvers
from .registry import register_solver as register_solver
from .sample import SampleResult as SampleResult
from .sample import sample as sample
from .tableau import ButcherTableau as ButcherTableau

__all__ = [
    "ODESolver",
    "SDESolver",
    "AdaptiveODESolver",
    "AdaptiveSolution",
    "SolverError",
    "register_solver",
    "get_solver",
    "list_solvers",
    "time_grid",
    "brownian_increments",
    "ReverseProblem",
    "as_score_model",
    "ButcherTableau",
    "sample",
    "SampleResult",
    "log_likelihood",
    "LikelihoodResult",
    "EpsilonModelAdapter",
    "DenoiserAdapter",
    "PerturbedOracle",
]
