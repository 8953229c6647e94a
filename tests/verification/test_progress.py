"""Progress display: one line per task off a terminal, a redrawn bar on one, nothing when off."""

import io

import pytest

from scorebench.verification.executors import TaskResult
from scorebench.verification.progress import ProgressBar


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_lines_mode_off_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(3, stream=out, label="verify")
    assert bar.mode == "lines"
    bar.on_done(TaskResult(0, "ok", label="euler/gauss-2d"), 1, 3)
    bar.update("heun")
    bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("verify [1/3] euler/gauss-2d ok (") and lines[0].endswith(" s)")
    assert lines[1].startswith("verify [2/3] heun (") and lines[2].startswith("verify [3/3] (")


def test_bar_mode_on_a_terminal():
    out = FakeTTY()
    with ProgressBar(4, stream=out, width=8) as bar:
        assert bar.mode == "bar"
        bar.update("a", n=2)
        assert out.getvalue().startswith("\r[####....] 2/4  50%")
        bar.update("b", n=5)  # never beyond the total
        assert bar.done == 4 and "[########] 4/4 100%" in out.getvalue()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_off_mode_and_bad_input():
    out = FakeTTY()
    bar = ProgressBar(2, stream=out, mode="off")
    bar.update("x")
    bar.close()
    assert out.getvalue() == "" and bar.done == 1
    with pytest.raises(ValueError, match="total"):
        ProgressBar(-1)
    with pytest.raises(ValueError, match="mode"):
        ProgressBar(1, mode="fancy")
