r"""Gaussian mixtures with full, diagonal, isotropic or singular (point-mass) covariances.

.. math:: p(x) = \sum_k w_k\, N(x; \mu_k, \Sigma_k), \qquad \Sigma_k = U_k \Lambda_k U_k^\top .

Each covariance is eigendecomposed once on construction; every later density, score or kernel
evaluation, at any diffusion time, reuses ``(U_k, Lambda_k)`` (see :mod:`.oracle`).

Weights must be non-negative with a positive sum; they are **normalised** to sum to one (the
normalised weights are stored in ``weights``). Covariances must be symmetric to 1e-10 relative
and positive semi-definite: eigenvalues below ``-1e-10 * max(1, largest eigenvalue)`` are
rejected, and eigenvalues within that round-off band of zero are stored as exactly zero, so a
zero covariance is a point mass.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ._validation import check_finite_array, check_points

__all__ = ["GaussianMixture"]

_SYM_TOL = 1e-10
_PSD_TOL = 1e-10


class GaussianMixture:
    """A finite Gaussian mixture ``sum_k w_k N(mu_k, Sigma_k)`` in ``d`` dimensions.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Non-negative mixture weights with a positive sum; normalised to sum 1.
    means : array_like, shape (K, d)
        Component means.
    covs : array_like, shape (K, d, d)
        Symmetric positive semi-definite covariances; zero matrices are point masses.

    Attributes
    ----------
    weights, means, covs : ndarray
        The (normalised) parameters, float64.
    eigvals : ndarray, shape (K, d)
        Eigenvalues of each covariance (>= 0).
    eigvecs : ndarray, shape (K, d, d)
        Orthonormal eigenvectors (columns) of each covariance.
    """

    def __init__(self, weights, means, covs):
        w = check_finite_array(weights, "weights", ndim=1)
        if w.size == 0:
            raise ValueError("weights: must have at least one component")
        if np.any(w < 0):
            raise ValueError(f"weights: must be >= 0, got min {w.min()}")
        if not w.sum() > 0:
            raise ValueError("weights: must not all be zero")
        K = w.shape[0]
        m = check_finite_array(means, "means", ndim=2)
        if m.shape[0] != K:
            raise ValueError(f"means: expected {K} rows (one per weight), got shape {m.shape}")
        d = m.shape[1]
        if d < 1:
            raise ValueError("means: dimension d must be >= 1")
        c = check_finite_array(covs, "covs", ndim=3, shape=(K, d, d))
        scale = np.maximum(1.0, np.abs(c).max(axis=(1, 2)))
        asym = np.abs(c - np.transpose(c, (0, 2, 1))).max(axis=(1, 2))
        if np.any(asym > _SYM_TOL * scale):
            k = int(np.argmax(asym / scale))
            raise ValueError(f"covs: covariance {k} is not symmetric (max |C - C^T| = {asym[k]:.3g})")
        c = 0.5 * (c + np.transpose(c, (0, 2, 1)))
        lam, U = np.linalg.eigh(c)
        band = _PSD_TOL * np.maximum(1.0, lam.max(axis=1))
        if np.any(lam < -band[:, None]):
            k = int(np.argmin(lam.min(axis=1) / band))
            raise ValueError(
                f"covs: covariance {k} is not positive semi-definite "
                f"(smallest eigenvalue {lam[k].min():.3g})"
            )
        lam = np.where(lam <= band[:, None], 0.0, lam)
        self.weights = w / w.sum()
        self.means = m
        self.covs = c
        self.eigvals = lam
        self.eigvecs = U
        self.K, self.d = K, d
        self.log_weights = np.log(self.weights, where=self.weights > 0,
                                  out=np.full(K, -np.inf))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def isotropic(cls, weights, means, variances):
        """Mixture with covariances ``variances[k] * I``."""
        m = check_finite_array(means, "means", ndim=2)
        v = check_finite_array(variances, "variances", ndim=1, shape=(m.shape[0],))
        if np.any(v < 0):
            raise ValueError("variances: must be >= 0")
        return cls(weights, m, v[:, None, None] * np.eye(m.shape[1])[None])

    @classmethod
    def diagonal(cls, weights, means, variances):
        """Mixture with covariances ``diag(variances[k])``."""
        m = check_finite_array(means, "means", ndim=2)
        v = check_finite_array(variances, "variances", ndim=2, shape=m.shape)
        if np.any(v < 0):
            raise ValueError("variances: must be >= 0")
        return cls(weights, m, v[:, :, None] * np.eye(m.shape[1])[None])

    @classmethod
    def point_masses(cls, points, weights=None):
        """Empirical distribution on ``points`` (K, d) (equal weights unless given)."""
        p = check_finite_array(points, "points", ndim=2)
        w = np.ones(p.shape[0]) if weights is None else weights
        return cls(w, p, np.zeros((p.shape[0], p.shape[1], p.shape[1])))

    # ------------------------------------------------------------------ properties
    @property
    def is_singular(self) -> bool:
        """True when some component has a zero eigenvalue (no density at t = 0).

        Components of zero weight count too: the kernels evaluate every component, and a
        singular one has no density at t = 0 whatever its weight (drop it to get one).
        """
        return bool(np.any(self.eigvals == 0.0))

    def mean(self) -> np.ndarray:
        """Mixture mean ``sum_k w_k mu_k``, shape (d,)."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Mixture covariance ``sum_k w_k (Sigma_k + mu_k mu_k^T) - m m^T``, shape (d, d)."""
        m = self.mean()
        second = np.einsum("k,kij->ij", self.weights, self.covs)
        second += np.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return second - np.outer(m, m)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points, shape (n, d)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
        k = rng.choice(self.K, size=int(n), p=self.weights)
        z = rng.standard_normal((int(n), self.d))
        root = self.eigvecs * np.sqrt(self.eigvals)[:, None, :]  # U diag(sqrt(lam))
        return self.means[k] + np.einsum("nij,nj->ni", root[k], z)

    # ------------------------------------------------------------------ densities
    def log_prob(self, x) -> np.ndarray:
        """log p(x), shape (N,). Raises ValueError for singular mixtures (no density)."""
        from ._mixture_numpy import mixture_terms

        x = check_points(x, self.d)
        self._require_density()
        return mixture_terms(x, self.means, self.eigvecs, self.eigvals, self.log_weights,
                             1.0, 0.0, want=("logp",))["logp"]

    def score(self, x) -> np.ndarray:
        """grad log p(x), shape (N, d)."""
        from ._mixture_numpy import mixture_terms

        x = check_points(x, self.d)
        self._require_density()
        return mixture_terms(x, self.means, self.eigvecs, self.eigvals, self.log_weights,
                             1.0, 0.0, want=("score",))["score"]

    def _require_density(self):
        if self.is_singular:
            raise ValueError(
                "t: the data distribution has singular (point-mass) components, so its density "
                "at t = 0 does not exist; use t > 0"
            )

    def char_fn(self, omega) -> np.ndarray:
        """Characteristic function ``E exp(i omega . x)`` at frequencies omega (M, d) -> (M,)."""
        om = check_finite_array(omega, "omega", ndim=2)
        if om.shape[1] != self.d:
            raise ValueError(f"omega: expected shape (M, {self.d}), got {om.shape}")
        phase = om @ self.means.T  # (M, K)
        quad = np.einsum("mi,kij,mj->mk", om, self.covs, om)
        return np.exp(1j * phase - 0.5 * quad) @ self.weights

    def cdf(self, x) -> np.ndarray:
        """Cumulative distribution function of a 1-D mixture; x of shape (N,) or (N, 1)."""
        if self.d != 1:
            raise ValueError(f"x: cdf is defined for 1-D mixtures only, this one has d = {self.d}")
        xa = check_finite_array(x, "x")
        if xa.ndim == 2 and xa.shape[1] == 1:
            xa = xa[:, 0]
        if xa.ndim != 1:
            raise ValueError(f"x: expected shape (N,) or (N, 1), got {np.shape(x)}")
        sd = np.sqrt(self.covs[:, 0, 0])
        mu = self.means[:, 0]
        diff = xa[:, None] - mu[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), 0.0)
        comp = np.where(sd[None, :] > 0, ndtr(z), (diff >= 0).astype(np.float64))
        return comp @ self.weights

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, d={self.d})"
