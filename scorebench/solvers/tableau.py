r"""Butcher tableaux as validated data, and the classical explicit ones.

An s-stage explicit Runge–Kutta method for :math:`x' = f(x, t)` is

.. math::

    k_i = f\Big(x_n + h \sum_{j<i} a_{ij} k_j,\; t_n + c_i h\Big), \qquad
    x_{n+1} = x_n + h \sum_i b_i k_i,

and an embedded pair adds the error estimate :math:`h \sum_i e_i k_i` with
:math:`e = b - \hat b` (``b_err``), the difference from a lower-order solution :math:`\hat b`.

On construction a :class:`ButcherTableau` checks its shapes, that ``A`` is strictly lower
triangular (explicit), that the rows of ``A`` sum to ``c`` and ``b`` sums to one, and that ``b``
satisfies every order condition up to the declared ``order`` (and ``b - b_err`` up to
``error_order``). The conditions are generated from rooted trees: for a tree :math:`\tau` with
subtrees :math:`\tau_1..\tau_k`, the stage weight vector is
:math:`g(\tau) = \prod_j A g(\tau_j)` (componentwise, :math:`g(\bullet) = 1`), and the condition
is :math:`b^\top g(\tau) = 1/\gamma(\tau)` with the density
:math:`\gamma(\tau) = |\tau| \prod_j \gamma(\tau_j)` (Butcher 2016, Ch. 3; Hairer, Nørsett &
Wanner, *Solving ODEs I*, Sec. II.2).

References
----------
J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math.
6 (1980) 19-26.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = [
    "ButcherTableau",
    "rooted_trees",
    "order_condition_residuals",
    "EULER",
    "MIDPOINT",
    "HEUN",
    "RK4",
    "DOPRI5",
]

_TOL = 1e-12  # tableau identities hold to rounding of O(1) rational coefficients


@lru_cache(maxsize=None)
def rooted_trees(order: int) -> tuple:
    """All rooted trees with ``order`` vertices, each a sorted tuple of its subtrees."""
    if order < 1:
        return ()
    if order == 1:
        return ((),)
    found = set()

    def children(remaining: int, max_child, acc: tuple):
        # multisets of subtrees whose orders sum to ``remaining``, generated in sorted order
        if remaining == 0:
            found.add(tuple(sorted(acc)))
            return
        for k in range(1, remaining + 1):
            for sub in rooted_trees(k):
                if max_child is not None and (k, sub) < max_child:
                    continue
                children(remaining - k, (k, sub), acc + (sub,))

    children(order - 1, None, ())
    return tuple(sorted(found))


def _tree_order(tree: tuple) -> int:
    return 1 + sum(_tree_order(sub) for sub in tree)


def _density(tree: tuple) -> int:
    out = _tree_order(tree)
    for sub in tree:
        out *= _density(sub)
    return out


def _stage_weights(tree: tuple, A: np.ndarray) -> np.ndarray:
    g = np.ones(A.shape[0])
    for sub in tree:
        g = g * (A @ _stage_weights(sub, A))
    return g


def order_condition_residuals(A, b, order: int) -> np.ndarray:
    """Residuals ``b . g(tree) - 1/gamma(tree)`` of all order conditions of order ``order``."""
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.array(
        [b @ _stage_weights(tr, A) - 1.0 / _density(tr) for tr in rooted_trees(order)]
    )


def _highest_order(A, b, limit: int) -> int:
    p = 0
    while p < limit and np.all(np.abs(order_condition_residuals(A, b, p + 1)) <= _TOL):
        p += 1
    return p


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge–Kutta tableau, optionally with embedded error weights.

    Parameters
    ----------
    c : array_like, shape (s,)
        Nodes; ``c[0] == 0``.
    A : array_like, shape (s, s)
        Strictly lower-triangular coupling matrix; ``A.sum(axis=1) == c``.
    b : array_like, shape (s,)
        Weights of the propagated solution; ``b.sum() == 1``.
    b_err : array_like, shape (s,), optional
        Error weights ``b - b_hat`` of an embedded pair; they sum to zero.
    order : int
        Declared order of ``b``; every order condition up to it is checked.
    error_order : int, optional
        Declared order of ``b_hat = b - b_err`` (required when ``b_err`` is given).
    name : str

    Raises
    ------
    ValueError
        Naming the field that is inconsistent.
    """

    c: np.ndarray
    A: np.ndarray
    b: np.ndarray
    b_err: np.ndarray | None = None
    order: int = field(default=0, kw_only=True)
    error_order: int | None = field(default=None, kw_only=True)
    name: str = field(default="", kw_only=True)

    def __post_init__(self):
        def arr(value, label, ndim):
            try:
                a = np.array(value, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{label}: expected a real array ({exc})") from None
            if a.ndim != ndim:
                raise ValueError(f"{label}: expected a {ndim}-D array, got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{label}: contains non-finite entries")
            a.setflags(write=False)
            object.__setattr__(self, label, a)
            return a

        c = arr(self.c, "c", 1)
        A = arr(self.A, "A", 2)
        b = arr(self.b, "b", 1)
        s = c.shape[0]
        if s < 1:
            raise ValueError("c: a tableau needs at least one stage")
        if A.shape != (s, s):
            raise ValueError(f"A: expected shape ({s}, {s}) to match c, got {A.shape}")
        if b.shape != (s,):
            raise ValueError(f"b: expected shape ({s},) to match c, got {b.shape}")
        upper = np.argwhere(np.triu(A) != 0)
        if upper.size:
            i, j = upper[0]
            raise ValueError(
                f"A: must be strictly lower triangular (explicit method); A[{i}, {j}] = {A[i, j]}"
            )
        rows = A.sum(axis=1)
        bad = np.flatnonzero(np.abs(rows - c) > _TOL)
        if bad.size:
            i = bad[0]
            raise ValueError(f"A: row {i} sums to {rows[i]!r}, but c[{i}] = {c[i]!r}")
        if abs(b.sum() - 1.0) > _TOL:
            raise ValueError(f"b: weights must sum to 1, got {b.sum()!r}")
        if not isinstance(self.name, str):
            raise ValueError(f"name: expected a str, got {self.name!r}")
        self._check_order("order", self.order, b)
        if self.b_err is not None:
            e = arr(self.b_err, "b_err", 1)
            if e.shape != (s,):
                raise ValueError(f"b_err: expected shape ({s},) to match c, got {e.shape}")
            if abs(e.sum()) > _TOL:
                raise ValueError(f"b_err: error weights must sum to 0, got {e.sum()!r}")
            if self.error_order is None:
                raise ValueError("error_order: required when b_err is given")
            self._check_order("error_order", self.error_order, b - e)
        elif self.error_order is not None:
            raise ValueError("error_order: given without b_err")

    def _check_order(self, label: str, p, weights) -> None:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
            raise ValueError(f"{label}: expected an int >= 1, got {p!r}")
        for q in range(1, int(p) + 1):
            res = order_condition_residuals(self.A, weights, q)
            worst = int(np.argmax(np.abs(res)))
            if abs(res[worst]) > _TOL:
                raise ValueError(
                    f"{label}: tableau {self.name!r} declares {label} {p} but violates the "
                    f"order-{q} condition for tree {rooted_trees(q)[worst]} "
                    f"(residual {res[worst]:.3e})"
                )

    @property
    def stages(self) -> int:
        """Number of stages s."""
        return self.c.shape[0]

    @property
    def fsal(self) -> bool:
        """First-same-as-last: the last stage is evaluated at the new solution (c=1, A[-1]=b)."""
        return bool(
            self.stages > 1
            and self.c[-1] == 1.0
            and np.array_equal(self.A[-1], self.b)
            and self.b[-1] == 0.0
        )

    @property
    def b_hat(self) -> np.ndarray | None:
        """Weights of the embedded solution, ``b - b_err`` (None without ``b_err``)."""
        return None if self.b_err is None else self.b - self.b_err

    def satisfied_order(self, limit: int = 6) -> int:
        """Highest p <= ``limit`` such that ``b`` satisfies every order condition up to p."""
        return _highest_order(self.A, self.b, limit)


EULER = ButcherTableau([0.0], [[0.0]], [1.0], order=1, name="euler")

MIDPOINT = ButcherTableau(
    [0.0, 0.5], [[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0], order=2, name="midpoint"
)

HEUN = ButcherTableau([0.0, 1.0], [[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5], order=2, name="heun")

RK4 = ButcherTableau(
    [0.0, 0.5, 0.5, 1.0],
    [[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]],
    [1 / 6, 1 / 3, 1 / 3, 1 / 6],
    order=4,
    name="rk4",
)

# Dormand–Prince 5(4): 7 stages, the last one at the new solution (FSAL). b_err = b - b_hat are
# the error weights without dense output (scipy's RK45 uses E = b_hat - b, the same up to sign).
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_DP_B_HAT = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
DOPRI5 = ButcherTableau(
    [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0],
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0, 0.0],
        [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0, 0.0],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0, 0.0],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0],
        _DP_B,
    ],
    _DP_B,
    b_err=[71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40],
    order=5,
    error_order=4,
    name="dopri5",
)
