"""Tools for checking a diffusion solver inside its author's own test suite.

``assert_order`` measures a solver's convergence order against the exact oracles,
``strategies`` holds hypothesis strategies for mixtures and SDEs, and the pytest plugin
(registered through the ``pytest11`` entry point) provides oracle fixtures.
"""

from .assert_order import assert_order as assert_order

__all__ = ["assert_order"]
