"""Butcher tableaux: identities, order conditions (declared orders are sharp), validation."""

from __future__ import annotations

import numpy as np
import pytest

from scorebench.solvers.tableau import (
    DOPRI5,
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    ButcherTableau,
    order_condition_residuals,
    rooted_trees,
)

ALL = [EULER, MIDPOINT, HEUN, RK4, DOPRI5]


def test_rooted_tree_counts_match_oeis_a000081():
    # number of rooted trees with n vertices: 1, 1, 2, 4, 9, 20, 48 (OEIS A000081)
    assert [len(rooted_trees(n)) for n in range(1, 8)] == [1, 1, 2, 4, 9, 20, 48]


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_tableau_identities(tab):
    assert np.max(np.abs(tab.A.sum(axis=1) - tab.c)) <= 1e-15
    assert abs(tab.b.sum() - 1.0) <= 1e-15
    assert np.all(np.triu(tab.A) == 0.0)
    assert tab.c[0] == 0.0


@pytest.mark.parametrize("tab", ALL, ids=lambda t: t.name)
def test_declared_order_is_exact_and_sharp(tab):
    # every condition up to the declared order holds to rounding ...
    for q in range(1, tab.order + 1):
        assert np.max(np.abs(order_condition_residuals(tab.A, tab.b, q))) < 1e-14
    # ... and at least one condition of the next order fails by far more than rounding
    assert np.max(np.abs(order_condition_residuals(tab.A, tab.b, tab.order + 1))) > 1e-4
    assert tab.satisfied_order() == tab.order


def test_dopri5_embedded_pair_and_fsal():
    assert DOPRI5.stages == 7 and DOPRI5.fsal
    assert not RK4.fsal
    assert abs(DOPRI5.b_err.sum()) < 1e-16
    b_hat = DOPRI5.b_hat
    for q in range(1, 5):
        assert np.max(np.abs(order_condition_residuals(DOPRI5.A, b_hat, q))) < 1e-14
    assert np.max(np.abs(order_condition_residuals(DOPRI5.A, b_hat, 5))) > 1e-5
    # scipy's RK45 uses the same pair; its error weights E = b_hat - b are ours with a sign flip
    from scipy.integrate import RK45

    np.testing.assert_allclose(RK45.E, -DOPRI5.b_err, rtol=0, atol=1e-17)
    np.testing.assert_allclose(RK45.B, DOPRI5.b[:6], rtol=0, atol=1e-17)


def test_tableau_arrays_are_read_only():
    with pytest.raises(ValueError):
        RK4.b[0] = 0.5


def _heun(**overrides):
    kw = dict(c=[0.0, 1.0], A=[[0.0, 0.0], [1.0, 0.0]], b=[0.5, 0.5], order=2, name="h")
    kw.update(overrides)
    return ButcherTableau(kw.pop("c"), kw.pop("A"), kw.pop("b"), kw.pop("b_err", None), **kw)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(A=[[0.0, 0.5], [1.0, 0.0]]), r"A: must be strictly lower triangular.*A\[0, 1\]"),
        (dict(A=[[0.0, 0.0], [0.9, 0.0]]), r"A: row 1 sums to"),
        (dict(b=[0.6, 0.5]), r"b: weights must sum to 1"),
        (dict(b=[0.5, 0.25, 0.25]), r"b: expected shape \(2,\)"),
        (dict(A=[[0.0]]), r"A: expected shape \(2, 2\)"),
        (dict(c=[[0.0, 1.0]]), r"c: expected a 1-D array"),
        (dict(b=[np.nan, 0.5]), r"b: contains non-finite"),
        (dict(order=3), r"order: tableau 'h' declares order 3 but violates the order-3"),
        (dict(order=0), r"order: expected an int >= 1"),
        (dict(b_err=[0.5, 0.5], error_order=1), r"b_err: error weights must sum to 0"),
        (dict(b_err=[0.5, -0.5]), r"error_order: required when b_err is given"),
        (dict(error_order=1), r"error_order: given without b_err"),
    ],
)
def test_invalid_tableaux_raise_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        _heun(**overrides)


def test_valid_embedded_pair_heun_euler():
    # Heun-Euler 2(1): b_err = b - b_euler
    tab = _heun(b_err=[-0.5, 0.5], error_order=1)
    np.testing.assert_array_equal(tab.b_hat, [1.0, 0.0])
    with pytest.raises(ValueError, match="error_order: tableau 'h' declares error_order 2"):
        _heun(b_err=[-0.5, 0.5], error_order=2)
