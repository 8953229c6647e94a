r"""The table of verification measurements: what runs on which solver, on which scenarios.

Each :class:`Measurement` names a picklable top-level function (``"module:function"``) of the
measurement modules, the solvers it applies to (by kind and declared orders) and the
:class:`~scorebench.verification.profiles.Profile` field listing its default scenarios:

==========================  ==================================================  ========================
solver                      measurements                                        scenarios (profile)
==========================  ==================================================  ========================
fixed-step ODE              global error vs step (order), exact-law weak error,  ``ode_``, ``law_``,
                            point-mass exactness, log-likelihood error vs step   ``exactness_``,
                            (the effect of a known score error: ``full`` only)   ``likelihood_scenarios``
adaptive ODE                error vs rtol (tolerance proportionality),           ``adaptive_``,
                            log-likelihood error vs rtol                         ``likelihood_scenarios``
SDE with declared orders    strong error (one Brownian path), weak error (Monte  ``strong_``, ``weak_``,
                            Carlo and exact law; score error: ``full`` only)     ``law_scenarios``
SDE without orders, snr     predictor-corrector floor against snr and step       ``pc_scenarios``
divergence estimators       Hutchinson / Hutch++ bias and variance vs theory,    ``divergence_``,
                            Hutchinson with a probe held along a solve           ``likelihood_scenarios``
(no solver)                 prior mismatch, once per scenario                    ``prior_scenarios``
==========================  ==================================================  ========================

With explicit scenarios a measurement runs on those of them it suits (``scenario_ok``: e.g. the
exact law needs one Gaussian component, exactness a single point mass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scorebench.verification.scenarios import Scenario

__all__ = ["Measurement", "MEASUREMENTS", "DIVERGENCE_ESTIMATORS"]

#: Trace estimators verified against their variance theory (not registered solvers).
DIVERGENCE_ESTIMATORS = ("hutchinson", "hutch++")


def _any(_: Scenario) -> bool:
    return True


def _one_component(s: Scenario) -> bool:
    return s.has_exact_flow


def _point_mass(s: Scenario) -> bool:
    return s.has_exact_flow and s.singular


def _with_density(s: Scenario) -> bool:
    return not s.singular


@dataclass(frozen=True)
class Measurement:
    """One kind of measurement and when it applies.

    Attributes
    ----------
    metric : str
        The rows' metric.
    function : str
        ``"module:function"``; called as ``function(subject, scenario, profile, seed)`` (solver
        measurements: subject a solver spec; divergence measurements: an estimator name) or
        ``function(scenario, profile, seed)`` (``subject="none"``), returning a ResultRow.
    subject : {"ode", "adaptive", "sde-strong", "sde-weak", "sde-floor", "divergence", "hutchinson-held", "none"}
        What it measures: a solver kind (with the declared orders it needs; "sde-floor": an
        order-less SDE solver with an ``snr``, i.e. predictor-corrector), a divergence estimator
        ("hutchinson-held": Hutchinson only, called without it), or nothing (a property of the
        scenario).
    scenarios_field : str
        Profile attribute naming its default scenarios.
    scenario_ok : callable
        ``Scenario -> bool``: whether an explicitly requested scenario suits it.
    cost : float
        Rough relative run time (quick profile), used only to start the longest tasks first.
    name : str
        What progress lines and error rows call it (default ``metric``); tells apart measurements
        of the same metric, e.g. the Monte Carlo and the exact-law weak error.
    profiles : tuple of str, optional
        Names of the profiles it runs in (default: all). The effect of a known score error costs
        a few seconds per solver and runs in ``full`` only.
    """

    metric: str
    function: str
    subject: str
    scenarios_field: str
    scenario_ok: Callable[[Scenario], bool] = _any
    cost: float = 1.0
    name: str = ""
    profiles: tuple | None = None

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", self.metric)


def _isotropic_centred(s: Scenario) -> bool:
    if not s.has_exact_flow:
        return False
    mix = s.mixture()
    cov = mix.covs[0]
    return bool(np.all(mix.means == 0) and np.allclose(cov, cov[0, 0] * np.eye(mix.d), rtol=0, atol=0))


_ODE = "scorebench.verification.measure_ode"
_SDE = "scorebench.verification.measure_sde"
_LAW = "scorebench.verification.measure_law"
_PC = "scorebench.verification.measure_pc"
_LIK = "scorebench.verification.measure_likelihood"

# Costs: rough relative run times in the quick profile (only the submission order depends on them).
MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("global_error", f"{_ODE}:measure_ode_global_error", "ode", "ode_scenarios"),
    Measurement("weak_error", f"{_LAW}:measure_exact_law", "ode", "law_scenarios", _one_component,
                name="weak_error (exact law)"),
    Measurement("exactness", f"{_ODE}:measure_point_mass_exactness", "ode", "exactness_scenarios", _point_mass,
                cost=0.5),
    Measurement("tolerance_proportionality", f"{_ODE}:measure_tolerance_proportionality", "adaptive",
                "adaptive_scenarios", cost=4.0),
    Measurement("strong_error", f"{_SDE}:measure_sde_strong_error", "sde-strong", "strong_scenarios", cost=2.0),
    Measurement("weak_error", f"{_SDE}:measure_sde_weak_error", "sde-weak", "weak_scenarios", cost=8.0,
                name="weak_error (Monte Carlo)"),
    Measurement("weak_error", f"{_LAW}:measure_exact_law", "sde-weak", "law_scenarios", _one_component,
                name="weak_error (exact law)"),
    Measurement("pc_floor", f"{_PC}:measure_pc_snr", "sde-floor", "pc_scenarios", _isotropic_centred, cost=4.0),
    Measurement("weak_error", f"{_PC}:measure_pc_steps", "sde-floor", "pc_scenarios", _isotropic_centred,
                cost=2.0, name="weak_error (PC variance vs step)"),
    Measurement("loglik_error", f"{_LIK}:measure_likelihood_steps", "ode", "likelihood_scenarios", _with_density,
                cost=2.0),
    Measurement("loglik_error", f"{_LIK}:measure_likelihood_rtol", "adaptive", "likelihood_scenarios",
                _with_density, cost=2.0),
    Measurement("score_error", f"{_LIK}:measure_score_error", "ode", "law_scenarios", _one_component, cost=6.0,
                profiles=("full",)),
    Measurement("score_error", f"{_LIK}:measure_score_error", "sde-weak", "law_scenarios", _one_component,
                cost=6.0, profiles=("full",)),
    Measurement("hutchinson_variance", f"{_LIK}:measure_divergence_variance", "divergence",
                "divergence_scenarios"),
    Measurement("hutchinson_variance", f"{_LIK}:measure_held_probe_loglik", "hutchinson-held",
                "likelihood_scenarios", _one_component, name="hutchinson_variance (probe held per solve)"),
    Measurement("prior_mismatch", f"{_LAW}:measure_prior_mismatch", "none", "prior_scenarios", _with_density),
)
