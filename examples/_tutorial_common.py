"""Shared plumbing of the ``examples/tutorial_*.py`` scripts.

Every tutorial script takes the same command line (``--quick``, ``--out DIR``, ``--seed N``),
asserts its numbers with :func:`check` (an ``AssertionError`` that ``python -O`` does not strip),
draws its figures with a non-interactive matplotlib backend into ``--out``, and finally writes
the checked numbers to ``<out>/<NAME>.json``. The scripts are run both as
``python examples/tutorial_x.py`` and imported by file path from the test suite, so each one puts
its own directory on ``sys.path`` before importing this module.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import scorebench as sb


def check(cond: bool, message: str) -> None:
    """Raise AssertionError when ``cond`` is false (not stripped by ``python -O``)."""
    if not cond:
        raise AssertionError(message)


def parse_args(argv, doc: str, seed: int, seed_help: str) -> argparse.Namespace:
    """Parse the tutorials' common command line ``[--quick] [--out DIR] [--seed N]``.

    Parameters
    ----------
    argv : list of str or None
        Arguments (``None``: ``sys.argv[1:]``).
    doc : str
        The script's module docstring; its first line is the ``--help`` description.
    seed : int
        Default of ``--seed``.
    seed_help : str
        What the seed drives (the ``--help`` text of ``--seed``).
    """
    p = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (CI), < 15 s")
    p.add_argument("--out", default="example-out", help="directory for figures (default ./example-out)")
    p.add_argument("--seed", type=int, default=seed, help=seed_help)
    return p.parse_args(argv)


def start_figures(out: str):
    """Select the non-interactive Agg backend, create ``out`` and return ``matplotlib.pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    return plt


def save_figure(fig, out: str, filename: str, dpi: int = 100) -> None:
    """Write ``fig`` to ``out/filename`` at ``dpi`` and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(os.path.join(out, filename), dpi=dpi)
    plt.close(fig)


def finish(summary: dict, out: str, name: str) -> int:
    """Write ``summary`` to ``out/<name>.json``, report success and return exit status 0."""
    with open(os.path.join(out, f"{name}.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    print(f"  all checks passed; figures in {out}")
    return 0


def three_gaussians() -> sb.GaussianMixture:
    """1-D data: weights (0.3, 0.4, 0.3), means (-2, 0.5, 2.5), stds (0.4, 0.3, 0.6).

    The same mixture as the verification suite's ``mix1d3`` scenario.
    """
    return sb.GaussianMixture.isotropic(
        [0.3, 0.4, 0.3], [[-2.0], [0.5], [2.5]], np.array([0.4, 0.3, 0.6]) ** 2
    )
