r"""numpy, numba and torch backends of the mixture oracle agree, and the dispatch picks numba.

Tolerances. The kernels compute the same quantities in different orders, so they agree to a
few ulp *of the terms they add up*, not of a result that cancels: the score is
:math:`\sum_k \pi_k g_k` and the Laplacian
:math:`\sum_k \pi_k(|g_k|^2 - \mathrm{tr} C_k^{-1}) - |s|^2`, which cancel far from the data.
Each comparison is therefore relative to the natural scale
:math:`\sum_k \pi_k |g_k|` (score) and :math:`\sum_k \pi_k (|g_k|^2 + \mathrm{tr} C_k^{-1})`
(Laplacian), computed here independently, point by point in each component's eigenbasis.

Why 1e-10 of that scale holds with margin: near the data the kernels agree to ~1e-14. At the
points 1e3 standard deviations out, log N_k ~ -5e5, so the responsibilities (and through them
the score and Laplacian) are only defined to ~eps |log N_k| ~ 1e-10 in *any* float64 evaluation;
measured worst case over this file: 3e-11 (score and Laplacian, point masses, VP, t = 1).
logp is compared relative to max(1, |log p|) (worst 5e-14). The numba Laplacian is also
checked against the cancellation-free variance form
:math:`\sum_k \pi_k |g_k - s|^2 - \sum_k \pi_k \mathrm{tr} C_k^{-1}` relative to
:math:`|\Delta \log p| + \sum_k \pi_k \mathrm{tr} C_k^{-1}` alone (worst 1.4e-11), a check the
numpy reference's difference of squares fails by up to 0.5 (singular data, sub-VP, t = 1e-5).
"""

from __future__ import annotations

import zlib

import numba
import numpy as np
import pytest
import torch

from scorebench.analytic import _backends
from scorebench.analytic._mixture_numba import mixture_terms_numba
from scorebench.analytic._mixture_numpy import mixture_terms
from scorebench.analytic._numba_exp import exp_nonpositive
from scorebench.analytic.mixture import GaussianMixture
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VESDE, VPSDE, SubVPSDE

WANT = ("logp", "score", "laplacian")
RTOL = 1e-10


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _full_mixture(rng, K, d, cond, rank=None):
    """Random full covariances, eigenvalues log-uniform in [1/cond, 1] (rank-deficient if asked)."""
    covs = []
    for _ in range(K):
        lam = np.exp(rng.uniform(np.log(1.0 / cond), 0.0, d))
        lam[0], lam[-1] = 1.0 / cond, 1.0
        if rank is not None:
            lam[rank:] = 0.0
        Q = _rotation(rng, d)
        covs.append((Q * lam) @ Q.T)
    return GaussianMixture(rng.random(K) + 0.2, 3.0 * rng.standard_normal((K, d)), np.array(covs))


def _mixtures():
    rng = np.random.default_rng(20240601)
    weights = rng.random(4) + 0.1
    weights[2] = 0.0  # a zero-weight component contributes nothing
    return {
        "full-d3-cond1e4": _full_mixture(rng, 4, 3, 1e4),  # small-d loops
        "full-d9-cond1e3": _full_mixture(rng, 3, 9, 1e3),  # BLAS projections
        "singular-d3": _full_mixture(rng, 3, 3, 1e2, rank=1),  # rotated, rank 1
        "diagonal-d5": GaussianMixture.diagonal(
            rng.random(3) + 0.1, rng.standard_normal((3, 5)), rng.uniform(1e-2, 5.0, (3, 5))
        ),
        "zero-weight-d2": GaussianMixture.isotropic(
            weights, rng.standard_normal((4, 2)), rng.random(4) + 0.1
        ),
        "point-masses-d2": GaussianMixture.point_masses(rng.standard_normal((5, 2))),
    }


MIXTURES = _mixtures()
SDES = {
    "vp": VPSDE(),
    "subvp": SubVPSDE(),
    "ve1e3": VESDE(sigma_min=0.01, sigma_max=1e3),
}


def _points(oracle, t, n, rng):
    """Samples of p_t plus points 10, 1e2 and 1e3 standard deviations away from the mean."""
    x = oracle.sample(n, float(np.max(t)), rng)
    marg = oracle.marginal(float(np.max(t)))
    std = np.sqrt(np.linalg.eigvalsh(marg.covariance()).max())
    u = rng.standard_normal((3, oracle.d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    far = marg.mean() + np.array([10.0, 1e2, 1e3])[:, None] * std * u
    return np.concatenate([x, far])


def _scales(mix, a, s2, x):
    """Per-point scales sum_k pi_k |g_k| and sum_k pi_k (|g_k|^2 + tr C_k^-1), sum_k pi_k tr C_k^-1
    and the variance-form Laplacian, from g_k = -U_k (U_k^T (x - a mu_k) / lambda_k) computed here
    point by point (independent of the kernels under test; the eigenbasis keeps it exact for
    singular data at small t, where a dense solve would lose ~cond(C_k) ulp)."""
    resp = _terms(mixture_terms, mix, x, a, s2, ("resp",))["resp"]
    a = np.broadcast_to(np.asarray(a, float), (x.shape[0],))
    s2 = np.broadcast_to(np.asarray(s2, float), (x.shape[0],))
    lam = a[:, None, None] ** 2 * mix.eigvals[None] + s2[:, None, None]  # (N, K, d)
    z = np.einsum("kde,nkd->nke", mix.eigvecs, x[:, None, :] - a[:, None, None] * mix.means[None])
    g = -np.einsum("kde,nke->nkd", mix.eigvecs, z / lam)
    tr = (1.0 / lam).sum(2)
    gn = np.linalg.norm(g, axis=2)
    score = np.einsum("nk,nkd->nd", resp, g)
    var_form = np.einsum("nk,nk->n", resp, ((g - score[:, None]) ** 2).sum(2)) - (resp * tr).sum(1)
    return (resp * gn).sum(1), (resp * (gn ** 2 + tr)).sum(1), (resp * tr).sum(1), var_form


def _terms(kernel, mix, x, a, s2, want=WANT):
    return kernel(x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2, want)


def _assert_close(got, ref, scale_s, scale_l, rtol=RTOL):
    np.testing.assert_array_less(
        np.abs(got["logp"] - ref["logp"]), rtol * np.maximum(1.0, np.abs(ref["logp"]))
    )
    np.testing.assert_array_less(
        np.linalg.norm(got["score"] - ref["score"], axis=1), rtol * scale_s + 1e-300
    )
    np.testing.assert_array_less(np.abs(got["laplacian"] - ref["laplacian"]), rtol * scale_l)


def _coeffs(sde, t):
    return sde.mean_coeff(t), sde.marginal_var(t)


@pytest.mark.parametrize("sde_name", sorted(SDES))
@pytest.mark.parametrize("mix_name", sorted(MIXTURES))
def test_numba_matches_numpy_reference(mix_name, sde_name):
    mix, sde = MIXTURES[mix_name], SDES[sde_name]
    oracle = MixtureOracle(mix, sde)
    rng = np.random.default_rng(zlib.crc32(f"{mix_name}/{sde_name}".encode()))
    n = 150
    t_pp = np.exp(rng.uniform(np.log(1e-5), 0.0, n + 3))  # per-point times in [1e-5, 1]
    for t in (1e-5, 0.3, 1.0, t_pp):
        x = _points(oracle, t, n, rng)
        a, s2 = _coeffs(sde, t)
        args = (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2)
        ref = mixture_terms(*args, WANT)
        got = mixture_terms_numba(*args, WANT)
        scale_s, scale_l, trace, var_form = _scales(mix, a, s2, x)
        _assert_close(got, ref, scale_s, scale_l)
        # the numba Laplacian is the cancellation-free variance form, accurate to its own size
        np.testing.assert_array_less(
            np.abs(got["laplacian"] - var_form), RTOL * (np.abs(var_form) + trace)
        )
        for sub in (("logp",), ("score",), ("laplacian",), ("score", "laplacian")):
            part = mixture_terms_numba(*args, sub)
            assert set(part) == set(sub)
            for key in sub:  # every subset gives bit-identical numbers
                np.testing.assert_array_equal(part[key], got[key])


@pytest.mark.parametrize("d", [6, 12])
def test_one_product_path_agrees_with_the_eigenbasis_path(monkeypatch, d):
    """Well-conditioned full covariances at a common time take one product with C_k^-1 per
    component; forced through the two-product eigenbasis path instead, every output agrees to
    1e-13 of its scale (the rounding analysis allows ~cond d eps = 100 d eps), and both to the
    numpy reference at RTOL, far points included."""
    from scorebench.analytic import _mixture_numba

    rng = np.random.default_rng(7 + d)
    mix = _full_mixture(rng, 5, d, 50.0)  # cond(C_k(t)) <= 50 at every t
    oracle = MixtureOracle(mix, VPSDE())
    for t in (0.05, 0.5):
        x = _points(oracle, t, 200, rng)
        a, s2 = _coeffs(VPSDE(), t)
        var = a * a * mix.eigvals + s2
        assert (var.max(1) / var.min(1)).max() <= _mixture_numba._INVERSE_MAX_COND
        one = _terms(mixture_terms_numba, mix, x, a, s2)
        monkeypatch.setattr(_mixture_numba, "_INVERSE_MAX_COND", 0.0)
        two = _terms(mixture_terms_numba, mix, x, a, s2)
        monkeypatch.undo()
        assert not np.array_equal(one["score"], two["score"])  # the paths really differ
        scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
        np.testing.assert_array_less(np.abs(one["score"] - two["score"]).max(1), 1e-13 * scale_s)
        np.testing.assert_array_less(np.abs(one["laplacian"] - two["laplacian"]), 1e-13 * scale_l)
        np.testing.assert_array_less(np.abs(one["logp"] - two["logp"]),
                                     1e-13 * np.maximum(1.0, np.abs(two["logp"])))
        _assert_close(one, _terms(mixture_terms, mix, x, a, s2), scale_s, scale_l)


def test_per_point_times_without_grouped_log_determinant():
    """Eigenvalues outside [1e-38, 1e38] switch the log-determinant to one log per eigenvalue."""
    mix = MIXTURES["point-masses-d2"]
    rng = np.random.default_rng(7)
    x = 1e-20 * rng.standard_normal((40, 2)) + mix.means[0]
    a = np.full(40, 1.0)
    s2 = np.exp(rng.uniform(np.log(1e-60), np.log(1e-30), 40))
    args = (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2)
    ref = mixture_terms(*args, WANT)
    got = mixture_terms_numba(*args, WANT)
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    _assert_close(got, ref, scale_s, scale_l)


@pytest.mark.parametrize("mix_name", ["full-d9-cond1e3", "diagonal-d5", "point-masses-d2"])
def test_torch_float64_matches_numpy_and_numba(mix_name):
    mix, sde = MIXTURES[mix_name], SDES["vp"]
    oracle = MixtureOracle(mix, sde, backend="numpy")
    rng = np.random.default_rng(11)
    for t in (1e-5, 0.5, np.exp(rng.uniform(np.log(1e-5), 0.0, 103))):
        x = _points(oracle, t, 100, rng)
        a, s2 = _coeffs(sde, t)
        ref = _terms(mixture_terms, mix, x, a, s2)
        nb = _terms(mixture_terms_numba, mix, x, a, s2)
        xt = torch.as_tensor(x)
        tt = torch.as_tensor(t) if np.ndim(t) else t
        s, lap = oracle.score_and_laplacian(xt, tt)
        got = {"logp": oracle.log_prob(xt, tt).numpy(), "score": s.numpy(),
               "laplacian": lap.numpy()}
        scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
        _assert_close(got, ref, scale_s, scale_l)
        _assert_close(got, nb, scale_s, scale_l)


@pytest.mark.parametrize("mix_name", ["full-d9-cond1e3", "diagonal-d5", "zero-weight-d2"])
def test_torch_float32_within_1e_4_on_well_conditioned_cases(mix_name):
    """float32 has eps 6e-8; with condition numbers <= 1e3 of C_k(t) at t >= 0.1 and points drawn
    from p_t the rounding error is ~1e3 eps ~ 6e-5 of the term scale at worst, inside 1e-4."""
    mix, sde = MIXTURES[mix_name], SDES["vp"]
    oracle = MixtureOracle(mix, sde)
    rng = np.random.default_rng(13)
    for t in (0.1, 0.5, 1.0):
        x = oracle.sample(200, t, rng)
        a, s2 = _coeffs(sde, t)
        ref = _terms(mixture_terms, mix, x, a, s2)
        x32 = torch.as_tensor(x, dtype=torch.float32)
        s, lap = oracle.score_and_laplacian(x32, t)
        lp = oracle.log_prob(x32, t)
        assert s.dtype == lap.dtype == lp.dtype == torch.float32
        got = {"logp": lp.double().numpy(), "score": s.double().numpy(),
               "laplacian": lap.double().numpy()}
        scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
        _assert_close(got, ref, scale_s, scale_l, rtol=1e-4)


@pytest.mark.parametrize("backend", ["numpy", "numba", "auto"])
@pytest.mark.parametrize("mix_name, per_point", [("diagonal-d5", False), ("full-d9-cond1e3", True),
                                                 ("zero-weight-d2", False)])
def test_float32_points_give_float32_results_from_every_backend(backend, mix_name, per_point):
    """float32 numpy points in, float32 out, whichever kernel runs. Where no float32 kernel
    exists (numpy; numba with per-point times) the float64 result is rounded once, so it equals
    the float64 call on the same points rounded, bit for bit; the float32 kernels (numba at a
    common time, and auto once they are loaded) agree to 1e-4 of the term scale, with
    ~eps (|x| + a |mu|) / lambda_min added to the score's (see
    :func:`test_numba_float32_within_1e_4_on_well_conditioned_cases`). float16 points give
    float64 results."""
    mix, sde = MIXTURES[mix_name], SDES["vp"]
    oracle = MixtureOracle(mix, sde, backend=backend)
    x32 = oracle.sample(300, 0.5, np.random.default_rng(23)).astype(np.float32)
    t = np.full(300, 0.5) if per_point else 0.5
    got = {"logp": oracle.log_prob(x32, t), "laplacian": oracle.laplacian(x32, t),
           "score": oracle.score(x32, t)}
    assert all(v.dtype == np.float32 for v in got.values())
    assert oracle.denoise(x32, t).dtype == np.float32
    x = x32.astype(np.float64)
    ref = {"logp": oracle.log_prob(x, t), "laplacian": oracle.laplacian(x, t),
           "score": oracle.score(x, t)}
    if backend == "numpy" or per_point:  # no float32 kernel can have run
        for k in got:
            np.testing.assert_array_equal(got[k], ref[k].astype(np.float32))
    else:
        _assert_close_float32(got, ref, mix, sde, 0.5, x)
    assert oracle.score(x32.astype(np.float16), t).dtype == np.float64


def _assert_close_float32(got, ref, mix, sde, t, x):
    """float32 results against float64 ones, to 1e-4 of the term scale; the score's scale gets
    eps (|x| + a max|mu_k|) / lambda_min added: the gradients are formed from float32 x and
    float32 a mu_k, so their rounding is relative to those, not to |g_k| (which vanishes at a
    component's mean)."""
    a, s2 = _coeffs(sde, t)
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    lam_min = (a * a * mix.eigvals + s2).min()
    scale_s = scale_s + (np.linalg.norm(x, axis=1)
                         + a * np.linalg.norm(mix.means, axis=1).max()) / lam_min
    assert all(v.dtype == np.float32 for v in got.values())
    _assert_close({k: v.astype(np.float64) for k, v in got.items()}, ref, scale_s, scale_l,
                  rtol=1e-4)


@pytest.mark.parametrize("mix_name", ["full-d9-cond1e3", "diagonal-d5", "zero-weight-d2"])
def test_numba_float32_within_1e_4_on_well_conditioned_cases(mix_name):
    """The numba float32 kernels (float32 numpy points, common time) against the float64
    reference on the same points. As for torch float32 above: condition numbers of C_k(t) up to
    ~500 here (full-d9-cond1e3 at t = 0.02, where the kernel takes two products in the
    eigenbasis; from t = 0.1 on it multiplies by C_k^-1 itself, condition <= 100) and points
    drawn from p_t put the rounding at ~cond eps ~ 3e-5 of the scale at worst, inside 1e-4
    (measured worst: 9.3e-6, log p of full-d9-cond1e3; scores and Laplacians below 4e-7)."""
    from scorebench.analytic import _mixture_numba

    mix, sde = MIXTURES[mix_name], SDES["vp"]
    oracle = MixtureOracle(mix, sde, backend="numba")
    rng = np.random.default_rng(29)
    for t in (0.02, 0.1, 0.5, 1.0):
        x32 = oracle.sample(300, t, rng).astype(np.float32)
        x = x32.astype(np.float64)
        a, s2 = _coeffs(sde, t)
        ref = _terms(mixture_terms, mix, x, a, s2)
        got = _terms(mixture_terms_numba, mix, x32, a, s2)
        _assert_close_float32(got, ref, mix, sde, t, x)
    if mix.d > 4:  # the generic kernel itself ran in float32, not float64 and rounded
        sigs = _mixture_numba._serial_kernel.signatures
        assert any(sig[0].dtype == numba.float32 for sig in sigs)


def test_torch_keeps_dtype_device_and_is_differentiable():
    mix = MIXTURES["full-d3-cond1e4"]
    oracle = MixtureOracle(mix, SDES["subvp"])
    rng = np.random.default_rng(17)
    x = torch.as_tensor(oracle.sample(64, 0.2, rng), dtype=torch.float64).requires_grad_(True)
    for dtype in (torch.float32, torch.float64):
        xd = x.detach().to(dtype)
        for out in (oracle.log_prob(xd, 0.2), oracle.score(xd, 0.2), oracle.laplacian(xd, 0.2)):
            assert out.dtype == dtype and out.device == xd.device
    (grad,) = torch.autograd.grad(oracle.log_prob(x, 0.2).sum(), x)
    score = oracle.score(x.detach(), 0.2)
    scale_s = _scales(mix, *_coeffs(SDES["subvp"], 0.2), x.detach().numpy())[0]
    np.testing.assert_array_less(np.linalg.norm((grad - score).numpy(), axis=1), RTOL * scale_s)


def test_dispatch_choice():
    big, small = 10**5, 10
    assert _backends.choose("auto", big, 8, 2, ("score",)) == "numba"
    assert _backends.choose("auto", big, 8, 2, ("score", "laplacian")) == "numba"
    assert _backends.choose("auto", big, 8, 2, ("logp",)) == "numba"
    assert _backends.choose("auto", small, 2, 2, ("score",)) == "numpy"
    assert _backends.choose("auto", big, 8, 2, ("hessian",)) == "numpy"
    assert _backends.choose("auto", big, 8, 2, ("resp",)) == "numpy"
    assert _backends.choose("numba", small, 2, 2, ("score",)) == "numba"
    assert _backends.choose("numpy", big, 8, 2, ("score",)) == "numpy"
    assert _backends.KERNELS["numba"] is mixture_terms_numba


def test_mid_sized_batches_use_numba_once_its_kernel_is_compiled(monkeypatch):
    """From 1024 to 32768 (point, component) pairs "auto" takes numba only when the kernel that
    call would run is already compiled in this process (no seconds of compilation for a call
    numpy answers in milliseconds)."""
    from scorebench.analytic import _mixture_numba, _unrolled_mixture_numba

    mid = 1000  # x 8 components
    monkeypatch.setattr(_unrolled_mixture_numba, "_FUNCTIONS", {})
    monkeypatch.setattr(_backends, "_numpy_pairs", 0)
    assert not _mixture_numba.compiled_for(3, per_point=False)
    assert _backends.choose("auto", mid, 8, 3, ("score",)) == "numpy"
    assert _backends.choose("auto", 10, 8, 3, ("score",)) == "numpy"  # below 1024: always numpy
    mix = _full_mixture(np.random.default_rng(3), 8, 3, 10.0)
    MixtureOracle(mix, VPSDE(), backend="numba").score(np.zeros((5, 3)), 0.5)  # compiles
    assert _mixture_numba.compiled_for(3, per_point=False)
    assert _backends.choose("auto", mid, 8, 3, ("score",)) == "numba"
    assert _backends.choose("auto", 10, 8, 3, ("score",)) == "numpy"
    # per-point times run the generic kernel: numba once that one is compiled
    mixture_terms_numba(np.zeros((5, 3)), mix.means, mix.eigvecs, mix.eigvals, mix.log_weights,
                        np.full(5, 0.9), np.full(5, 0.1), ("score",))
    assert _backends.choose("auto", mid, 8, 3, ("score",), per_point=True) == "numba"


def test_mid_sized_batches_move_to_numba_after_enough_numpy_work(monkeypatch):
    """Rent or buy: once mid-sized calls have given numpy 2^21 (point, component) pairs, the
    next one loads the numba kernel even though it is not compiled yet; small calls stay numpy."""
    from scorebench.analytic import _mixture_numba

    monkeypatch.setattr(_mixture_numba, "compiled_for", lambda d, per_point, dtype, K: False)
    monkeypatch.setattr(_backends, "_numpy_pairs", 0)
    mid = 2048  # x 8 components = 2^14 pairs per call
    calls = _backends._NUMPY_PAIRS_BEFORE_NUMBA // (mid * 8)
    assert calls == 128
    picks = [_backends.choose("auto", mid, 8, 2, ("score",)) for _ in range(calls + 2)]
    assert picks == ["numpy"] * calls + ["numba"] * 2
    assert _backends.choose("auto", 10, 8, 2, ("score",)) == "numpy"  # below 1024: always numpy
    assert _backends.choose("numpy", mid, 8, 2, ("score",)) == "numpy"
    assert _backends.choose("auto", mid, 8, 2, ("hessian",)) == "numpy"


def test_large_batch_through_the_oracle_uses_numba():
    """2e5 points, d = 2, K = 8 through backend="auto": bit-identical to the numba kernel, within
    1e-10 of the reference on a subset, finite everywhere."""
    rng = np.random.default_rng(19)
    angles = 2 * np.pi * np.arange(8) / 8
    mix = GaussianMixture.isotropic(np.ones(8), 4 * np.stack([np.cos(angles), np.sin(angles)], 1),
                                    np.full(8, 0.05))
    sde = VPSDE()
    oracle = MixtureOracle(mix, sde)
    n = 200_000
    x = oracle.sample(n, 0.05, rng)
    assert _backends.choose(oracle.backend, n, oracle.K, oracle.d, WANT) == "numba"
    s, lap = oracle.score_and_laplacian(x, 0.05)
    lp = oracle.log_prob(x, 0.05)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(lap)) and np.all(np.isfinite(lp))
    a, s2 = _coeffs(sde, 0.05)
    direct = _terms(mixture_terms_numba, mix, x, a, s2)
    np.testing.assert_array_equal(s, direct["score"])
    np.testing.assert_array_equal(lap, direct["laplacian"])
    np.testing.assert_array_equal(lp, direct["logp"])
    sub = rng.choice(n, 500, replace=False)
    ref = mixture_terms(x[sub], mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2, WANT)
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x[sub])
    _assert_close({k: v[sub] for k, v in direct.items()}, ref, scale_s, scale_l)


def test_numba_rejects_what_it_does_not_compute():
    mix = MIXTURES["point-masses-d2"]
    x = np.zeros((3, 2))
    args = (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights)
    with pytest.raises(ValueError, match="want"):
        mixture_terms_numba(*args, 0.5, 0.5, ("hessian",))
    with pytest.raises(ValueError, match="^t:"):
        mixture_terms_numba(*args, 1.0, 0.0, ("score",))  # point masses at t = 0
    with pytest.raises(ValueError, match="^a:"):
        mixture_terms_numba(*args, np.ones(4), np.ones(4), ("score",))
    with pytest.raises(ValueError, match="^t:"):
        MixtureOracle(mix, VPSDE(), backend="numba").score(x, 0.0)


def test_vectorised_exp_within_two_ulp():
    rng = np.random.default_rng(23)
    x = np.concatenate([
        -rng.uniform(0.0, 708.0, 100_000),
        -rng.uniform(0.0, 1.0, 10_000),
        [0.0, -0.0, -1e-300, -np.log(2) / 2, -708.0, -708.5, -745.2, -1e4, -np.inf],
    ])
    out = np.empty_like(x)
    exp_nonpositive(x, out, x.size)
    ref = np.exp(x)
    normal = x >= -708.0
    assert np.all(np.abs(out[normal] - ref[normal]) <= 2 * np.spacing(ref[normal]))
    # below -708 the value (< 3e-308) is flushed to zero: only ever a weight relative to 1
    assert np.all(out[~normal] == 0.0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_cuda_keeps_device_and_matches_numpy():
    mix, sde = MIXTURES["full-d9-cond1e3"], SDES["vp"]
    oracle = MixtureOracle(mix, sde)
    rng = np.random.default_rng(29)
    x = _points(oracle, 0.3, 200, rng)
    a, s2 = _coeffs(sde, 0.3)
    ref = _terms(mixture_terms, mix, x, a, s2)
    xg = torch.as_tensor(x, device="cuda")
    s, lap = oracle.score_and_laplacian(xg, 0.3)
    lp = oracle.log_prob(xg, 0.3)
    assert s.device.type == lap.device.type == lp.device.type == "cuda"
    got = {"logp": lp.cpu().numpy(), "score": s.cpu().numpy(), "laplacian": lap.cpu().numpy()}
    scale_s, scale_l, _, _ = _scales(mix, a, s2, x)
    _assert_close(got, ref, scale_s, scale_l)
