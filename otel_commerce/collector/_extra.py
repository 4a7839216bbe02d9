"""A clear message when the ``collector`` extra is not installed."""

from __future__ import annotations

import importlib.util

from .._errors import ConfigurationError

__all__ = ["require_collector_extra"]

_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "opentelemetry.proto": "opentelemetry-proto"}


def require_collector_extra() -> None:
    """Raise ``ConfigurationError`` naming what is missing unless the collector's dependencies import."""
    missing = []
    for module, dist in _MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(dist)
    if missing:
        raise ConfigurationError(
            f"the collector needs {', '.join(missing)}: install it with `pip install 'otel-commerce[collector]'`"
        )
