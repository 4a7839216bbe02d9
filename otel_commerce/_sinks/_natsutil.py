"""nats-py helpers: error translation (the one place nats errors become ours), limits, trace headers."""

from __future__ import annotations

import asyncio
from typing import Any

from nats import errors as nats_errors
from nats.js import errors as js_errors

from .._errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = ["DEFAULT_MAX_PAYLOAD", "headers_for_ids", "max_payload", "translate_nats_error"]

DEFAULT_MAX_PAYLOAD = 1024 * 1024

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

_TRANSIENT = (
    nats_errors.TimeoutError,
    nats_errors.NoRespondersError,
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionDrainingError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.StaleConnectionError,
    nats_errors.NoServersError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


def translate_nats_error(exc: BaseException, what: str = "publish") -> DeliveryError:
    """Map a nats-py (or socket) error to a transient or permanent ``DeliveryError``, chained."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, js_errors.APIError):
        code = exc.code or 0
        # 503 (no JetStream / no stream leader yet) and 408 are worth retrying.
        cls: type[DeliveryError] = (
            TransientDeliveryError if code in (408, 503) or code >= 500 else PermanentDeliveryError
        )
        err = cls(f"{what}: JetStream error {code} ({exc.err_code}): {exc.description}", status=code)
    elif isinstance(exc, nats_errors.MaxPayloadError):
        err = PermanentDeliveryError(f"{what}: message over the server's max payload")
    elif isinstance(exc, _TRANSIENT):
        err = TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}")
    else:
        err = TransientDeliveryError(f"{what}: unexpected {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def max_payload(js_or_nc: Any) -> int:
    """The connected server's max payload (falls back to nats' default of 1 MiB)."""
    nc = getattr(js_or_nc, "_nc", js_or_nc)
    value = getattr(nc, "max_payload", 0)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_PAYLOAD


def headers_for_ids(
    headers: dict[str, str], trace_id: str, span_id: str, trace_flags: int = 1, trace_state: str = ""
) -> dict[str, str]:
    """Add the W3C ``traceparent`` (and ``tracestate``) of a recorded event, known by its ids.

    Formatted directly (the delivery thread does this for every message; the propagator API costs
    ~15x more); the ids were produced by the OTel SDK, so they are valid hex of the right length.
    """
    if len(trace_id) != 32 or len(span_id) != 16 or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return headers
    headers["traceparent"] = f"00-{trace_id}-{span_id}-{trace_flags & 0xFF:02x}"
    if trace_state:
        headers["tracestate"] = trace_state
    return headers
