r"""Divergence estimators of the probability-flow velocity, for ODE log-likelihoods.

The probability-flow velocity and its divergence are

.. math::

    v(x, t) = f(t)\, x - \tfrac12 g(t)^2 s(x, t), \qquad
    \nabla\cdot v = \mathrm{tr}\, J_v, \quad J_v = f(t)\, I - \tfrac12 g(t)^2 J_s,

with :math:`J_s = \partial s/\partial x` (the Hessian of :math:`\log p_t` for an exact score).

``"exact"`` (:class:`ExactDivergence`)
    :math:`d f - \tfrac12 g^2 \Delta\log p_t` from the model's ``laplacian`` when it has one
    (one call of ``score_and_laplacian``); otherwise :math:`\mathrm{tr}\, J_s` from d batched
    vector-Jacobian products against the basis vectors (torch autograd, see
    :mod:`.score_jacobian`): d backward passes, exact to round-off.
``"hutchinson"`` (:class:`HutchinsonDivergence`)
    :math:`\frac1m \sum_{j=1}^m \epsilon_j^\top J_v \epsilon_j` with m probes per sample,
    Rademacher (default) or standard Gaussian, so unbiased: :math:`E[\epsilon\epsilon^\top] = I`.
    For symmetric :math:`J_v` its variance is :math:`2\|J_v\|_F^2/m` (Gaussian) and
    :math:`2(\|J_v\|_F^2 - \sum_i J_{v,ii}^2)/m` (Rademacher) (Hutchinson 1990; Grathwohl et al.
    2019). The f I part is estimated too (:math:`f |\epsilon|^2`), as ``score_sde`` does by
    differentiating the whole drift.
``"hutch++"`` (:class:`HutchPlusPlusDivergence`)
    Meyer, Musco, Musco & Woodruff (2021): with m matrix-vector products, k = m // 3 go to a
    sketch S, :math:`Q = \mathrm{qr}(J_v S)`, k to the exact trace :math:`\mathrm{tr}(Q^\top J_v Q)`
    and the remaining m - 2k to Hutchinson on the deflated remainder,

    .. math::

        \widehat{\mathrm{tr}} = \mathrm{tr}(Q^\top J_v Q)
            + \frac{1}{m - 2k} \sum_j \tilde g_j^\top J_v \tilde g_j,
        \qquad \tilde g_j = (I - QQ^\top) g_j,

    per sample, batched. Unbiased for any Q independent of the g's (the split
    :math:`\mathrm{tr} A = \mathrm{tr}(Q^\top A Q) + \mathrm{tr}(PAP)`, P = I - QQ^T, is exact),
    with conditional variance :math:`2\|PJ_vP\|_F^2/(m - 2k)` for Gaussian g. Its relative-error
    bound for PSD matrices does not apply (J_v is indefinite), but the variance drops whenever
    J_v has a few dominant eigenvalues.

Probes are drawn once per solve (:meth:`Divergence.prepare`) and held fixed along the whole
ODE path, as in ``score_sde`` (Song et al. 2021): the log-likelihood of a point is then a smooth
function of time, which adaptive step control needs, and its variance over probe draws is
:math:`2\|\int J_v\,dt\|_F^2` for one Gaussian probe. Fresh probes at every evaluation would give
a rough integrand.

Every estimator has the same small interface, so the augmented ODE uses them uniformly::

    state = div.prepare(x0, rng)          # probes (or None), one set per sample
    v, dv = div(x, t, div.select(state, rows))   # rows: the samples in this batch

References
----------
M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
smoothing splines", Commun. Stat. Simul. Comput. 19 (1990). W. Grathwohl et al., "FFJORD",
ICLR 2019. R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal Stochastic Trace
Estimation", SOSA 2021. Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._arrays import coef_like, index_rows, is_torch, like, time_to_numpy
from .problem import as_score_model
from .score_jacobian import JACOBIAN_METHODS, choose_jacobian, linearize

__all__ = [
    "DIVERGENCES",
    "PROBES",
    "check_probes",
    "Divergence",
    "ExactDivergence",
    "HutchinsonDivergence",
    "HutchPlusPlusDivergence",
    "get_divergence",
    "draw_probes",
]

PROBES = ("rademacher", "gaussian")


def draw_probes(rng, shape, probe: str) -> np.ndarray:
    """Probe vectors as float64: Rademacher (+-1 with probability 1/2) or standard Gaussian."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: stochastic divergences draw probes from an explicit numpy.random.Generator, "
            f"got {type(rng).__name__}"
        )
    if probe == "rademacher":
        return 2.0 * rng.integers(0, 2, size=shape).astype(np.float64) - 1.0
    if probe == "gaussian":
        return rng.standard_normal(shape)
    raise ValueError(f"probe: expected one of {', '.join(PROBES)}, got {probe!r}")


def _qr(Y):
    """Batched reduced QR of (N, d, k): orthonormal Q of shape (N, d, min(d, k))."""
    if is_torch(Y):
        import torch

        return torch.linalg.qr(Y, mode="reduced")[0]
    return np.linalg.qr(Y, mode="reduced")[0]


def _sum_sq(V):
    """|v_j|^2 for V of shape (N, d, k): shape (N, k)."""
    return (V * V).sum(1)


class Divergence:
    """Base class: the velocity and an estimate of its divergence at a batch (x, t).

    Parameters
    ----------
    model : score model
        Anything :func:`~scorebench.solvers.problem.as_score_model` accepts.
    sde : SDE
        Forward SDE (``drift_coeff``, ``diffusion_sq``).

    Attributes
    ----------
    name : str
    stochastic : bool
        Whether :meth:`prepare` draws probes (and needs ``rng``).
    nfe : int
        Batched score evaluations so far.
    """

    name = "divergence"
    stochastic = False

    def __init__(self, model, sde):
        self.model = as_score_model(model)
        self.sde = sde
        self.nfe = 0

    def prepare(self, x0, rng=None):
        """Per-sample state for one solve (probes), or None. Called once per solve."""
        return None

    @staticmethod
    def select(state, rows):
        """The state of the samples ``rows`` (an int array), for a batch of a subset of rows."""
        if state is None or rows is None:
            return state
        if isinstance(state, tuple):
            return tuple(index_rows(s, rows) for s in state)
        return index_rows(state, rows)

    def coefficients(self, t):
        """(f(t), g(t)^2) as float64 floats or (N,) arrays."""
        t = time_to_numpy(t)
        return self.sde.drift_coeff(t), self.sde.diffusion_sq(t)

    def _velocity(self, x, score, f, g2):
        return coef_like(f, x) * x - coef_like(0.5 * np.asarray(g2), x) * score

    def __call__(self, x, t, state=None):
        """Return ``(v, div)``: shapes (N, d) and (N,), the kind and dtype of ``x``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.model!r})"


def _row_coef(c, x):
    """A float or an (N,) array as something that multiplies an (N,) vector of x's kind."""
    if np.ndim(c) == 0:
        return float(c)
    return like(np.asarray(c, dtype=np.float64), x)


class ExactDivergence(Divergence):
    """Exact divergence: the model's Laplacian, else d batched VJPs (torch autograd)."""

    name = "exact"

    def __init__(self, model, sde, jacobian: str = "auto"):
        super().__init__(model, sde)
        if jacobian not in JACOBIAN_METHODS:
            raise ValueError(
                f"jacobian: expected one of {', '.join(JACOBIAN_METHODS)}, got {jacobian!r}"
            )
        self.jacobian = jacobian

    @property
    def uses_laplacian(self) -> bool:
        return self.model.has_laplacian and self.jacobian == "auto"

    def __call__(self, x, t, state=None):
        f, g2 = self.coefficients(t)
        self.nfe += 1
        d = x.shape[1]
        if self.uses_laplacian:
            score, lap = self.model.score_and_laplacian(x, t)
        else:
            lin = linearize(self.model, x, t, self.jacobian)
            score, lap = lin.score, 0.0
            n = x.shape[0]
            # trace of J from J e_i, i = 1..d, in chunks of basis vectors (memory ~ N d chunk)
            step = max(1, (1 << 22) // max(1, n * d))
            eye = np.eye(d)
            for i in range(0, d, step):
                basis = np.repeat(eye[None, :, i : i + step], n, axis=0)
                basis = like(basis, score) if is_torch(score) else basis
                prod = lin.matvec(basis)
                lap = lap + _diagonal_sum(prod, i)
            score, lap = _as_kind(score, x), _as_kind(lap, x)
        v = self._velocity(x, score, f, g2)
        return v, _row_coef(d * np.asarray(f), x) - _row_coef(0.5 * np.asarray(g2), x) * lap


def _diagonal_sum(prod, i0: int):
    """sum_j prod[:, i0 + j, j] for prod of shape (N, d, c): the trace over a basis chunk."""
    c = prod.shape[2]
    if is_torch(prod):
        import torch

        return torch.diagonal(prod[:, i0 : i0 + c, :], dim1=1, dim2=2).sum(1)
    return np.trace(prod[:, i0 : i0 + c, :], axis1=1, axis2=2)


def _as_kind(a, x):
    """Convert a numpy array or tensor ``a`` to the kind, dtype (and device) of ``x``."""
    if is_torch(x):
        import torch

        return a.to(dtype=x.dtype, device=x.device) if is_torch(a) else torch.as_tensor(
            np.asarray(a), dtype=x.dtype, device=x.device
        )
    if is_torch(a):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=x.dtype)


def check_probes(probes, minimum=1) -> int:
    if isinstance(probes, bool) or not isinstance(probes, numbers.Integral) or probes < minimum:
        raise ValueError(f"probes: expected an int >= {minimum}, got {probes!r}")
    return int(probes)


class HutchinsonDivergence(Divergence):
    """Hutchinson's estimator with ``probes`` fixed probes per sample (see the module notes).

    Parameters
    ----------
    model, sde
        See :class:`Divergence`.
    probes : int
        Probes m per sample (>= 1).
    probe : {"rademacher", "gaussian"}
    jacobian : {"auto", "oracle", "hessian", "autograd"}
        How products with the score's Jacobian are computed (:mod:`.score_jacobian`).
    """

    name = "hutchinson"
    stochastic = True

    def __init__(
        self, model, sde, probes: int = 1, probe: str = "rademacher", jacobian: str = "auto"
    ):
        super().__init__(model, sde)
        self.probes = check_probes(probes)
        if probe not in PROBES:
            raise ValueError(f"probe: expected one of {', '.join(PROBES)}, got {probe!r}")
        if jacobian not in JACOBIAN_METHODS:
            raise ValueError(
                f"jacobian: expected one of {', '.join(JACOBIAN_METHODS)}, got {jacobian!r}"
            )
        self.probe, self.jacobian = probe, jacobian

    def prepare(self, x0, rng=None):
        """Probes of shape (N, d, m), drawn once, in the kind and dtype of ``x0``."""
        n, d = x0.shape
        return like(draw_probes(rng, (n, d, self.probes), self.probe), x0)

    def _linearize(self, x, t):
        choose_jacobian(self.model, x, self.jacobian)
        self.nfe += 1
        return linearize(self.model, x, t, self.jacobian)

    def _apply(self, lin, V, f, g2, x):
        """Quadratic forms v_j^T J_v v_j, shape (N, k), from those of J_s."""
        q = _as_kind(lin.quad(_as_kind(V, lin.score)), x)
        fc, hc = _row_coef(f, x), _row_coef(0.5 * np.asarray(g2), x)
        if np.ndim(f):
            fc, hc = fc[:, None], hc[:, None]
        return fc * _sum_sq(V) - hc * q

    def __call__(self, x, t, state=None):
        if state is None:
            raise ValueError("state: the Hutchinson estimator needs the probes from prepare()")
        f, g2 = self.coefficients(t)
        lin = self._linearize(x, t)
        v = self._velocity(x, _as_kind(lin.score, x), f, g2)
        return v, self._apply(lin, state, f, g2, x).mean(1)


class HutchPlusPlusDivergence(HutchinsonDivergence):
    """Hutch++ with ``probes`` = m matrix-vector products per sample (m >= 3).

    k = m // 3 sketch vectors S and m - 2k Hutchinson vectors G are drawn once per solve
    (``probe`` distribution) and held fixed along the path; Q = qr(J_v S) is recomputed at each
    evaluation. On the autograd route the products are with J_v^T, which leaves the estimator
    unchanged in distribution for a symmetric Jacobian and unbiased for any Jacobian.
    """

    name = "hutch++"

    def __init__(
        self, model, sde, probes: int = 3, probe: str = "rademacher", jacobian: str = "auto"
    ):
        check_probes(probes, minimum=3)
        super().__init__(model, sde, probes, probe, jacobian)
        self.sketch = self.probes // 3
        self.remainder = self.probes - 2 * self.sketch

    def prepare(self, x0, rng=None):
        """(S, G) of shapes (N, d, k) and (N, d, m - 2k), drawn once."""
        n, d = x0.shape
        S = like(draw_probes(rng, (n, d, self.sketch), self.probe), x0)
        G = like(draw_probes(rng, (n, d, self.remainder), self.probe), x0)
        return S, G

    def __call__(self, x, t, state=None):
        if state is None:
            raise ValueError("state: the Hutch++ estimator needs (S, G) from prepare()")
        S, G = state
        f, g2 = self.coefficients(t)
        lin = self._linearize(x, t)
        score = _as_kind(lin.score, x)
        fx = _row_coef(f, x)
        hg = _row_coef(0.5 * np.asarray(g2), x)
        if np.ndim(f):
            fx, hg = fx[:, None, None], hg[:, None, None]
        JS = fx * S - hg * _as_kind(lin.matvec(_as_kind(S, lin.score)), x)
        Q = _qr(JS)
        exact_part = self._apply(lin, Q, f, g2, x).sum(1)
        Gd = G - Q @ (Q.transpose(1, 2) if is_torch(Q) else np.swapaxes(Q, 1, 2)) @ G
        rest = self._apply(lin, Gd, f, g2, x).mean(1)
        return self._velocity(x, score, f, g2), exact_part + rest


DIVERGENCES = {
    "exact": ExactDivergence,
    "hutchinson": HutchinsonDivergence,
    "hutch++": HutchPlusPlusDivergence,
}


def get_divergence(
    name, model, sde, *, probes: int = 1, probe: str = "rademacher", jacobian: str = "auto"
):
    """Build the estimator called ``name`` (``"exact"``, ``"hutchinson"``, ``"hutch++"``).

    ``probes`` and ``probe`` apply to the stochastic estimators (``probes`` is still validated
    for ``"exact"``); ``"hutch++"`` needs ``probes >= 3``.
    """
    if not isinstance(name, str) or name not in DIVERGENCES:
        raise ValueError(
            f"divergence: unknown estimator {name!r}; expected one of {', '.join(DIVERGENCES)}"
        )
    if probe not in PROBES:
        raise ValueError(f"probe: expected one of {', '.join(PROBES)}, got {probe!r}")
    if name == "exact":
        check_probes(probes)
        return ExactDivergence(model, sde, jacobian)
    return DIVERGENCES[name](model, sde, probes=probes, probe=probe, jacobian=jacobian)
