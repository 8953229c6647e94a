r"""The generated small-d mixture kernel (:mod:`scorebench.analytic._unrolled_mixture_numba`).

Both of its forms (eigenbasis, d <= 4; inverse, d <= 8, for well-conditioned covariances) must
give the numpy reference's numbers for every K (components padded to chunks of
``chunk_size(d)``, chunks merged with Chan-Golub-LeVeque), every number of points (partial blocks), and
wherever the winning component sits (a later chunk taking over exercises both merge branches).

Tolerances, as in ``test_backends.py``: the implementations add the same terms in different
orders, so they agree to a few ulp of the terms' natural scale. With K <= 40 components in
d <= 4 the sums have at most ~200 terms, so the rounding is below 200 eps ~ 5e-14 of that
scale; 1e-12 leaves a factor 20 (measured worst over this file: 2.3e-15). Far points (1e2
standard deviations out, log N_k ~ -5e3) add eps |log N_k| ~ 1e-12 to the responsibilities
themselves, hence 1e-11 there (measured worst: 8e-13, the score).
"""

from __future__ import annotations

import numpy as np
import pytest

from scorebench.analytic import _mixture_numba, _numba_launch
from scorebench.analytic import _unrolled_mixture_drivers as drivers
from scorebench.analytic import _unrolled_mixture_numba as gen
from scorebench.analytic._generated_modules import cache_dir
from scorebench.analytic._mixture_numba import mixture_terms_numba
from scorebench.analytic._mixture_numpy import mixture_terms, projected_means
from scorebench.analytic.mixture import GaussianMixture

WANT = ("logp", "score", "laplacian")
FORMS = {"eigenbasis": 0.0, "inverse": 1e300}  # _INVERSE_MAX_COND forcing each form


def _force(monkeypatch, form):
    """Make every common-time call in d <= MAX_D take ``form`` (the tests' mixtures have
    condition numbers <= 50, so the default choice would be the inverse form everywhere)."""
    monkeypatch.setattr(_mixture_numba, "_INVERSE_MAX_COND", FORMS[form])


def _cases(dims, ks):
    """(form, d, K) for every d the form serves."""
    return [(form, d, K) for form in FORMS for d in dims for K in ks
            if d <= (gen.MAX_D if form == "eigenbasis" else gen.MAX_D_INVERSE)]


def _mixture(d, K, seed):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((K, d, d)))
    U = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    lam = np.exp(rng.uniform(np.log(0.02), 0.0, (K, d)))
    covs = np.einsum("kij,kj,klj->kil", U, lam, U)
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    return GaussianMixture(rng.uniform(0.5, 2.0, K), 3.0 * rng.standard_normal((K, d)), covs)


def _points(mix, a, s2, n, seed, far=0.0):
    """n points of p_t, component by component (every chunk gets to win), optionally pushed
    ``far`` standard deviations out along random directions."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) % mix.K
    L = np.linalg.cholesky(a * a * mix.covs + s2 * np.eye(mix.d))
    x = a * mix.means[k] + np.einsum("nij,nj->ni", L[k], rng.standard_normal((n, mix.d)))
    if far:
        u = rng.standard_normal((n, mix.d))
        x += far * u / np.linalg.norm(u, axis=1, keepdims=True)
    return x


def _scales(mix, a, s2, x):
    """sum_k pi_k |g_k| and sum_k pi_k (|g_k|^2 + tr C_k^-1), point by point (reference)."""
    args = (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2)
    resp = mixture_terms(*args, ("resp",))["resp"]
    lam = a * a * mix.eigvals + s2
    z = np.einsum("kde,nkd->nke", mix.eigvecs, x[:, None, :] - a * mix.means[None])
    g = -np.einsum("kde,nke->nkd", mix.eigvecs, z / lam[None])
    gn = np.linalg.norm(g, axis=2)
    return (resp * gn).sum(1), (resp * (gn ** 2 + (1.0 / lam).sum(1)[None])).sum(1)


def _args(mix, x, a, s2):
    return (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2)


def _assert_matches(got, ref, scale_s, scale_l, rtol):
    lp = np.abs(got["logp"] - ref["logp"]) / np.maximum(1.0, np.abs(ref["logp"]))
    sc = np.linalg.norm(got["score"] - ref["score"], axis=1) / scale_s
    la = np.abs(got["laplacian"] - ref["laplacian"]) / scale_l
    assert lp.max() < rtol and sc.max() < rtol and la.max() < rtol, (lp.max(), sc.max(), la.max())


@pytest.mark.parametrize("form, d, K", _cases([1, 2, 3, 4, 5, 8], [1, 2, 4, 5, 9, 40]))
def test_generated_kernel_matches_numpy_reference(monkeypatch, form, d, K):
    """Both forms, every d they serve. The inverse form's gradient carries the explicit
    inverse's rounding, ~cond(C_k) eps of its scale (cond <= 3 here at a = 0.8, s2 = 0.3):
    within the 1e-12 of the module docstring (measured worst: see there)."""
    _force(monkeypatch, form)
    mix = _mixture(d, K, 100 * d + K)
    a, s2 = 0.8, 0.3
    assert gen.applies(d, K, form == "inverse")
    for n, far, rtol in ((2 * gen.BLOCK + 37, 0.0, 1e-12), (gen.BLOCK - 1, 1e2, 1e-11)):
        x = _points(mix, a, s2, n, K + n, far)
        ref = mixture_terms(*_args(mix, x, a, s2), WANT)
        got = mixture_terms_numba(*_args(mix, x, a, s2), WANT)
        assert gen.is_loaded(d, np.float64, K, form == "inverse")
        _assert_matches(got, ref, *_scales(mix, a, s2, x), rtol)


@pytest.mark.parametrize("form, d", [("eigenbasis", 2), ("inverse", 2), ("inverse", 7)])
def test_generated_and_generic_numba_kernels_agree(monkeypatch, form, d):
    _force(monkeypatch, form)
    mix = _mixture(d, 13, 7)
    x = _points(mix, 0.6, 0.5, 1000, 8)
    args = _args(mix, x, 0.6, 0.5)
    got = mixture_terms_numba(*args, WANT)
    monkeypatch.setattr(gen, "applies", lambda d, K, inverse=False: False)
    generic = mixture_terms_numba(*args, WANT)
    _assert_matches(got, generic, *_scales(mix, 0.6, 0.5, x), 1e-12)


def test_the_form_follows_the_conditioning():
    """The inverse form runs where every C_k(t) has condition number <= _INVERSE_MAX_COND (the
    generic kernel's rule for its one-product path), the eigenbasis form otherwise (d <= 4), the
    generic kernel beyond (d = 5..8); each agrees with the reference. Singular data at small t
    (rank 1, cond(C_k) ~ 1 / s2 ~ 1e6) is where the explicit inverse would lose ~cond eps."""
    rng = np.random.default_rng(5)
    for d in (3, 6):
        U = np.linalg.qr(rng.standard_normal((2, d, d)))[0]
        lam = np.zeros((2, d))
        lam[:, 0] = 1.0
        covs = np.einsum("kij,kj,klj->kil", U, lam, U)
        mix = GaussianMixture(np.ones(2), rng.standard_normal((2, d)), covs)
        for a, s2, inverse in ((0.8, 0.3, True), (1.0, 1e-6, False)):
            assert _mixture_numba._generated_inverse(mix.eigvals, a, s2) is inverse
            x = _points(mix, a, s2, 200, d)
            st = _mixture_numba._static(mix.means, mix.eigvecs, mix.eigvals, mix.log_weights)
            st.pop("generated_constants", None)
            got = mixture_terms_numba(*_args(mix, x, a, s2), WANT)
            ran = st.get("generated_constants")  # what the generated path kept, if it ran
            assert (ran is not None) is (inverse or d <= gen.MAX_D)
            if ran is not None:
                assert ran[1].shape[1] == gen.n_params(d, inverse)
            ref = mixture_terms(*_args(mix, x, a, s2), WANT)
            _assert_matches(got, ref, *_scales(mix, a, s2, x), 1e-10)


def test_small_mixtures_get_a_chunk_of_their_own_size(monkeypatch):
    full = gen.chunk_size(2)
    assert full in (4, 8) and gen.chunk_size(2, 10**6) == full
    assert [gen.chunk_size(2, K) for K in (1, 2, 3, 4)] == [1, 2, 4, 4]
    assert gen.chunk_size(4, 7) == 4  # d = 4 keeps 4 components a chunk at any width
    assert gen.chunk_size(4, 7, True) == full  # except in the inverse form
    assert gen.chunk_size(5, 100, True) == 4
    mix = _mixture(2, 1, 3)
    x = _points(mix, 0.7, 0.4, 300, 2)
    got = mixture_terms_numba(*_args(mix, x, 0.7, 0.4), WANT)
    assert gen.is_loaded(2, np.float64, 1)  # the one-component kernel ran
    ref = mixture_terms(*_args(mix, x, 0.7, 0.4), WANT)
    _assert_matches(got, ref, *_scales(mix, 0.7, 0.4, x), 1e-12)
    # the same mixture in a chunk of 4 (three padding components of weight exactly 0): the
    # same numbers to the last bit
    real = gen.chunk_size
    monkeypatch.setattr(gen, "chunk_size",
                        lambda d, K=None, inv=False: real(d, None if K == 1 else K, inv))
    padded = mixture_terms_numba(*_args(mix, x, 0.7, 0.4), WANT)
    assert gen.is_loaded(2, np.float64, None)
    for name in WANT:
        assert np.array_equal(padded[name], got[name]), name


def test_generated_kernel_is_used_for_common_times_and_small_d_only(monkeypatch):
    calls = []

    def spy(real):
        def call(*args):
            calls.append(args[0].shape)
            return real(*args)
        call.signatures = real.signatures  # what the launcher asks of a compiled kernel
        return call

    # small calls run the serial driver, large ones the parallel one: watch both
    monkeypatch.setattr(drivers, "block_driver", spy(drivers.block_driver))
    monkeypatch.setattr(drivers, "block_driver_serial", spy(drivers.block_driver_serial))
    for d, per_point in ((2, False), (4, False), (8, False), (9, False), (2, True)):
        mix = _mixture(d, 3, d)
        x = _points(mix, 0.7, 0.4, 50, 1)
        a = np.full(50, 0.7) if per_point else 0.7
        s2 = np.full(50, 0.4) if per_point else 0.4
        mixture_terms_numba(x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2,
                            ("score",))
    assert calls == [(50, 2), (50, 4), (50, 8)]
    assert gen.applies(4, 1000) and not gen.applies(5, 1)
    assert gen.applies(8, 1000, True) and not gen.applies(9, 1, True)
    with pytest.raises(ValueError, match="d: the eigenbasis form serves d <= 4"):
        gen.block_function(5)


def test_subsets_of_outputs_are_bit_identical():
    mix = _mixture(3, 6, 3)
    x = _points(mix, 0.9, 0.2, 300, 4)
    args = _args(mix, x, 0.9, 0.2)
    full = mixture_terms_numba(*args, WANT)
    for sub in (("logp",), ("score",), ("laplacian",), ("laplacian", "logp")):
        part = mixture_terms_numba(*args, sub)
        assert tuple(part) == sub
        for key in sub:
            np.testing.assert_array_equal(part[key], full[key])


def test_one_point_and_a_dominant_last_chunk():
    """A single point (one padded block) next to the last component of 9 (the third chunk takes
    over from the first two: the merge's rescaling branch), and next to the first (the later
    chunks merge in with weight ~0)."""
    mix = _mixture(2, 9, 11)
    a, s2 = 0.95, 0.05
    for k in (8, 0):
        x = (a * mix.means[k] + 0.01)[None]
        ref = mixture_terms(*_args(mix, x, a, s2), WANT)
        got = mixture_terms_numba(*_args(mix, x, a, s2), WANT)
        _assert_matches(got, ref, *_scales(mix, a, s2, x), 1e-12)


@pytest.mark.parametrize("form, d, K", _cases([1, 2, 3, 4, 6], [1, 5, 9, 40]))
def test_float32_kernel_matches_the_reference_to_float32_accuracy(monkeypatch, form, d, K):
    """float32 points run the float32 generated kernel: float32 results within 1e-4 of the
    float64 reference's term scale. Why 1e-4 holds: float32 has eps 6e-8; here every C_k(t) has
    condition number <= 3 and the points come from p_t, so the log-weights (|l_k| <= ~50) carry
    ~50 eps ~ 3e-6 absolute error into the responsibilities. A gradient
    g_k = -C_k^-1 (x - a mu_k) is formed from float32 x and a mu_k (the constants are rounded
    to float32), so its absolute error is ~eps (|x| + a |mu_k|) / lambda_min, not relative to
    |g_k| (which vanishes at the mean): the score's scale here adds that term. Measured worst
    over these cases: 2e-6 of the scales. The reference runs on the same float32 points in
    float64 (input rounding is not the kernel's error). 300 points: two full blocks and a
    partial one; K = 5, 9 pad the last chunk, K = 40 merges many chunks. The inverse form's
    explicit inverse adds ~cond eps = 3 eps of the gradient's scale."""
    _force(monkeypatch, form)
    mix = _mixture(d, K, 100 * d + K)
    a, s2 = 0.8, 0.3
    x32 = _points(mix, a, s2, 300, 7 * d + K).astype(np.float32)
    x = x32.astype(np.float64)
    got = mixture_terms_numba(*_args(mix, x32, a, s2), WANT)
    assert all(v.dtype == np.float32 for v in got.values())
    # computed by the float32 kernel, not rounded float64
    assert gen.is_loaded(d, np.float32, K, form == "inverse")
    ref = mixture_terms(*_args(mix, x, a, s2), WANT)
    got64 = {k: v.astype(np.float64) for k, v in got.items()}
    scale_s, scale_l = _scales(mix, a, s2, x)
    lam_min = (a * a * mix.eigvals + s2).min()
    scale_s = scale_s + (np.linalg.norm(x, axis=1)
                         + a * np.linalg.norm(mix.means, axis=1).max()) / lam_min
    _assert_matches(got64, ref, scale_s, scale_l, 1e-4)


def test_float32_source_has_no_float64_literals():
    """Every literal of the float32 kernel is a float32 constant: a bare ``1.0`` (a float64 in
    numba) would promote the lanes it touches to float64 and halve their vector width."""
    import re

    for inverse in (False, True):
        src = gen.block_source(2, np.float32, inverse=inverse)
        assert "fast_exp_f32" in src and "block_signature(np.float32)" in src
        body = src[src.index("def block("):]
        assert not re.search(r"(?<![\w.])\d+\.\d*(?![\w])", body), "float literal in the body"


def test_constants_rows_and_padding():
    mix = _mixture(3, 5, 12)
    a, s2 = 0.7, 0.4
    P = gen.constants(mix.eigvecs, mix.eigvals, projected_means(mix.means, mix.eigvecs),
                      mix.log_weights, a, s2)
    d, Kp = 3, -(-5 // gen.chunk_size(3)) * gen.chunk_size(3)
    assert P.shape == (Kp, gen.n_params(d))
    var = a * a * mix.eigvals + s2
    cov = a * a * mix.covs + s2 * np.eye(d)
    for k in range(5):
        Ut = P[k, : d * d].reshape(d, d)
        V = P[k, d * d: 2 * d * d].reshape(d, d)
        h = P[k, 2 * d * d + d: 2 * d * d + 2 * d]
        np.testing.assert_allclose(Ut, mix.eigvecs[k].T, rtol=0, atol=0)
        # V^T diag(h) U^T = -C_k^{-1}: the gradient map of the module docstring
        np.testing.assert_allclose(V.T @ (h[:, None] * Ut), -np.linalg.inv(cov[k]), rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(P[k, -1], (1.0 / var[k]).sum(), rtol=1e-14)
        _, logdet = np.linalg.slogdet(cov[k])
        np.testing.assert_allclose(P[k, -2], mix.log_weights[k] - 0.5 * logdet
                                   - 0.5 * d * np.log(2 * np.pi), rtol=1e-13)
    assert np.all(P[5:, -2] == -np.inf)
    assert np.all(P[5:, :-2] == 0.0) and np.all(P[5:, -1] == 0.0)
    # the inverse form: C_k^-1 / 2 (exactly symmetric), a mu_k, kappa_k, tr C_k^-1 / 4
    Q = gen.inverse_constants(mix.eigvecs, mix.eigvals, mix.means, mix.log_weights, a, s2)
    ch = gen.chunk_size(3, 5, True)
    assert Q.shape == (-(-5 // ch) * ch, gen.n_params(d, True)) and Q.shape[1] == d * d + d + 2
    for k in range(5):
        W = Q[k, : d * d].reshape(d, d)
        assert np.array_equal(W, W.T)
        np.testing.assert_allclose(2.0 * W, np.linalg.inv(cov[k]), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(Q[k, d * d: d * d + d], a * mix.means[k], rtol=0, atol=0)
        np.testing.assert_allclose(Q[k, -2], P[k, -2], rtol=1e-14)
        np.testing.assert_allclose(4.0 * Q[k, -1], P[k, -1], rtol=1e-14)
    assert np.all(Q[5:, -2] == -np.inf)
    assert np.all(Q[5:, :-2] == 0.0) and np.all(Q[5:, -1] == 0.0)


def test_generated_module_is_compiled_once_and_cached_on_disk():
    fn = gen.block_function(2)
    assert gen.block_function(2) is fn
    files = list(cache_dir().glob("sb_mixture_d2_*.py"))
    assert files and any(f.read_text() == gen.block_source(2) for f in files)
    assert _mixture_numba._generated is gen


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "2"])
def test_block_source_rejects_a_bad_dimension(bad):
    with pytest.raises(ValueError, match="d: expected an int >= 1"):
        gen.block_source(bad)


@pytest.mark.parametrize("d, per_point", [(2, False), (6, False), (6, True)])
def test_serial_and_parallel_launches_give_identical_numbers(monkeypatch, d, per_point):
    """Small calls run on the calling thread (serial drivers), large ones in parallel; a lane's
    arithmetic never depends on the launch, so the numbers are the same bit for bit."""
    mix = _mixture(d, 5, d)
    n = 700
    x = _points(mix, 0.8, 0.3, n, 9)
    a = np.full(n, 0.8) if per_point else 0.8
    s2 = np.full(n, 0.3) if per_point else 0.3
    args = (x, mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, a, s2, WANT)
    monkeypatch.setattr(_numba_launch, "SERIAL_WORK", 1 << 40)
    serial = mixture_terms_numba(*args)
    monkeypatch.setattr(_numba_launch, "SERIAL_WORK", 0)
    parallel = mixture_terms_numba(*args)
    for key in WANT:
        np.testing.assert_array_equal(serial[key], parallel[key])


def test_prepared_mixture_cache_follows_the_arrays():
    """The per-mixture preparation is cached by the identity of the arrays passed: new arrays
    (another mixture, or a zero-weight component dropped) are prepared anew, never mixed up."""
    from scorebench.analytic import _mixture_numba_prep

    mix = _mixture(6, 4, 11)
    x = _points(mix, 0.8, 0.3, 300, 12)
    args = (mix.means, mix.eigvecs, mix.eigvals, mix.log_weights, 0.8, 0.3, WANT)
    first = mixture_terms_numba(x, *args)
    again = mixture_terms_numba(x, *args)
    key = tuple(map(id, args[:4]))
    assert key in _mixture_numba_prep.STATIC
    for name in WANT:
        np.testing.assert_array_equal(first[name], again[name])
    # a copy of the mixture with one component's weight set to zero: that component drops out
    logw = mix.log_weights.copy()
    logw[1] = -np.inf
    dropped = mixture_terms_numba(x, mix.means.copy(), mix.eigvecs.copy(), mix.eigvals.copy(),
                                  logw, 0.8, 0.3, WANT)
    keep = [0, 2, 3]
    ref = mixture_terms_numba(x, mix.means[keep], mix.eigvecs[keep], mix.eigvals[keep],
                              mix.log_weights[keep], 0.8, 0.3, WANT)
    for name in WANT:
        np.testing.assert_allclose(dropped[name], ref[name], rtol=1e-12, atol=1e-12)
        assert not np.allclose(dropped[name], first[name])


def test_small_calls_take_the_compiled_variant():
    """A small call runs the serial kernel unless only the parallel one is compiled in this
    process (then that one, on one thread: no wait for a compilation); large calls always run
    the parallel one, with chunks for every thread."""
    import numba

    class Fake:
        def __init__(self, compiled):
            self.signatures = ["sig"] if compiled else []
            self.calls = []

        def __call__(self, *args):
            self.calls.append((args, numba.get_num_threads()))

    small, large = _numba_launch.SERIAL_WORK - 1, _numba_launch.SERIAL_WORK
    for serial_ok, parallel_ok, want in [(True, True, "serial"), (False, False, "serial"),
                                         (False, True, "parallel")]:
        ser, par = Fake(serial_ok), Fake(parallel_ok)
        _numba_launch.launch(small, ser, par, ("x",), 1000, 100, ("out",))
        assert (len(ser.calls), len(par.calls)) == ((1, 0) if want == "serial" else (0, 1))
        if want == "parallel":
            assert par.calls[0] == (("x", 1, "out"), 1)  # one chunk, one thread
    threads = numba.get_num_threads()
    ser, par = Fake(True), Fake(True)
    _numba_launch.launch(large, ser, par, ("x",), 1000, 100, ("out",))
    assert ser.calls == [] and par.calls == [(("x", min(10, 4 * threads), "out"), threads)]
    assert numba.get_num_threads() == threads


def test_cached_constants_follow_the_time_and_the_dtype():
    """The last call's constants are kept per mixture, keyed on (a, s2, dtype): calls
    alternating between two times and two dtypes must each get their own (a stale cache would
    give the other time's numbers, off by far more than 1e-4)."""
    mix = _mixture(2, 6, 31)
    x = _points(mix, 0.8, 0.3, 200, 5)
    results = {}
    for a, s2 in ((0.8, 0.3), (0.5, 0.7), (0.8, 0.3)):
        for dt in (np.float64, np.float32, np.float64):
            got = mixture_terms_numba(*_args(mix, x.astype(dt), a, s2), WANT)
            ref = mixture_terms(*_args(mix, x.astype(dt).astype(np.float64), a, s2), WANT)
            got64 = {k: v.astype(np.float64) for k, v in got.items()}
            _assert_matches(got64, ref, *_scales(mix, a, s2, x.astype(dt).astype(np.float64)),
                            1e-12 if dt == np.float64 else 1e-3)
            results.setdefault((a, s2, dt), []).append(got["score"])
    for runs in results.values():  # the same call gives the same numbers, cached or not
        assert all(np.array_equal(r, runs[0]) for r in runs)
