"""The tutorial-reproduction examples run in quick mode, pass their own checks and write figures.

Each script in ``examples/tutorial_*.py`` asserts its numbers against exact answers inside
``main`` (raising ``AssertionError`` when one is off) and returns 0. Here every script is imported
by path (under a unique module name, so nothing clashes with other test modules) and its
``main(["--quick", "--out", tmp_path])`` is run in-process; the test then checks the return code,
that every expected PNG was written and is a real image, and re-reads a few headline numbers from
the script's JSON summary against the exact thresholds the tutorial states.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# script stem -> (figures it must write, summary checks on its JSON)
TUTORIALS = {
    "tutorial_likelihood_1d": (
        ["likelihood_1d_density.png", "likelihood_1d_error.png"],
        lambda s: s["max_error_exact"] < 1e-3
        and s["max_error_rademacher"] < 1e-3
        and abs(s["mean_error_gaussian"]) <= s["ci_halfwidth_gaussian"]
        and s["ks_chi2"] <= s["ks_threshold"],
    ),
    "tutorial_ve_sampling": (
        ["ve_sampling_1d.png", "ve_sampling_2d.png"],
        lambda s: all(s[f"ks_{m}"] <= s["ks_threshold"] for m in ("em", "pc", "rk45"))
        and all(s[f"mmd_{m}"] <= s["mmd_threshold"] for m in ("em", "pc", "rk45")),
    ),
    "tutorial_point_masses": (
        [
            "point_masses_chain.png",
            "point_masses_score.png",
            "point_masses_flows.png",
            "point_masses_memorisation.png",
        ],
        lambda s: s["gap_a"] < 1e-12
        and s["fraction_max_dev"] <= s["fraction_bound"]
        and math.isclose(s["ancestral_rho"], 1.0, abs_tol=1e-9)
        and math.isclose(s["ddim_rho"], 1.0, abs_tol=1e-9)
        and s["em_rho"] > 1.2,
    ),
    "tutorial_tweedie": (
        ["tweedie_1d.png", "tweedie_2d.png"],
        lambda s: s["max_rel_mean_error"] < 1e-9 and s["max_rel_cov_error"] < 1e-8 and s["mc_worst_ratio"] <= 1.0,
    ),
    "tutorial_bits_per_dim": (
        ["bits_per_dim.png", "bits_per_dim_models.png"],
        lambda s: s["max_abs_error_bits"] < 1e-3
        and s["models"]["memorising"]["raw"] < 0.0
        and all(
            m["dequantised_exact"] >= m["discrete"] >= s["entropy_per_dim"] for m in s["models"].values()
        ),
    ),
}


def _load(stem: str):
    path = EXAMPLES / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"scorebench_examples_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_tutorial_script_is_listed():
    assert sorted(p.stem for p in EXAMPLES.glob("tutorial_*.py")) == sorted(TUTORIALS)


@pytest.mark.parametrize("stem", sorted(TUTORIALS))
def test_tutorial_quick_mode(stem, tmp_path, capsys):
    figures, summary_ok = TUTORIALS[stem]
    module = _load(stem)
    out = tmp_path / "out"
    assert module.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "all checks passed" in printed
    for name in figures:
        png = out / name
        assert png.is_file(), f"{stem} did not write {name}"
        with open(png, "rb") as fh:
            assert fh.read(8) == PNG_MAGIC, f"{name} is not a PNG"
        assert png.stat().st_size > 5_000, f"{name} is suspiciously small"
    summary = json.loads((out / f"{module.NAME}.json").read_text())
    assert summary_ok(summary), summary
