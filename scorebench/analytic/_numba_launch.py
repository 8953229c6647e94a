"""Launching the oracle's numba kernels: small calls on the calling thread, large ones in parallel.

:func:`launch` runs a call of the fused mixture kernels (:mod:`._mixture_numba` and the drivers
of the generated ones, :mod:`._unrolled_mixture_drivers`): below :data:`SERIAL_WORK`
(point, component) pairs on the calling thread alone, else as one parallel launch in chunks for
every thread, one launch at a time.
"""

from __future__ import annotations

import threading

import numba

__all__ = ["SERIAL_WORK", "has_compiled", "launch"]

# The kernel releases the GIL (other Python threads run meanwhile), but one parallel launch at
# a time: numba's fallback "workqueue" threading layer aborts on concurrent launches, and each
# launch already uses every core.
LAUNCH_LOCK = threading.Lock()
# Below this many (point, component) pairs a call runs on the calling thread alone: waking the
# other threads costs more than they save, and on a loaded machine a parallel launch waits for
# a descheduled thread (measured on 2 shared cores, 2 processes: 1.3 ms median for a launch
# against 0.1-0.25 ms serial for up to 4096 points, K = 8).
SERIAL_WORK = 1 << 15


COMPILED: set = set()  # dispatchers seen with a compiled signature (they keep it)


def has_compiled(fn) -> bool:
    """Whether the numba dispatcher ``fn`` has compiled (or loaded) anything in this process;
    remembered once true (``fn.signatures`` builds a list: ~3 us a call, 10 % of a small
    call's time)."""
    if fn in COMPILED:
        return True
    if fn.signatures:
        COMPILED.add(fn)
        return True
    return False


def launch(pairs, serial_fn, parallel_fn, args, n_items, block, outs):
    """Run a call of ``pairs`` (point, component) pairs: small ones on the calling thread alone
    (``serial_fn``), the rest as one parallel launch of ``parallel_fn`` over ``n_items`` points
    in chunks of blocks of ``block``. A small call takes the parallel kernel on one thread
    instead when only that one is compiled in this process (the serial one might need seconds
    of compilation that the call would otherwise wait for)."""
    if pairs < SERIAL_WORK:
        if has_compiled(serial_fn) or not has_compiled(parallel_fn):
            serial_fn(*args, *outs)
            return
        with LAUNCH_LOCK:
            prev = numba.get_num_threads()
            numba.set_num_threads(1)  # thread-local in numba
            try:
                parallel_fn(*args, 1, *outs)
            finally:
                numba.set_num_threads(prev)
        return
    with LAUNCH_LOCK:
        nchunks = max(1, min(-(-n_items // block), 4 * numba.get_num_threads()))
        parallel_fn(*args, nchunks, *outs)
