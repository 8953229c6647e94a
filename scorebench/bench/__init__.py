"""``scorebench bench``: side-by-side speed and accuracy against peers and this machine's limit."""

from .measure import chunked as chunked
from .runner import run_bench as run_bench

__all__ = ["chunked", "run_bench"]
