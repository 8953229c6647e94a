"""Figures: every plot writes a non-blank PNG, tolerates unplottable points, and never touches pyplot."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from scorebench.verification.figures import (
    plot_error_vs_step,
    plot_hutchinson_variance,
    plot_loglik_vs_rtol,
    plot_pc_floor,
    plot_row,
    plot_work_precision,
)
from scorebench.verification.report import ResultRow

H = [0.1, 0.05, 0.025, 0.0125]


def assert_png(path):
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img[..., :3])) > 0.01  # something was drawn


def test_each_plot_writes_a_png(tmp_path):
    paths = [
        plot_error_vs_step(H, [1e-2, 2.5e-3, None, float("nan")], tmp_path / "a" / "e.png", used=[0, 1],
                           order=2.0, intercept=0.0, declared_order=2, error_bars=[1e-3, 1e-4, 0, 0]),
        plot_work_precision([("euler", [1e-1, 5e-2, 2.5e-2], [10, 20, 40], [0.1, 0.2, 0.4]),
                             ("heun", [1e-2, 2.5e-3, 6e-4], [20, 40, 80], [])], tmp_path / "wp.png"),
        plot_loglik_vs_rtol([1e-3, 1e-4, 1e-5], [1e-3, 1e-4, 1e-5], tmp_path / "ll.png", nfe=[30, 60, 120]),
        plot_hutchinson_variance([1, 2, 4, 8], [2.0, 1.0, 0.5, 0.25], tmp_path / "hv.png", theory=2.0),
        plot_hutchinson_variance([1, 2, 4], [2.0, 1.0, 0.5], tmp_path / "hv2.png", theory=[2.0, 1.0, 0.5]),
        plot_pc_floor([0.04, 0.08, 0.16], [0.002, 0.007, 0.026], tmp_path / "pc.png", predicted_floor=0.01),
        plot_pc_floor([0.04, 0.08, 0.16], [0.002, 0.007, 0.026], tmp_path / "pc2.png",
                      predicted_floor=[0.0016, 0.0064, 0.026], error_bars=[1e-4, 1e-4, 1e-3]),
    ]
    for p in paths:
        assert p.is_file() and not list(p.parent.glob(".*.tmp"))
        assert_png(p)


@pytest.mark.parametrize("metric, abscissa, extra", [
    ("global_error", "step_size", {}),
    ("loglik_error", "rtol", {}),
    ("hutchinson_variance", "probes", {"theory": 0.5}),
    ("pc_floor", "snr", {"predicted_floor": [1e-3] * 4}),
])
def test_plot_row_dispatches_by_metric(tmp_path, metric, abscissa, extra):
    row = ResultRow(solver="s", kind="ode", scenario="c", sde="vp", metric=metric, verdict="pass",
                    step_sizes=H, errors=[4e-2, 1e-2, 2.5e-3, 6.25e-4], abscissa=abscissa, extra=extra,
                    estimated_order=2.0, intercept=np.log(4.0), declared_order=2.0)
    assert_png(plot_row(row, tmp_path / f"{metric}.png"))
    lone = ResultRow(solver="s", kind="ode", scenario="c", sde="vp", metric=metric, verdict="error",
                     step_sizes=[0.1, 0.05], errors=[1e-2, None])
    assert plot_row(lone, tmp_path / "lone.png") is None and not (tmp_path / "lone.png").exists()


def test_figures_do_not_import_pyplot():
    code = "import sys, scorebench.verification.report; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
