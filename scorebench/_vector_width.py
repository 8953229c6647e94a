r"""Vector width of the numba kernels: 512-bit where the CPU's AVX-512 pays, else LLVM's default.

LLVM tunes every Intel CPU with AVX-512 to *prefer* 256-bit vectors (its ``prefer-256-bit``
tuning: on the first AVX-512 cores a 512-bit instruction lowered the clock of the whole core),
so numba's loops use ymm registers even where the machine has two 512-bit FMA ports. On such a
machine (a 2-vCPU Sapphire-Rapids-class Xeon, reported by the hypervisor as "rocketlake") 512-bit
vectors made the kernels 1.1-1.4x faster, measured side by side in one ``scorebench bench
--quick`` run each: PF-ODE likelihood 10.5 -> 8.4 ms (float32 6.5 -> 5.8 ms), Euler-Maruyama
32 -> 25 ms, predictor-corrector 73 -> 58 ms, score + Laplacian d = 2, K = 64 2.07 -> 1.60 ms,
d = 16, K = 64 22.8 -> 19.8 ms; the exponential alone 0.42 -> 0.26 ns on 2 threads.

:func:`configure` runs when scorebench is imported, before numba is: unless the user set
``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` (then theirs stand), it sets both to the host's own
name and features with ``-prefer-256-bit`` appended, which lifts the preference and nothing else.
``SCOREBENCH_VECTOR_BITS`` chooses:

* ``auto`` (default): 512 on CPUs with AVX-512 *and* AMX or AVX512-FP16 (Sapphire Rapids and
  later Xeons, whose every model has two 512-bit FMA ports), and on AMD CPUs with AVX-512
  (Zen 4 and later), else LLVM's default. Client Intel cores with AVX-512 (Ice Lake, Tiger
  Lake, Rocket Lake) have one 512-bit port; they were not measured here and keep the default.
  On Zen 4 LLVM's own tuning (``znver4``) already emits 512-bit vectors, so lifting the
  preference changes no instruction; what 512 changes there is what scorebench sizes by the
  width -- the oracle's chunk of components (:mod:`scorebench.analytic._unrolled_mixture_numba`)
  and 64-byte array alignment -- to match the vectors LLVM emits: on a 2-vCPU AMD EPYC (Zen 4)
  the d = 2 score and Laplacian ran 8-11 % faster in float64, every other kernel the same
  within noise (three alternating runs each way).
* ``512``: 512 wherever the CPU has AVX-512 (``ValueError`` without it).
* ``256``: LLVM's default.

It applies to every numba function compiled in the process (numba has one code generator per
process; a per-function choice would need a custom compiler pipeline), and only while numba has
not compiled or loaded anything yet: numba builds its code generator, with the configuration of
that moment, at its first compilation (importing numba first is fine; calling a jitted function
first is not, and then the width stays LLVM's default). numba keys its
on-disk cache on the CPU name and features, so kernels compiled either way never mix. Results
do not depend on the width, with one exception: the kernels' arithmetic is per lane (no
reassociation is allowed), and the test suite passes bit-for-bit comparisons under both; but
the generated small-d oracle kernel (:mod:`scorebench.analytic._unrolled_mixture_numba`) sums
components in chunks of 8 with 512-bit vectors and of 4 otherwise (d <= 3, K >= 8), a
different order of the same sums: float64 results move by rounding (~1e-15 relative), float32
ones by up to ~2e-6 (measured).

With 512-bit vectors the arrays numba allocates are aligned to a cache line as well
(:func:`align_numba_arrays`; numba's default, 32 bytes, made half of the kernels' scratch
arrays straddle lines): the d = 16, K = 64 oracle kernel 14.6 -> 12.2 ms for 20,000 points,
the 16-D likelihood 347 -> 331 ns per evaluation (one core), results bit-identical.
"""

from __future__ import annotations

import os
import sys

__all__ = ["configure", "wanted_bits", "align_numba_arrays", "ENV_VAR", "STATE", "ALIGNMENT"]

ENV_VAR = "SCOREBENCH_VECTOR_BITS"
_CHOICES = ("auto", "256", "512")
# feature names as LLVM spells them (llvmlite's host features)
_AVX512 = "avx512f"
_TWO_PORT_MARKERS = ("amx-tile", "avx512fp16")
_AMD = "vendor-amd"  # not an LLVM feature: :func:`_linux_flags` reads the vendor
# what :func:`configure` decided when scorebench was imported (``bits`` and ``reason``)
STATE: dict = {"bits": None, "reason": "not configured"}


def _host():
    """``(cpu name, {feature: enabled})`` of this machine as LLVM sees it."""
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features()
    return ll.get_host_cpu_name(), {name: bool(on) for name, on in features.items()}, features


# /proc/cpuinfo spells the features LLVM calls avx512f, amx-tile and avx512fp16 thus
_LINUX_NAMES = {"avx512f": "avx512f", "amx_tile": "amx-tile", "avx512_fp16": "avx512fp16"}


def _linux_flags():
    """The features :func:`wanted_bits` looks at, from /proc/cpuinfo (None where unreadable),
    with :data:`_AMD` for the vendor (which LLVM tells by the CPU's name instead)."""
    vendor = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = {llvm: linux in have for linux, llvm in _LINUX_NAMES.items()}
                    flags[_AMD] = vendor == "AuthenticAMD"
                    return flags
    except OSError:
        pass
    return None


def wanted_bits(setting: str, features: dict, cpu_name: str = "") -> int:
    """The vector width that ``setting`` picks on a CPU with ``features`` (LLVM names; or
    /proc/cpuinfo's, with :data:`_AMD`) and LLVM's ``cpu_name`` for it (``znver4``...)."""
    if setting not in _CHOICES:
        raise ValueError(f"{ENV_VAR}: expected one of {', '.join(_CHOICES)}, got {setting!r}")
    has512 = features.get(_AVX512, False)
    if setting == "512":
        if not has512:
            raise ValueError(f"{ENV_VAR}: 512 needs AVX-512 ({_AVX512}), which this CPU lacks")
        return 512
    amd = features.get(_AMD, False) or cpu_name.startswith("znver")
    if setting == "auto" and has512 and (amd or any(features.get(m, False)
                                                    for m in _TWO_PORT_MARKERS)):
        return 512
    return 256


def configure(environ=None, modules=None) -> dict:
    """Choose the numba vector width for this process (see the module docstring).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read and update (``os.environ`` by default).
    modules : mapping, optional
        The loaded modules (``sys.modules`` by default): nothing is set once a loaded numba has
        compiled anything.

    Returns
    -------
    dict
        ``bits`` (256 or 512: what this process compiles with, as far as scorebench set it;
        None when the user's ``NUMBA_CPU_*`` settings or earlier numba compilations decide) and
        ``reason``.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    setting = environ.get(ENV_VAR, "auto").strip().lower()
    if setting not in _CHOICES:
        raise ValueError(f"{ENV_VAR}: expected one of {', '.join(_CHOICES)}, got {setting!r}")
    if "NUMBA_CPU_NAME" in environ or "NUMBA_CPU_FEATURES" in environ:
        return {"bits": None, "reason": "NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set by the user"}
    numba_loaded = "numba" in modules
    if numba_loaded and _numba_has_compiled(modules):
        return {"bits": None, "reason": "numba had compiled code before scorebench was imported"}
    if setting == "256":
        return {"bits": 256, "reason": f"{ENV_VAR}=256"}
    quick = _linux_flags()
    if setting == "auto" and quick is not None and wanted_bits("auto", quick) == 256:
        # settled from /proc/cpuinfo: no llvmlite import (~80 ms) at `import scorebench`
        return {"bits": 256, "reason": f"{ENV_VAR}=auto (no two-port or AMD AVX-512 in "
                                       "/proc/cpuinfo)"}
    try:
        name, features, flags = _host()
    except Exception as exc:  # no llvmlite: numba is missing too, and the numpy kernels serve
        return {"bits": None, "reason": f"llvmlite unavailable ({type(exc).__name__})"}
    bits = wanted_bits(setting, features, name)
    if bits == 512:
        environ["NUMBA_CPU_NAME"] = name
        environ["NUMBA_CPU_FEATURES"] = flags.flatten() + ",-prefer-256-bit"
        if numba_loaded and environ is os.environ:  # imported, nothing compiled: re-read
            modules["numba"].core.config.reload_config()
    return {"bits": bits, "reason": f"{ENV_VAR}={setting} on {name}"}


ALIGNMENT = 64  # bytes: a cache line, the size of one 512-bit vector


def align_numba_arrays() -> bool:
    """With 512-bit vectors, make numba allocate arrays on :data:`ALIGNMENT`-byte boundaries.

    numba aligns the arrays its compiled code allocates to 32 bytes (its preferred alignment,
    chosen for AVX2), so the kernels' scratch arrays start in the middle of a cache line half the
    time, and then every 64-byte vector load or store of them spans two lines. Measured on the
    Sapphire-Rapids-class machine (one core, d = 16, 256 points, the oracle kernel's per-component
    passes): the Welford update 6.3 -> 4.0 ns and the quadratic form 4.4 -> 3.0 ns per pair
    when aligned. Called by ``import scorebench`` when numba is already imported, else by the
    modules at the root of scorebench's numba kernels (:mod:`scorebench.analytic._numba_exp`,
    :mod:`scorebench.analytic._numba_stages`) when they are imported, so it applies before any
    of their kernels compiles; it changes numba's ``BaseContext.get_preferred_array_alignment``
    for the whole process (an allocation's alignment only, never a result). numba compiles an
    allocation (``np.empty`` of one signature) once per process and links it into every later
    function, so code compiled before this switch -- say, the user's own, before scorebench's
    kernels were imported -- keeps its 32 bytes there. Returns whether the switch is on.
    """
    if STATE.get("bits") != 512:
        return False
    from numba.core import base

    current = base.BaseContext.get_preferred_array_alignment
    if getattr(current, "_scorebench_aligned", False):
        return True

    def preferred(context, ty, _default=current):
        return max(ALIGNMENT, _default(context, ty))

    preferred._scorebench_aligned = True
    base.BaseContext.get_preferred_array_alignment = preferred
    return True


def _numba_has_compiled(modules) -> bool:
    """Whether numba's CPU code generator exists yet (it is built, with the configuration of
    that moment, at the first compilation or cache load); True when that cannot be told."""
    try:
        registry = modules["numba"].core.registry
        return "_toplevel_target_context" in vars(registry.cpu_target)
    except Exception:  # a numba whose internals differ: assume the worst, change nothing
        return True
