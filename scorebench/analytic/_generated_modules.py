"""Import Python source generated at run time from a file, so numba can cache what it compiles.

numba's on-disk cache (``cache=True``) locates a function by its source file; source passed to
``exec`` has none, and would be compiled again in every process. :func:`import_generated`
writes the source once to ``<cache dir>/<prefix>_<hash>.py`` (the name is the SHA-256 of the
source, so a file never changes once written: numba's index, keyed on the file's time stamp,
stays valid) and imports it from there. The cache directory is ``$SCOREBENCH_CACHE_DIR``, else
``$XDG_CACHE_HOME/scorebench/kernels``, else ``~/.cache/scorebench/kernels``; when that cannot be
written, a per-user directory under the system's temporary directory. Writes go through a
temporary file and an atomic rename, so processes that generate the same module concurrently
(pytest-xdist workers) never read a half-written file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["cache_dir", "import_generated"]

_IMPORT_LOCK = threading.RLock()


def _candidates():
    env = os.environ.get("SCOREBENCH_CACHE_DIR")
    if env:
        yield Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    yield (Path(xdg) if xdg else Path.home() / ".cache") / "scorebench" / "kernels"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    yield Path(tempfile.gettempdir()) / f"scorebench-kernels-{uid}"


def cache_dir() -> Path:
    """The first writable directory among the candidates of the module docstring."""
    tried = []
    for path in _candidates():
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            return path
        except OSError as exc:
            tried.append(f"{path} ({exc.strerror or exc})")
    raise OSError("no writable directory for generated kernels; tried " + ", ".join(tried))


def import_generated(prefix: str, source: str):
    """Write ``source`` (if not already there) and import it; returns the module.

    Parameters
    ----------
    prefix : str
        Start of the module and file name (an identifier).
    source : str
        Python source of the module.
    """
    if not prefix.isidentifier():
        raise ValueError(f"prefix: must be an identifier, got {prefix!r}")
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    name = f"{prefix}_{digest}"
    # one import at a time: the module is in sys.modules while it runs (and compiles, seconds),
    # so another thread must not take it from there half-made
    with _IMPORT_LOCK:
        if name in sys.modules:
            return sys.modules[name]
        return _write_and_import(name, source)


def _write_and_import(name: str, source: str):
    """Write ``source`` to ``<cache dir>/<name>.py`` unless it is there, and import it."""
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # registered before it runs, as ``import`` does: numba finds a function's module through
    # sys.modules, and caches nothing for functions whose module it cannot find
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
