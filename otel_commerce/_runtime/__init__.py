"""The composition root: process-wide state, ``configure()``, the ``commerce`` instrumentor.

The one place allowed to import every layer; it fills the slot through which ``_record`` and
``_otel`` reach the engine.
"""

from ._configure import configure, flush, shutdown, stats
from ._state import RUNTIME, Runtime, build_engine

__all__ = ["RUNTIME", "Runtime", "build_engine", "configure", "flush", "shutdown", "stats"]
