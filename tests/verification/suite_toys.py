"""Plug-in solvers used by the suite and CLI tests (loaded by file path, so spawn workers find them).

``InterruptingSolver`` raises KeyboardInterrupt from its first step, which is how a Ctrl-C that
lands inside a measurement looks to the suite when it runs inline (serial executor).
"""

from scorebench.solvers import ODESolver


class InterruptingSolver(ODESolver):
    """Declares order 1; its step raises KeyboardInterrupt (a simulated Ctrl-C)."""

    name = "interrupting-solver"
    order = 1

    def step(self, f, x, t, dt):
        raise KeyboardInterrupt
