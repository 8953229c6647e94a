"""The numba vector width ``import scorebench`` picks (:mod:`scorebench._vector_width`): the
choice rules, the user's settings winning, bad settings refused, and the kernels' results not
depending on the width."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scorebench import _vector_width as vw

SPR = {"avx2": True, "avx512f": True, "amx-tile": True, "avx512fp16": True}
CLIENT_AVX512 = {"avx2": True, "avx512f": True, "amx-tile": False, "avx512fp16": False}
AVX2 = {"avx2": True, "avx512f": False}


@pytest.mark.parametrize("setting, features, bits", [
    ("auto", SPR, 512), ("auto", {**SPR, "amx-tile": False}, 512),
    ("auto", {**SPR, "avx512fp16": False}, 512),
    ("auto", CLIENT_AVX512, 256), ("auto", AVX2, 256),
    ("512", CLIENT_AVX512, 512), ("512", SPR, 512),
    ("256", SPR, 256), ("256", AVX2, 256),
])
def test_choice_rules(setting, features, bits):
    assert vw.wanted_bits(setting, features) == bits


@pytest.mark.parametrize("features, cpu_name, bits", [
    ({**CLIENT_AVX512, "vendor-amd": True}, "", 512),  # /proc/cpuinfo's view of a Zen 4
    (CLIENT_AVX512, "znver4", 512), (CLIENT_AVX512, "znver5", 512),  # LLVM's view
    ({**AVX2, "vendor-amd": True}, "znver3", 256),  # AMD without AVX-512
    (CLIENT_AVX512, "icelake-client", 256),
])
def test_amd_cpus_with_avx512_get_512_bits(features, cpu_name, bits):
    assert vw.wanted_bits("auto", features, cpu_name) == bits
    assert vw.wanted_bits("256", features, cpu_name) == 256


def test_512_without_avx512_is_refused():
    with pytest.raises(ValueError, match="SCOREBENCH_VECTOR_BITS: 512 needs AVX-512"):
        vw.wanted_bits("512", AVX2)


@pytest.mark.parametrize("bad", ["1024", "wide", ""])
def test_unknown_setting_is_refused(bad):
    with pytest.raises(ValueError, match="SCOREBENCH_VECTOR_BITS: expected one of auto, 256, 512"):
        vw.configure({"SCOREBENCH_VECTOR_BITS": bad}, {})


class _Flags(dict):
    def flatten(self):
        return ",".join(("+" if on else "-") + name for name, on in self.items())


def _fake_host(features):
    return lambda: ("fakecpu", dict(features), _Flags(features))


@pytest.fixture(autouse=True)
def _no_proc_cpuinfo(monkeypatch):
    """The tests below fake the host through _host: keep the real /proc/cpuinfo out of it."""
    monkeypatch.setattr(vw, "_linux_flags", lambda: None)


def test_proc_cpuinfo_settles_auto_without_llvmlite(monkeypatch):
    def no_llvmlite():
        raise AssertionError("llvmlite consulted")

    monkeypatch.setattr(vw, "_host", no_llvmlite)
    monkeypatch.setattr(vw, "_linux_flags", lambda: dict(CLIENT_AVX512))
    env = {}
    assert vw.configure(env, {})["bits"] == 256 and env == {}
    assert vw.configure({"SCOREBENCH_VECTOR_BITS": "256"}, {})["bits"] == 256
    # a two-port CPU needs the host's full feature string: llvmlite is asked then
    monkeypatch.setattr(vw, "_linux_flags", lambda: dict(SPR))
    monkeypatch.setattr(vw, "_host", _fake_host(SPR))
    env = {}
    assert vw.configure(env, {})["bits"] == 512 and env["NUMBA_CPU_NAME"] == "fakecpu"


def test_real_linux_flags_agree_with_llvm(monkeypatch):
    """/proc/cpuinfo's verdict on this machine is LLVM's (the quick path decides as the slow)."""
    monkeypatch.undo()  # the real _linux_flags
    flags = vw._linux_flags()
    if not os.path.exists("/proc/cpuinfo"):  # not Linux: the quick path stands aside
        assert flags is None
        return
    import llvmlite.binding as ll

    host = ll.get_host_cpu_features()
    assert flags["avx512f"] == bool(host.get("avx512f"))
    assert vw.wanted_bits("auto", flags) == vw.wanted_bits("auto", dict(host.items()),
                                                           ll.get_host_cpu_name())


def test_512_sets_the_host_name_and_lifts_only_the_preference(monkeypatch):
    monkeypatch.setattr(vw, "_host", _fake_host(SPR))
    env = {}
    state = vw.configure(env, {})
    assert state["bits"] == 512
    assert env["NUMBA_CPU_NAME"] == "fakecpu"
    assert env["NUMBA_CPU_FEATURES"] == _Flags(SPR).flatten() + ",-prefer-256-bit"


def test_256_leaves_numba_alone(monkeypatch):
    monkeypatch.setattr(vw, "_host", _fake_host(CLIENT_AVX512))
    env = {}
    assert vw.configure(env, {})["bits"] == 256 and env == {}
    env = {"SCOREBENCH_VECTOR_BITS": "256"}
    monkeypatch.setattr(vw, "_host", _fake_host(SPR))
    assert vw.configure(env, {})["bits"] == 256 and set(env) == {"SCOREBENCH_VECTOR_BITS"}


def test_user_numba_settings_and_an_earlier_numba_import_win(monkeypatch):
    monkeypatch.setattr(vw, "_host", _fake_host(SPR))
    env = {"NUMBA_CPU_FEATURES": "+avx2"}
    assert vw.configure(env, {})["bits"] is None and env == {"NUMBA_CPU_FEATURES": "+avx2"}
    env = {"NUMBA_CPU_NAME": "generic"}
    assert vw.configure(env, {})["bits"] is None and env == {"NUMBA_CPU_NAME": "generic"}
    # numba loaded and already compiling: too late (its code generator exists)
    env = {}
    assert vw.configure(env, {"numba": object()})["bits"] is None and env == {}


def test_numba_imported_but_idle_is_still_configured():
    """``import numba`` before ``import scorebench`` is fine as long as nothing was compiled."""
    probe = ("import numba, scorebench; from numba.core import config; "
             "print(scorebench._vector_width.STATE['bits'], "
             "'-prefer-256-bit' in (config.CPU_FEATURES or ''))")
    late = ("import numba; numba.njit(lambda: 1)(); import scorebench; "
            "print(scorebench._vector_width.STATE['bits'])")
    import llvmlite.binding as ll

    auto = vw.wanted_bits("auto", dict(ll.get_host_cpu_features().items()),
                          ll.get_host_cpu_name())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_CPU_") and k != "SCOREBENCH_VECTOR_BITS"}
    run = lambda code: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                      text=True, check=True, cwd="/").stdout.split()
    assert run(probe) == [str(auto), str(auto == 512)]
    assert run(late) == ["None"]


_PROBE = r"""
import json, sys
import numpy as np
import scorebench
from numba.core import config
from scorebench import _vector_width
from scorebench.analytic.oracle import MixtureOracle
from scorebench.analytic.sde import VPSDE
from scorebench.analytic.mixture import GaussianMixture
rng = np.random.default_rng(3)
A = rng.normal(size=(8, 2, 2))
mix = GaussianMixture(np.full(8, 1 / 8), rng.normal(size=(8, 2)) * 2,
                      np.einsum("kij,klj->kil", A, A) * 0.1 + 0.01 * np.eye(2))
x = rng.normal(size=(4096, 2)) * 2
s, lap = MixtureOracle(mix, VPSDE(), backend="numba").score_and_laplacian(x, 0.3)
# three components: a chunk of 4 at either width (eight are summed in one chunk of 8 with
# 512-bit vectors and in two of 4 otherwise: the same sums in another order)
mix3 = GaussianMixture(np.full(3, 1 / 3), mix.means[:3], mix.covs[:3])
s3, lap3 = MixtureOracle(mix3, VPSDE(), backend="numba").score_and_laplacian(x, 0.3)
print(json.dumps({"bits": _vector_width.STATE["bits"],
                  "lifted": "-prefer-256-bit" in (config.CPU_FEATURES or ""),
                  "values": np.concatenate([s.ravel(), lap]).tolist(),
                  "values3": np.concatenate([s3.ravel(), lap3]).tolist()}))
"""


def _probe(setting):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    env["SCOREBENCH_VECTOR_BITS"] = setting
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                         check=True, cwd="/")
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_configures_numba_and_results_do_not_depend_on_the_width():
    import llvmlite.binding as ll

    auto = vw.wanted_bits("auto", dict(ll.get_host_cpu_features().items()),
                          ll.get_host_cpu_name())
    wide, narrow = _probe("auto"), _probe("256")
    assert wide["bits"] == auto and wide["lifted"] == (auto == 512)
    assert narrow["bits"] == 256 and not narrow["lifted"]
    # per-lane arithmetic, no reassociation: the same numbers bit for bit at either width
    assert np.array_equal(np.array(wide["values3"]), np.array(narrow["values3"]))
    # except where the chunk of components depends on the width: the same sums in another
    # order, each O(1) term rounded to ~1e-16 relative, 8 of them and a merge: < 1e-13
    # relative to max(1, |value|) (measured: 1.2e-15)
    w, n = np.array(wide["values"]), np.array(narrow["values"])
    assert np.max(np.abs(w - n) / np.maximum(1.0, np.abs(n))) < 1e-13


_ALIGN_PROBE = r"""
import json
import numpy as np
import scorebench
from scorebench import _vector_width as vw
vw.STATE["bits"] = {bits}  # as configure() decides on a CPU with two 512-bit FMA ports, or not
on = vw.align_numba_arrays()
from numba import njit

@njit
def allocate(n):
    return [np.empty(n) for _ in range(16)], [np.empty((3, n), np.float32) for _ in range(16)]

vectors, matrices = allocate(37)
offsets = sorted({{a.ctypes.data % 64 for a in vectors + matrices}})
print(json.dumps({{"on": on, "offsets": offsets}}))
"""


def test_arrays_are_cache_line_aligned_with_512_bit_vectors(monkeypatch):
    """With 512-bit vectors numba's own allocations start on a 64-byte boundary (its default,
    32, lets half of them straddle cache lines: every vector access of them then spans two).
    In a fresh process, as numba compiles an allocation once per process and signature (code
    compiled before the switch keeps numba's 32 bytes)."""
    from numba.core import base

    def probe(bits):
        out = subprocess.run([sys.executable, "-c", _ALIGN_PROBE.format(bits=bits)],
                             capture_output=True, text=True, check=True, cwd="/")
        return json.loads(out.stdout.strip().splitlines()[-1])

    # (with numba's 32 bytes, a run of these allocations here lands half of them at offset 32)
    assert probe(512) == {"on": True, "offsets": [0]}
    assert probe(256)["on"] is False
    # the switch itself: only at 512 bits, and once
    monkeypatch.setattr(base.BaseContext, "get_preferred_array_alignment",
                        lambda context, ty: 32)  # numba's own choice
    monkeypatch.setitem(vw.STATE, "bits", 256)
    assert vw.align_numba_arrays() is False
    assert base.BaseContext.get_preferred_array_alignment(None, None) == 32
    monkeypatch.setitem(vw.STATE, "bits", 512)
    assert vw.align_numba_arrays() is True
    wrapped = base.BaseContext.get_preferred_array_alignment
    assert vw.align_numba_arrays() is True
    assert base.BaseContext.get_preferred_array_alignment is wrapped  # not wrapped twice
    assert wrapped(None, None) == vw.ALIGNMENT == 64
