"""The records the bench runner works on: an implementation, its outcome, a case, a scaling curve.

A :class:`Case` is one workload at one size with several implementations, all fed the same
points and the same exact score, all compared with the same exact values; ratios are computed
between the rows of one case. A :class:`Curve` is a scaling study: one implementation timed at
several sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Outcome", "Impl", "Case", "Curve", "KINDS"]

KINDS = ("scorebench", "peer", "baseline")


@dataclass
class Outcome:
    """What one run of an implementation returns.

    Attributes
    ----------
    values : object
        What the case's ``errors`` compares with the exact values.
    nfe : int or None
        Batched score (right-hand-side) evaluations; per-sample methods report the largest
        per-sample count.
    work : dict
        Operation counts of this run (``exps``, ``normals``, ``flops``) for the bound.
    extra : dict
        Anything else worth recording (JSON-serialisable).
    """

    values: Any
    nfe: int | None = None
    work: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class Impl:
    """One implementation of a case: ``run()`` returns an :class:`Outcome`.

    ``kind`` is ``"scorebench"``, ``"peer"`` or ``"baseline"`` (the seed-style way; also a peer
    for the best-peer ratio). ``run`` is None for a skipped implementation, with ``note`` saying
    why. ``warmup`` (untimed) compiles numba kernels and fills caches. ``family`` groups the
    rows of a work-precision sweep.
    """

    label: str
    kind: str
    run: Callable[[], Outcome] | None = None
    warmup: Callable[[], Any] | None = None
    note: str = ""
    family: str | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")


@dataclass
class Case:
    """One workload at one size: implementations, the exact answer and the throughput unit.

    ``errors(values) -> (max, mean)`` absolute errors against the exact oracle;
    ``items`` / wall time is the throughput in ``unit``. ``details(values) -> dict``, when
    given, adds what else describes an output (a Monte Carlo standard error) to the row's
    ``extra``; like ``errors`` it runs once per implementation, outside the timed calls.
    """

    workload: str
    name: str
    params: dict
    impls: list
    errors: Callable[[Any], tuple]
    error_metric: str
    items: float
    unit: str
    target: float | None = None  # work-precision: the max error every family must reach
    details: Callable[[Any], dict] | None = None


@dataclass
class Curve:
    """A scaling study: ``run(size) -> Outcome`` timed at each size; exponent fitted in log-log.

    ``prepare(size)``, when given, runs untimed before the timed runs of that size.
    """

    workload: str
    name: str
    param: str
    sizes: tuple
    run: Callable[[int], Outcome]
    errors: Callable[[int, Any], tuple] | None = None
    memory: bool = False  # also fit peak memory against size (bytes per unit of size)
    prepare: Callable[[int], Any] | None = None  # untimed set-up of one size (data, references)
    params: dict = field(default_factory=dict)
