"""Shared test configuration: hypothesis profiles.

The profile comes from the environment variable ``SCOREBENCH_HYPOTHESIS_PROFILE``:

``ci`` (default)
    derandomised (the same examples on every run and machine), no deadline (numba's first
    compilation and scipy's reference solves would break one), a moderate number of examples so
    the whole suite stays within its time budget.
``dev``
    random exploration with more examples, for hunting bugs locally; failures print the
    reproduction blob, to be pinned with ``@example`` once shrunk.

Randomness inside a test never comes from hypothesis' own seeding: tests draw an integer seed
(``scorebench.testing.strategies.seeds()``) and build arrays from ``np.random.default_rng(seed)``,
so every example replays exactly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=30,
    print_blob=True,
    # Building an SDE by quadrature or an oracle's reference solve can make generation look slow.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    derandomize=False,
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("SCOREBENCH_HYPOTHESIS_PROFILE", "ci"))
