"""The user-facing testing API: ``scorebench.testing.assert_order`` and the pytest plugin's fixtures."""

import textwrap
from pathlib import Path

import pytest

from scorebench.solvers.runge_kutta import RK4Solver
from scorebench.testing import assert_order

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WRONG = f"{EXAMPLES / 'wrong_order_solver.py'}:WrongOrderHeun"
NAN = f"{EXAMPLES / 'nan_solver.py'}:NaNSolver"
STEPS = (32, 64, 128, 256, 512)


def test_assert_order_passes_for_rk4_and_returns_the_measurement():
    row = assert_order(RK4Solver, "gauss2d-vp", steps=STEPS)
    assert row.verdict == "pass" and row.declared_order == 4
    assert abs(row.estimated_order - 4) <= row.tolerance
    assert row.step_sizes == sorted(row.step_sizes, reverse=True) and len(row.step_sizes) == len(STEPS)
    # the same fit judged against an explicit order and tolerance
    assert assert_order("rk4", "gauss2d-vp", steps=STEPS, order=4, tolerance=0.3).estimated_order == \
        pytest.approx(row.estimated_order, rel=0, abs=0)


def test_assert_order_raises_for_the_wrong_order_example_with_the_fit():
    with pytest.raises(AssertionError, match=r"wrong-order-heun on gauss2d-vp .*estimated order [01]\.\d+.*declared 2") \
            as info:
        assert_order(WRONG, "gauss2d-vp", steps=STEPS)
    assert "errors: h=" in str(info.value) and "left out:" in str(info.value)


def test_assert_order_raises_on_a_wrong_expected_order_and_on_errors():
    with pytest.raises(AssertionError, match=r"vs declared 3: \|difference\| 1\.\d+ > tolerance"):
        assert_order("rk4", "gauss2d-vp", steps=STEPS, order=3)
    with pytest.raises(AssertionError, match="the solver failed: SolverError: .*non-finite"):
        assert_order(NAN, steps=STEPS)


def test_assert_order_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps: expected at least 3"):
        assert_order("rk4", steps=[8, 16])
    with pytest.raises(ValueError, match="steps: expected positive integer"):
        assert_order("rk4", steps=[8, 16, 0])
    with pytest.raises(ValueError, match="order: expected a finite positive"):
        assert_order("rk4", order=-1)
    with pytest.raises(ValueError, match="tolerance: expected a finite positive"):
        assert_order("rk4", tolerance=0)
    with pytest.raises(ValueError, match="adaptive solver"):
        assert_order("rk45")
    with pytest.raises(ValueError, match="unknown scenario"):
        assert_order("rk4", "nowhere-vp")


def test_pytest_plugin_fixtures_load_in_a_users_test_suite(pytester):
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import numpy as np

            def test_fixtures(sb_scenario, sb_assert_order, sb_gaussian_oracle, sb_rng):
                scen = sb_scenario("ring8-ve")
                assert (scen.dim, scen.n_components, scen.sde_name) == (2, 8, "ve")
                row = sb_assert_order("heun", "gauss2d-vp", steps=(32, 64, 128, 256))
                assert row.verdict == "pass" and abs(row.estimated_order - 2) < 0.2
                x = sb_gaussian_oracle.sample(4, 0.5, sb_rng)
                assert np.all(np.isfinite(sb_gaussian_oracle.score(x, 0.5)))
            """
        )
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_assert_order_measures_an_sde_plugin_on_one_brownian_path():
    heun = f"{EXAMPLES / 'stochastic_heun.py'}:StochasticHeun"
    row = assert_order(heun, "gauss2d-vp")
    assert (row.metric, row.kind, row.declared_order, row.verdict) == ("strong_error", "sde", 1.0, "pass")
    assert row.error_bars is not None and len(row.error_bars) == len(row.errors)
    # the same fit judged against order 2 fails (tolerance: max(0.3, CI half-width) <= 0.45)
    with pytest.raises(AssertionError, match="vs declared 2"):
        assert_order(heun, "gauss2d-vp", order=2)
