"""Order fitting: recovery of known orders, floor and pre-asymptotic exclusion, verdicts, bad input."""

import math

import numpy as np
import pytest

from scorebench.verification.orders import fit_order, order_verdict, roundoff_floor

H = 0.5 ** np.arange(2, 10)  # 8 step sizes, 1/4 ... 1/512


@pytest.mark.parametrize("p", [1, 2, 4])
def test_noisy_power_law_recovers_order_within_ci(p):
    # log e = log C + p log h + 0.01 N(0, 1): exactly the OLS model, so the (1 - 1e-7) t-interval
    # misses p with probability 1e-7. The local slopes carry noise of sd 0.01*sqrt(2)/ln 2 = 0.020,
    # so the 0.15 agreement band (7 sd) drops no point except with probability < 1e-11.
    rng = np.random.default_rng(1000 + p)
    e = 2.5 * H**p * np.exp(0.01 * rng.standard_normal(H.size))
    fit = fit_order(H, e, confidence=1 - 1e-7)
    assert fit.ok and fit.excluded == ()
    assert fit.ci[0] <= p <= fit.ci[1]
    assert fit.ci_halfwidth < 0.1  # the interval is informative (t_{6, 1-5e-8} * se ≈ 0.06 here)
    assert abs(fit.last_pair_order - p) < 0.15  # 7 sd of the last-pair noise
    assert abs(fit.intercept - math.log(2.5)) < 0.5
    assert order_verdict(fit, p).verdict == "pass"


def test_exact_power_law_is_fitted_exactly():
    fit = fit_order(H, 3.0 * H**2)
    assert fit.order == pytest.approx(2.0, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3.0), abs=1e-10)
    assert fit.ci_halfwidth < 1e-10 and fit.stderr < 1e-12
    assert fit.used == tuple(range(H.size - 1, -1, -1))  # finest first


def test_input_order_does_not_matter():
    rng = np.random.default_rng(7)
    e = H**2 * np.exp(0.02 * rng.standard_normal(H.size))
    perm = rng.permutation(H.size)
    a, b = fit_order(H, e), fit_order(H[perm], e[perm])
    assert a.order == pytest.approx(b.order, rel=1e-12) and a.ci == pytest.approx(b.ci, rel=1e-12)
    assert [perm[i] for i in b.used] == list(a.used)


def test_roundoff_floor_points_are_excluded_and_listed():
    e = H**4  # 3.9e-3 ... 1.5e-11: all above the default floor 2.2e-13
    e_floor = e.copy()
    e_floor[-2:] = [1e-14, 0.0]  # swamped by round-off
    fit = fit_order(H, e_floor)
    assert roundoff_floor() == pytest.approx(1e3 * np.finfo(float).eps)
    assert [p.index for p in fit.excluded] == [6, 7]
    assert all("round-off" in p.reason for p in fit.excluded)
    assert fit.order == pytest.approx(4.0, abs=1e-10)
    # the floor scales with the solution: at scale 1e4 the floor is 2.2e-9, so 1.5e-11 and 2.4e-10 go too
    fit_scaled = fit_order(H, e, scale=1e4)
    assert [p.index for p in fit_scaled.excluded] == [6, 7]
    # an explicit floor overrides the default
    assert [p.index for p in fit_order(H, e, floor=1e-8).excluded] == [5, 6, 7]


def test_monte_carlo_floor_uses_standard_errors():
    e = 0.1 * H
    se = np.full(H.size, 1e-4)
    # e <= 3 se = 3e-4 only at the two finest steps (1.95e-4, 3.9e-4 > 3e-4 but 1.95e-4 <= 3e-4)
    fit = fit_order(H, e, error_se=se)
    assert [p.index for p in fit.excluded] == [7]
    assert "Monte Carlo" in fit.excluded[0].reason
    fit4 = fit_order(H, e, error_se=se, se_multiple=4.0)  # 4 se = 4e-4 >= 3.9e-4
    assert [p.index for p in fit4.excluded] == [6, 7]
    assert fit4.order == pytest.approx(1.0, abs=1e-12)


def test_pre_asymptotic_coarse_points_are_excluded():
    # e = h^2 (1 + (h/0.2)^3): local slopes, finest first, 2.000, 2.000, 2.001, 2.005, 2.038, 2.27, 3.25;
    # the sixth (from h = 1/16 to 1/8) differs from the median 2.001 of the finer ones by 0.27 > 0.2,
    # so h = 1/8 (index 1) and the coarser 1/4 (index 0) are pre-asymptotic
    e = H**2 * (1 + (H / 0.2) ** 3)
    fit = fit_order(H, e)
    assert [p.index for p in fit.excluded] == [0, 1]
    assert all("pre-asymptotic" in p.reason for p in fit.excluded)
    assert abs(fit.order - 2) < 0.05
    # saturation at coarse steps: the error stops growing above h = 1/16
    e_sat = np.minimum(H**2, 1 / 256)
    fit_sat = fit_order(H, e_sat)
    assert [p.index for p in fit_sat.excluded] == [0, 1]
    assert "differs from the median" in fit_sat.excluded[1].reason
    assert "coarser than" in fit_sat.excluded[0].reason
    assert fit_sat.order == pytest.approx(2.0, abs=1e-12)


def test_max_step_marks_points_outside_the_asymptotic_range():
    fit = fit_order(H, H**2, max_step=0.1)
    assert [p.index for p in fit.excluded] == [0, 1]
    assert all("max_step" in p.reason for p in fit.excluded)


def test_wrong_declared_order_fails_and_reason_states_tolerance():
    fit = fit_order(H, H**1)
    verdict, tol, reason = order_verdict(fit, 2)
    assert verdict == "fail" and tol == pytest.approx(0.2)
    assert "tolerance 0.2" in reason and "declared 2" in reason


def test_tolerance_floor_depends_on_kind_and_grows_with_ci():
    rng = np.random.default_rng(3)
    e = H**1.25 * np.exp(0.001 * rng.standard_normal(H.size))
    fit = fit_order(H, e)
    assert order_verdict(fit, 1, kind="ode").verdict == "fail"  # |1.25 - 1| > 0.2
    v = order_verdict(fit, 1, kind="sde")  # |1.25 - 1| <= 0.3
    assert v.verdict == "pass" and v.tolerance == pytest.approx(0.3) and "floor 0.3 for sde" in v.reason
    # an explicit tolerance is used as given
    v = order_verdict(fit, 1, tolerance=0.1)
    assert v.verdict == "fail" and v.tolerance == 0.1 and "given explicitly" in v.reason
    assert order_verdict(fit, 1, tolerance=0.3).verdict == "pass"
    # a wide CI widens the tolerance: 4 points with 20 % noise
    rng = np.random.default_rng(11)
    h4 = H[:4]
    wide = fit_order(h4, h4**2 * np.exp(0.2 * rng.standard_normal(4)), agreement_abs=10.0)
    v = order_verdict(wide, 2, max_tolerance=100.0)
    assert v.tolerance == pytest.approx(max(0.2, wide.ci_halfwidth)) and wide.ci_halfwidth > 0.2


def test_inconclusive_fit_fails():
    e = H[:3] ** 2 * np.array([1.0, 1.3, 0.8])  # three points, slopes 2.38 and 1.30
    fit = fit_order(H[:3], e)
    assert fit.ok and fit.ci_halfwidth > 0.45
    verdict, tol, reason = order_verdict(fit, 2)
    assert verdict == "fail" and "inconclusive" in reason and tol > 0.45


def test_fewer_than_three_usable_points_fail_with_reason():
    fit = fit_order(H[:2], H[:2] ** 2)
    assert not fit.ok and "fewer than 3 usable points" in fit.reason
    assert fit.last_pair_order == pytest.approx(2.0)
    verdict, tol, reason = order_verdict(fit, 2)
    assert verdict == "fail" and math.isnan(tol) and "fewer than 3" in reason
    floor_fit = fit_order(H[:4], np.array([1e-3, 0.0, 0.0, 0.0]))
    assert not floor_fit.ok and math.isnan(floor_fit.order) and len(floor_fit.excluded) == 3
    assert order_verdict(floor_fit, 1).verdict == "fail"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"step_sizes": H, "errors": np.r_[H[:-1], np.nan]}, "errors"),
        ({"step_sizes": np.r_[H[:-1], np.inf], "errors": H}, "step_sizes"),
        ({"step_sizes": H, "errors": H[:-1]}, "errors"),
        ({"step_sizes": np.r_[H[:-1], H[0]], "errors": H}, "step_sizes: expected distinct"),
        ({"step_sizes": -H, "errors": H}, "step_sizes: expected positive"),
        ({"step_sizes": H, "errors": -H}, "errors: expected non-negative"),
        ({"step_sizes": H, "errors": H, "error_se": H[:3]}, "error_se"),
        ({"step_sizes": H, "errors": H, "confidence": 1.0}, "confidence"),
        ({"step_sizes": H, "errors": H, "floor": -1.0}, "floor"),
        ({"step_sizes": H, "errors": H, "min_points": 2}, "min_points"),
    ],
)
def test_bad_input_raises_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_order(**kwargs)


def test_verdict_bad_input():
    fit = fit_order(H, H)
    with pytest.raises(ValueError, match="declared_order"):
        order_verdict(fit, float("nan"))
    with pytest.raises(ValueError, match="kind"):
        order_verdict(fit, 1, kind="pde")
    with pytest.raises(ValueError, match="tolerance"):
        order_verdict(fit, 1, tolerance=0.0)
