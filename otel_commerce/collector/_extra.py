"""A clear message when the ``collector`` extra is not installed."""

from __future__ import annotations

import importlib.util

from .._errors import ConfigurationError, install_hint

__all__ = ["require_collector_extra"]

_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "opentelemetry.proto": "opentelemetry-proto"}


def require_collector_extra(extra: str = "collector") -> None:
    """Raise ``ConfigurationError`` naming what is missing unless the collector's dependencies import.

    ``extra`` is the extra the message asks for: ``"demo"`` from the demo, which needs the collector and
    a nats-server binary (``[demo]`` includes ``[collector]``).
    """
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
            f"the {'demo' if extra == 'demo' else 'collector'} needs {', '.join(missing)}: "
            f"install it with `{install_hint(extra)}`"
        )
