"""Reading the shape of our records back: one function for every reader (processor fallback, exporters,
the local collector's ``/v1/logs``), for both shapes a ``commerce.*`` log record has had.

- attribute shape (current): flat ``commerce.*`` keys, ``commerce.data`` (map), ``commerce.items`` (list);
- body shape (before 0.2, and ``OTEL_COMMERCE_LOG_BODY=envelope``): the body is the envelope map;
- flat attributes only (foreign code): other ``commerce.<key>`` attributes become ``data[<key>]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["envelope_from_record"]

_PREFIX = "commerce."
_FLAT_KEYS = {
    "commerce.event_id": "event_id",
    "commerce.id": "id",
    "commerce.type": "type",
    "commerce.organization_id": "organization_id",
    "commerce.user_id": "user_id",
    "commerce.session_id": "session_id",
}


def envelope_from_record(name: str, body: Any, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The envelope fields (plus ``items``) of a ``commerce.*`` log record or span event, either shape.

    ``name`` is the event name (``commerce.<type>``); ``body`` the record's body (a mapping or not).
    No ``timestamp`` key unless the body has one: the caller uses the record's time.
    """
    attrs = attributes or {}
    if isinstance(body, Mapping):
        env = dict(body)
        if not env.get("event_id") and attrs.get("commerce.event_id"):
            env["event_id"] = attrs["commerce.event_id"]
    else:
        env = {field: attrs[key] for key, field in _FLAT_KEYS.items() if attrs.get(key) is not None}
        data = attrs.get("commerce.data")
        if isinstance(data, Mapping):
            env["data"] = dict(data)
            items = attrs.get("commerce.items")
            if items is not None:
                env["items"] = list(items)
        else:
            env["data"] = {
                k[len(_PREFIX) :]: v
                for k, v in attrs.items()
                if k.startswith(_PREFIX) and k not in _FLAT_KEYS and k not in ("commerce.payload", "commerce.mode")
            }
    env.setdefault("type", name[len(_PREFIX) :])
    return env
