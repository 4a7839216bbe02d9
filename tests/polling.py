"""Poll a condition with a deadline (the tests' alternative to sleeping)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def poll(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as ``cond()`` is; False when ``timeout`` seconds pass first (checked every 2 ms)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        if cond():
            return True
        tick.wait(0.002)
    return cond()
