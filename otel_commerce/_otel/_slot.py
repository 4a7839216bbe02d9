"""The slot through which ``_otel`` and ``_record`` reach the process-wide runtime.

They need the settings in force, the engine (``deliver`` / ``flush``), the error callbacks and a few
counters, but sit below ``_runtime`` (the composition root) and so cannot import it. They own this
interface instead; ``otel_commerce._runtime`` fills it when it is imported — which ``import
otel_commerce`` always does before any of their code runs.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._config import Settings
from .._model import Pending

__all__ = ["RUNTIME", "RuntimeSlot", "fill"]


class RuntimeSlot(Protocol):
    """What recording and the OTel adapters use of the process-wide runtime."""

    log_exporters: int  # live CommerceLogExporter instances
    counters: dict[str, int]

    @property
    def settings(self) -> Settings: ...

    def active(self) -> bool: ...

    def deliver(self, pending: Pending) -> bool: ...

    def apply_settings(self, settings: dict[str, Any]) -> Settings:
        """Resolve ``settings`` over the environment and install an engine for them (raises ConfigurationError)."""
        ...

    def report_error(self, exc: BaseException, pending: Pending | None = None) -> None: ...

    def flush(self, timeout_seconds: float | None = None) -> bool: ...

    def exit_budget(self, seconds: float | None) -> float:
        """Seconds a flush may take: ``seconds`` capped by what is left of the exit deadline.

        ``None`` (a processor's / exporter's ``shutdown``): what is left of the exit deadline, starting it
        when the interpreter is exiting (the SDK's atexit hook is an exit path), else one exit budget.
        """
        ...


#: The runtime in force; set by :func:`fill` (``otel_commerce._runtime`` at import).
RUNTIME: RuntimeSlot


def fill(runtime: RuntimeSlot) -> None:
    """Install ``runtime`` in the slot (called once, by ``otel_commerce._runtime``)."""
    global RUNTIME
    RUNTIME = runtime
