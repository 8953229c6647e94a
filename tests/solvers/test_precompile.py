"""``scorebench.solvers.precompile``: parallel ahead-of-time compilation of the fused kernels."""

from __future__ import annotations

import numpy as np
import pytest

from scorebench.solvers import precompile as pre


def test_precompile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="processes: expected an int >= 1"):
        pre.precompile(0)
    with pytest.raises(ValueError, match="processes: expected an int >= 1"):
        pre.precompile(True)
    with pytest.raises(ValueError, match="groups: unknown"):
        pre.precompile(1, groups=("likelihood", "nope"))
    with pytest.raises(ValueError, match="name: expected one of"):
        pre.compile_group("nope")
    with pytest.raises(ValueError, match="scope: expected one of"):
        pre.precompile(1, scope="some")
    with pytest.raises(ValueError, match="scope: expected one of"):
        pre.compile_group("em", "some")


def test_the_bench_scope_leaves_out_only_what_the_bench_never_runs():
    """The bench's likelihood on the d = 5 (generic lanes) mixture runs in float64 only (its
    16-D case), its samplers on the ring only; everything else it compiles as "all" does."""
    skips = {(name, mix, dt.__name__) for name in pre.GROUPS for mix in ("ring", "full")
             for dt in (np.float64, np.float32) if pre._bench_skips(name, mix, dt)}
    assert skips == {("em", "full", "float64"), ("em", "full", "float32"),
                     ("pc", "full", "float64"), ("pc", "full", "float32"),
                     ("likelihood_f32", "full", "float32")}


_CACHED_MODULE = """
from numba import njit

@njit(cache=True)
def twice(x):
    return 2 * x
"""

_SAVE_ONE = """
import sys, time
sys.path.insert(0, {path!r})
from scorebench.solvers.precompile import _serialise_cache_index_writes
_serialise_cache_index_writes()
from numba.core import caching
save = caching.IndexDataCacheFile.save

def slow_save(self, key, data):  # widen the window between loading and writing the index
    load = self._load_index
    def late_load():
        out = load()
        time.sleep(0.3)
        return out
    self._load_index = late_load
    return save(self, key, data)

caching.IndexDataCacheFile.save = slow_save
import cached_twice
cached_twice.twice({arg})
"""


def test_parallel_workers_keep_every_signature_in_numba_cache_index(tmp_path):
    """Two processes that compile different signatures of one cached function at once (as the
    likelihood and likelihood_f32 groups do) both end up in numba's index: a third process
    finds both on disk. The loading is slowed inside the lock, so unserialised saves would
    overwrite each other's index."""
    import subprocess
    import sys

    (tmp_path / "cached_twice.py").write_text(_CACHED_MODULE)
    env = dict(pre.os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", _SAVE_ONE.format(path=str(tmp_path), arg=a)],
                              cwd=tmp_path, env=env) for a in ("1", "1.5")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    check = ("import cached_twice; cached_twice.twice(1); cached_twice.twice(1.5); "
             "print(sum(cached_twice.twice.stats.cache_hits.values()))")
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_a_bench_scope_run_is_marked_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pre, "_worker_command", lambda g, scope="all": [
        pre.sys.executable, "-c", f"assert {scope!r} == 'bench'"])
    result = pre.precompile(2, groups=pre.BENCH_GROUPS, scope="bench")
    assert all(isinstance(v, float) for v in result.values()), result
    assert pre.is_precompiled(pre.BENCH_GROUPS, "bench")
    assert not pre.is_precompiled(pre.BENCH_GROUPS) and not pre.is_precompiled()


def test_precompile_runs_a_group_in_a_worker_and_marks_only_complete_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path))
    assert not pre.is_precompiled()
    result = pre.precompile(1, groups=("oracle",))
    assert set(result) == {"oracle"}
    assert isinstance(result["oracle"], float) and result["oracle"] > 0.0
    assert not pre.is_precompiled()  # one group is not every group
    assert pre.is_precompiled(("oracle",))  # but that group is marked as done
    assert not pre.is_precompiled(pre.BENCH_GROUPS)
    assert set(pre.BENCH_GROUPS) < set(pre.GROUPS)


def test_a_failing_worker_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pre, "_worker_command", lambda g, scope="all": [
        pre.sys.executable, "-c", f"import sys; sys.exit('boom in {g}')"])
    result = pre.precompile(2, groups=("oracle", "em"))
    assert result["oracle"] == "exit status 1: boom in oracle"
    assert result["em"] == "exit status 1: boom in em"
    assert not pre.is_precompiled()


def test_workers_import_the_same_scorebench_whatever_the_working_directory(monkeypatch, tmp_path):
    # a decoy package in the working directory must not shadow the installed one in the workers
    (tmp_path / "scorebench").mkdir()
    (tmp_path / "scorebench" / "__init__.py").write_text("raise ImportError('decoy imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = pre.precompile(1, groups=("oracle",))
    assert isinstance(result["oracle"], float), result


def test_a_worker_writing_much_to_stderr_does_not_block(monkeypatch, tmp_path):
    # 1 MB of warnings, far past a pipe's buffer, then a failure: reported, never a hang
    monkeypatch.setenv("SCOREBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pre, "_worker_command", lambda g, scope="all": [
        pre.sys.executable, "-c",
        "import sys; sys.stderr.write('w' * 1_000_000 + '\\n'); sys.exit('last line')"])
    result = pre.precompile(1, groups=("oracle",))
    assert result["oracle"] == "exit status 1: last line"


def test_the_marker_depends_on_the_code_generators_target(monkeypatch):
    """numba caches kernels per CPU name and features (scorebench._vector_width may set them):
    a process configured for another target has not been precompiled for."""
    from numba.core import config

    here = pre._source_hash()
    monkeypatch.setattr(config, "CPU_FEATURES", (config.CPU_FEATURES or "") + ",-avx512f")
    assert pre._source_hash() != here
    monkeypatch.undo()
    assert pre._source_hash() == here
