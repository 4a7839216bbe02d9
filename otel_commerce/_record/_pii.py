"""PII policy for the OTel path (DESIGN.md "Guarantees").

``hash`` (default): e-mail and phone are normalised and SHA-256 hashed the way Meta CAPI expects, IP
addresses and user agents are SHA-256 hashed; ``drop``: those keys are removed; ``keep``: unchanged.
Applied to ``data`` (recursively) before anything enters a log record or span event, so no other
exporter (an APM vendor's, say) ever sees raw values.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .._model import capi_hash

__all__ = ["apply_pii", "pii_kind"]

_IP_KEYS = frozenset({"ip", "ip_address", "client_ip", "client_ip_address", "remote_addr", "remote_ip"})


_KIND_CACHE: dict[str, str | None] = {}
_KIND_CACHE_MAX = 4096


def pii_kind(key: str) -> str | None:
    """``"em"``, ``"ph"``, ``"ip"``, ``"ua"`` or None for a data key (memoised: keys repeat)."""
    if not isinstance(key, str):
        return None  # not ours to judge: the JSON check refuses non-string keys with a clear error
    try:
        return _KIND_CACHE[key]
    except KeyError:
        kind = _classify(key)
        if len(_KIND_CACHE) < _KIND_CACHE_MAX:
            _KIND_CACHE[key] = kind
        return kind


def _classify(key: str) -> str | None:
    k = key.lower()
    if "email" in k or k == "em":
        return "em"
    if "phone" in k or k == "ph":
        return "ph"
    if k in _IP_KEYS:
        return "ip"
    if "user_agent" in k or k == "ua":
        return "ua"
    return None


def _hash(kind: str, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if kind in ("em", "ph"):
        return capi_hash(kind, value)
    return hashlib.sha256(value.strip().encode("utf-8")).hexdigest()


def apply_pii(data: dict[str, Any], policy: str) -> dict[str, Any]:
    """Return ``data`` with the policy applied (a new dict when anything changed)."""
    if policy == "keep":
        return data
    out: dict[str, Any] | None = None
    for key, value in data.items():
        kind = pii_kind(key)
        if kind is not None:
            out = dict(data) if out is None else out
            if policy == "drop":
                del out[key]
            else:
                out[key] = _hash(kind, value)
        else:
            new = _apply_nested(value, policy)
            if new is not value:
                out = dict(data) if out is None else out
                out[key] = new
    return data if out is None else out


def _apply_nested(value: Any, policy: str) -> Any:
    """The policy inside nested mappings and lists (``{"customers": [{"email": ...}]}``)."""
    if isinstance(value, dict):
        return apply_pii(value, policy)
    if isinstance(value, (list, tuple)):
        items = [_apply_nested(v, policy) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value
