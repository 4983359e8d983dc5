"""Load for tests that must see a busy machine: one CPU-bound process per core."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def other_processes_on_every_core() -> Iterator[None]:
    """While the block runs, another process spins on each core; all are killed after it."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
