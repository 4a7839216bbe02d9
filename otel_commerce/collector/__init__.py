"""The local collector: Hanzo collector API + OTLP/HTTP logs, stored in SQLite, optionally forwarded.

``EventStore``, ``EventQuery``, the settings (``load_settings``, ``exposure_warning``) and
``type_for_name`` need only the standard library; ``create_app`` and ``serve`` (alias ``run``) need the ``collector`` extra (``pip install -e
'.[collector]'`` in a checkout: starlette, uvicorn, opentelemetry-proto), imported on first use;
``require_collector_extra()`` raises a clear ``ConfigurationError`` when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._extra import require_collector_extra
from ._hanzo import type_for_name
from ._records import StoredEvent
from ._settings import CollectorSettings, exposure_warning, load_settings
from ._store import DEFAULT_DB_PATH, EventQuery, EventStore

if TYPE_CHECKING:
    from ._app import DEFAULT_MAX_BODY_BYTES, create_app
    from ._server import run
    from ._server import run as serve

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_MAX_BODY_BYTES",
    "CollectorSettings",
    "EventQuery",
    "EventStore",
    "StoredEvent",
    "create_app",
    "exposure_warning",
    "load_settings",
    "require_collector_extra",
    "run",
    "serve",
    "type_for_name",
]

#: name -> (module, attribute), imported on first use (they need the ``collector`` extra)
_LAZY = {
    "create_app": ("_app", "create_app"),
    "DEFAULT_MAX_BODY_BYTES": ("_app", "DEFAULT_MAX_BODY_BYTES"),
    "run": ("_server", "run"),
    "serve": ("_server", "run"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_collector_extra()
    import importlib

    module, attribute = target
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
