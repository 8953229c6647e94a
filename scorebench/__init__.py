"""scorebench: exact Gaussian-mixture oracles, fast samplers and a verification suite for
score-based diffusion models. This module only re-exports the public API.

It sets two process defaults before any OpenMP runtime starts (each unless already set):
``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=20000``. torch ships its own OpenMP runtime and
numba's parallel kernels use the system's; with libgomp's default waiting (spin ~3 ms, then
sleep; "active" spins for minutes), each runtime's idle threads spin on the cores the other
needs, which was measured to slow torch calls after a numba kernel (and the reverse) by 10-70x
on 2 cores. Pure passive waiting (spin count 0) wakes sleeping threads at every parallel region
instead, which was measured to cost 1.5x on the batch-norm PC sampler (two parallel regions per
step) and 2x on a torch loop with 2 threads. A spin of 20,000 iterations (~0.2 ms) keeps threads
awake between back-to-back regions and idle ones off the cores soon after: PC 110 -> 73 ms
(10,000 samples, 100 steps), torch EM loop 198 -> 96 ms, no cross-runtime slowdown measured.

For the same reason it sets ``OPENBLAS_THREAD_TIMEOUT=16`` (unless set; read when numpy's
OpenBLAS loads, so it applies when scorebench is imported before numpy, as in the ``scorebench``
command): OpenBLAS's idle threads spin 2^28 iterations (~0.1-0.3 s) after each threaded BLAS
call by default, and a numba kernel called in that window ran 1.6x slower (d = 16 mixture
score, 2 cores: 5.3 ms against 3.4 ms after a numpy matrix product; 3.5 ms with 2^16).

And, before numba is imported, it picks the vector width numba's kernels compile with
(:mod:`scorebench._vector_width`: 512-bit on Sapphire-Rapids-class CPUs and AMD CPUs with
AVX-512, else LLVM's default; ``SCOREBENCH_VECTOR_BITS`` overrides, user-set ``NUMBA_CPU_*``
variables win).
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("GOMP_SPINCOUNT", "20000")  # libgomp: used even with PASSIVE
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")  # OpenBLAS: spin 2^16, then sleep

from . import _vector_width

_vector_width.STATE.update(_vector_width.configure())  # before anything imports numba
if "numba" in __import__("sys").modules:  # imported already: align its arrays now (else the
    _vector_width.align_numba_arrays()  # kernel modules do it when they import numba)

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
