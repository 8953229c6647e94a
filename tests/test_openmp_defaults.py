"""``import scorebench`` sets the OpenMP and OpenBLAS waiting defaults, and never overrides the
user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")
_PROBE = ("import json, os, scorebench; "
          f"print(json.dumps({{k: os.environ.get(k) for k in {_KEYS!r}}}))")


def _env_after_import(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in _KEYS}
    env.update(overrides)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                         check=True, cwd="/")
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_defaults_are_passive_with_a_short_spin():
    assert _env_after_import() == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "20000",
                                   "OPENBLAS_THREAD_TIMEOUT": "16"}


def test_user_settings_are_kept():
    got = _env_after_import(OMP_WAIT_POLICY="ACTIVE", GOMP_SPINCOUNT="5",
                            OPENBLAS_THREAD_TIMEOUT="28")
    assert got == {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "5",
                   "OPENBLAS_THREAD_TIMEOUT": "28"}
