"""scorebench: exact Gaussian-mixture oracles, fast samplers and a verification suite for
score-based diffusion models. This module only re-exports the public API.

It sets one process default before any OpenMP runtime starts: ``OMP_WAIT_POLICY=PASSIVE``
(unless already set). torch ships its own OpenMP runtime and numba's parallel kernels use the
system's; with the default busy-waiting, each runtime's idle threads spin on the cores the other
needs, which was measured to slow torch calls after a numba kernel (and the reverse) by 10-70x
on 2 cores. Passive waiting costs at most ~2x on very short (< 1 ms) numba calls.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
