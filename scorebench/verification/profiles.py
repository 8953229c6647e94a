r"""Parameter sets of the verification measurements: ``quick`` (CI, < 2 minutes on 2 cores) and ``full``.

A :class:`Profile` fixes every size a measurement uses: step counts, batch and sample sizes, the
tolerances of adaptive solves, the snr values of predictor-corrector, the probe counts of the trace
estimators, and which scenarios each measurement runs on by default. It is a frozen dataclass of
numbers, strings and tuples, so it pickles to any worker and the same profile and seed give the
same numbers in every process.

Grids: every fixed-step measurement runs on the log-SNR grid by default (``ode_grid``,
``sde_grid``): uniform in :math:`\lambda = \log(a^2/s^2)`, its steps shrink with the noise level,
so the step-local stiffness :math:`|\Delta t_i| L(t_i)` is even along the grid and the asymptotic
range starts at 8-16 steps for every scenario (on the uniform grid RK4 on ``gauss2d-vp`` needs
~100 steps and point masses ~1000). ``"uniform"`` is one field away.

Sizes are chosen so that each fitted point is resolved: Monte Carlo bars sit at least 3 standard
errors below the errors they support (points at that floor are left out of the fit and listed by
:func:`~scorebench.verification.orders.fit_order`), references are at least 8x finer than the
finest fitted step (``ref_factor``) or tight DOP853 solves (``reference_rtol``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["Profile", "QUICK", "FULL", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Sizes of the measurements (see the module docstring). All step lists are step counts."""

    name: str
    eps: float = 1e-3
    # ODE global error at eps (fixed-step solvers)
    ode_grid: str = "logsnr"
    ode_steps: tuple = (8, 16, 32, 64, 128, 256)
    ode_batch: int = 32
    reference_rtol: float = 1e-12
    reference_points: int = 8
    # adaptive solvers: tolerance proportionality
    rtols: tuple = tuple(10.0 ** (-k / 2) for k in range(6, 15))  # 1e-3 .. 1e-7, 9 points
    adaptive_batch: int = 8
    # exactness on a point mass
    exact_steps: tuple = (1, 2, 3, 5, 10)
    # SDE strong error
    sde_grid: str = "logsnr"
    sde_steps: tuple = (8, 16, 32, 64, 128, 256)
    strong_samples: int = 200
    ref_factor: int = 8
    strong_reference: str = "em"
    # SDE weak error by Monte Carlo (mixtures)
    weak_steps: tuple = (8, 16, 32, 64, 128, 256, 512)
    weak_samples: int = 4_000
    # exact law of linear-Gaussian schemes (one-component data)
    law_steps: tuple = (8, 16, 32, 64, 128, 256)
    # predictor-corrector: floor against snr
    pc_snrs: tuple = (0.08, 0.16, 0.24)
    pc_steps: tuple = (25, 50)
    pc_samples: int = 2_000
    # likelihood
    lik_rtols: tuple = (1e-3, 1e-4, 1e-5, 1e-6)
    lik_steps: tuple = (16, 23, 32, 45, 64, 91, 128, 181, 256)
    lik_points: int = 16
    hutch_probes: tuple = (1, 2, 4, 8, 16)
    hutch_repeats: int = 400
    hutch_points: int = 4
    held_probe_repeats: int = 200
    score_error_sizes: tuple = (0.0, 0.01, 0.02, 0.04, 0.08)
    # default scenarios of each measurement
    ode_scenarios: tuple = ("gauss2d-vp", "mix1d3-vp")
    adaptive_scenarios: tuple = ("gauss2d-ve",)
    exactness_scenarios: tuple = ("point2d-vp",)
    strong_scenarios: tuple = ("gauss2d-vp",)
    weak_scenarios: tuple = ("gauss2d-vp",)
    law_scenarios: tuple = ("gauss2d-vp",)
    pc_scenarios: tuple = ("iso64d-vp",)
    likelihood_scenarios: tuple = ("gauss2d-vp",)
    divergence_scenarios: tuple = ("mix16d-vp",)
    prior_scenarios: tuple = ("gauss2d-vp", "gauss2d-ve", "mix1d3-vp")

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


QUICK = Profile(name="quick")

FULL = Profile(
    name="full",
    ode_steps=(8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024),
    ode_batch=128,
    reference_points=32,
    rtols=tuple(10.0 ** (-k / 2) for k in range(6, 19)),
    adaptive_batch=32,
    exact_steps=(1, 2, 3, 5, 10, 20, 50),
    sde_steps=(8, 16, 32, 64, 128, 256),
    strong_samples=1_000,
    ref_factor=16,
    weak_steps=(8, 16, 32, 64, 128, 256),
    weak_samples=80_000,
    law_steps=(8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024),
    pc_snrs=(0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32),
    pc_steps=(50, 100, 200, 400, 800),
    pc_samples=10_000,
    lik_rtols=(1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8),
    lik_steps=(16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024),
    lik_points=64,
    hutch_repeats=2_000,
    hutch_points=8,
    held_probe_repeats=1_000,
    ode_scenarios=(
        "gauss2d-vp", "gauss2d-subvp", "gauss2d-ve", "gauss16d-vp", "gauss16d-ve", "mix1d3-vp",
        "mix1d3-subvp", "mix1d3-ve", "points1d4-vp", "ring8-vp", "ring8-ve", "mix16d-vp", "mix64d-vp",
    ),
    adaptive_scenarios=("gauss2d-vp", "gauss16d-ve", "mix1d3-vp", "ring8-vp"),
    exactness_scenarios=("point2d-vp", "point2d-subvp", "point2d-ve"),
    strong_scenarios=("gauss2d-vp", "gauss2d-ve", "gauss16d-vp", "mix1d3-vp"),
    weak_scenarios=("gauss2d-vp", "mix1d3-vp", "mix1d3-ve", "ring8-vp"),
    law_scenarios=("gauss2d-vp", "gauss2d-subvp", "gauss16d-vp"),
    pc_scenarios=("iso64d-vp", "iso64d-subvp", "iso64d-ve"),
    likelihood_scenarios=("gauss2d-vp", "ring8-vp", "gauss16d-vp", "mix1d3-vp"),
    divergence_scenarios=("mix16d-vp", "ring8-vp"),
    prior_scenarios=(
        "gauss2d-vp", "gauss2d-subvp", "gauss2d-ve", "mix1d3-vp", "mix1d3-ve", "ring8-vp", "mix16d-vp",
    ),
)

PROFILES = {"quick": QUICK, "full": FULL}


def get_profile(profile) -> Profile:
    """``"quick"``, ``"full"`` or a :class:`Profile` (returned as is)."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ValueError(f"profile: expected one of {', '.join(PROFILES)} or a Profile, got {profile!r}")
