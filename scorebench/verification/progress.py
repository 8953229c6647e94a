"""A dependency-free progress display on stderr.

On a terminal it redraws one line, ``[#######.......] 7/15  47%  12.3 s  label``; when the stream is
not a terminal (CI logs, pipes) it prints one line per finished task instead, so logs stay readable;
``mode="off"`` prints nothing. :meth:`ProgressBar.on_done` has the signature that
:func:`~scorebench.verification.executors.run_tasks` expects of its callback.
"""

from __future__ import annotations

import shutil
import sys
import time

__all__ = ["ProgressBar"]

MODES = ("bar", "lines", "off")


class ProgressBar:
    """Progress over ``total`` tasks.

    Parameters
    ----------
    total : int
        Number of tasks (>= 0).
    stream : file-like, optional
        Where to write; default ``sys.stderr``.
    mode : {"bar", "lines", "off"}, optional
        Default: "bar" when ``stream.isatty()``, else "lines".
    label : str
        Shown before the count in "lines" mode and after it in "bar" mode.
    width : int
        Number of cells in the bar.
    """

    def __init__(self, total: int, *, stream=None, mode: str | None = None, label: str = "", width: int = 30):
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total: expected a non-negative integer, got {total!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width: expected a positive integer, got {width!r}")
        self.stream = sys.stderr if stream is None else stream
        if mode is None:
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if callable(isatty) and isatty() else "lines"
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.total, self.mode, self.label, self.width = total, mode, label, width
        self.done = 0
        self._t0 = time.monotonic()
        self._drawn = False

    def update(self, message: str = "", n: int = 1) -> None:
        """Advance by ``n`` finished tasks and show ``message`` (e.g. the task's name and status)."""
        self.done = min(self.total, self.done + n)
        if self.mode == "off":
            return
        elapsed = time.monotonic() - self._t0
        if self.mode == "lines":
            parts = [self.label, f"[{self.done}/{self.total}]", message, f"({elapsed:.1f} s)"]
            self.stream.write(" ".join(p for p in parts if p) + "\n")
        else:
            frac = self.done / self.total if self.total else 1.0
            filled = int(round(frac * self.width))
            line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                    f"{100 * frac:3.0f}% {elapsed:6.1f} s {self.label} {message}")
            cols = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + line[: max(cols - 1, 10)].ljust(max(cols - 1, 10)))
            self._drawn = True
        self.stream.flush()

    def on_done(self, result, n_done: int, n_total: int) -> None:
        """Callback for ``run_tasks``: one finished task (shows its label and status)."""
        msg = " ".join(s for s in (getattr(result, "label", ""), getattr(result, "status", "")) if s)
        self.update(msg)

    def close(self) -> None:
        """End the bar's line (bar mode); idempotent."""
        if self.mode == "bar" and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
