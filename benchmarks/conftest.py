"""Shared set-up for the pytest-benchmark suites in ``benchmarks/``.

Run with ``pytest benchmarks/bench_oracle.py --benchmark-only`` (``-k quick`` for the small
subset, ``--benchmark-json=out.json`` then ``python benchmarks/ratios.py out.json`` for the
ratio table). ``--oracle-full-n`` runs every implementation on the full N = 1e5 points; by
default the slow ones (everything but numba) use fewer points in the largest groups (see
``bench_oracle.points_for``) and the ratios are taken per point.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/_baselines.py


def pytest_addoption(parser):
    parser.addoption(
        "--oracle-full-n",
        action="store_true",
        default=False,
        help="run every oracle implementation on N = 1e5 points (slow: ~20 min on 2 cores)",
    )
