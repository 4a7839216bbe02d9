"""The local collector: Hanzo collector API + OTLP/HTTP logs, stored in SQLite, optionally forwarded.

``EventStore`` needs only the standard library; ``create_app`` and ``run`` need the ``collector``
extra (``pip install 'otel-commerce[collector]'``: starlette, uvicorn, opentelemetry-proto).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._records import StoredEvent
from ._store import DEFAULT_DB_PATH, EventQuery, EventStore

if TYPE_CHECKING:
    from ._app import DEFAULT_MAX_BODY_BYTES, create_app
    from ._server import run

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_MAX_BODY_BYTES",
    "EventQuery",
    "EventStore",
    "StoredEvent",
    "create_app",
    "run",
]

_LAZY = {"create_app": "_app", "DEFAULT_MAX_BODY_BYTES": "_app", "run": "_server"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._extra import require_collector_extra

    require_collector_extra()
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
