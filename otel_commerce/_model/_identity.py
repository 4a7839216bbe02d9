"""Identity of an event (DESIGN.md): ``event_id`` is a UUID fixed once when the event is recorded.

- types that happen once per entity: UUIDv5 of ``"<type>:<id>"`` (a retried handler is deduplicated);
- types that repeat: a fresh, time-ordered UUIDv7 (a second partial refund is never swallowed);
- an explicit ``idempotency_key``: UUIDv5 of the key, whatever the type.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid

__all__ = ["EVENT_ID_NAMESPACE", "event_id_for", "uuid7"]

#: Namespace of every deterministic event id (UUIDv5). Never change it: ids must stay stable.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2c7e-5a3b-5c1e-9a57-2f0e8c1b4d90")


def uuid7() -> str:
    """A fresh RFC 9562 UUIDv7 (48-bit unix milliseconds, then random bits)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


_NS_BYTES = EVENT_ID_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(EVENT_ID_NAMESPACE, name))`` without the UUID object (hot path)."""
    b = bytearray(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def event_id_for(event_type: str, entity_id: str, *, once: bool, idempotency_key: str | None = None) -> str:
    """The event id for one event of ``event_type`` about ``entity_id`` under the type's policy."""
    if idempotency_key is not None:
        return _uuid5(idempotency_key)
    if once:
        return _uuid5(f"{event_type}:{entity_id}")
    return uuid7()
