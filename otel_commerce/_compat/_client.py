"""The seed-compatible analytics ``Client`` (Go ``events.Client``), non-blocking and batched.

``Client(endpoint)`` sends to the Hanzo analytics collector (facts §4). Every emitter builds exactly the
payload Go sends (from the catalog), adds ``properties.event_id`` (and ``trace_id`` / ``span_id`` when
a span is active), validates at call time and returns the event_id; the event is then delivered in the
background in batches, with retries. ``Client("")`` is a silent no-op, like Go: emitters return None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from .._config import DEFAULT_MAX_EVENT_BYTES, MAX_EVENT_BYTES_LIMIT
from .._delivery import DeliveryEngine, _metrics
from .._errors import ConfigurationError, EventValidationError
from .._model import CATALOG, OnError, Order, Pending, collector_from_args, event_id_for, parse_timestamp, uuid7
from .._model._catalog import COLLECTOR_MAX_QUANTITY, COLLECTOR_MAX_REVENUE, check_catalog_type, check_fields
from .._model._envelope import clean_data
from .._model._time import utc
from .._otel import current_ids
from .._sinks import CollectorSink

__all__ = ["Client"]

logger = logging.getLogger("otel_commerce")

_DEFAULT_CLOSE_TIMEOUT_SECONDS = 10.0


_TYPE_BY_COLLECTOR_NAME = {spec.collector_event: spec.type for spec in CATALOG.values()}


def _check_raw_name(name: str) -> None:
    """The catalog-namespace rule of ``record_event`` on a collector name (``order_complete`` is refused).

    The name's first ``_`` is its namespace separator (``referral_link_created`` is ``referral.link_created``),
    so a registered custom type (``order.shipped``) is accepted as ``order_shipped``; other namespaces stay free.
    """
    event_type = name.replace("_", ".", 1)
    try:
        check_catalog_type(event_type)
    except EventValidationError as exc:
        raise EventValidationError(f"event {name!r} (type {event_type!r}): {exc}") from None


def _check_columns(payload: Mapping[str, Any]) -> None:
    """The Hanzo collector's columns: ``quantity`` UInt32, ``revenue`` Decimal64(4) (facts §4)."""
    q = payload.get("quantity")
    if q is not None and (isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= COLLECTOR_MAX_QUANTITY):
        raise EventValidationError(f"event.quantity must be an integer from 0 to 2^32-1, got {q!r:.40}")
    r = payload.get("revenue")
    if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not abs(r) < COLLECTOR_MAX_REVENUE):
        raise EventValidationError(f"event.revenue must be a number below 10^14 in magnitude, got {r!r:.40}")


class Client:
    """Sends analytics events to ``{endpoint}/events`` (falling back to ``/event``) from a background thread.

    Options: ``headers`` (e.g. ``{"Authorization": "Bearer ..."}``), ``gzip``, ``timeout_seconds``
    (per request), ``on_error(error, pending)`` for events given up on, and the engine's knobs
    (``queue_size``, ``batch_size``, ``batch_bytes``, ``linger_seconds``, ``max_attempts``,
    ``max_age_seconds``, ``backoff_initial_seconds``, ``backoff_max_seconds``), ``max_event_bytes``
    (bound of an event's estimated encoded size, default 1 MiB - 16 KiB, at most 32 MiB: else
    :class:`ConfigurationError`).

    Emitters validate at call time and raise :class:`EventValidationError` only (never
    ``OverflowError`` / ``UnicodeEncodeError``): the rules of ``record_event`` plus the collector's
    columns (``quantity`` 0..2^32-1, ``revenue`` 0..10^14, rounded to 4 decimals).
    """

    def __init__(
        self,
        endpoint: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        timeout_seconds: float = 5.0,
        on_error: OnError | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        **engine_options: Any,
    ) -> None:
        self._endpoint = (endpoint or "").strip()
        if (
            isinstance(max_event_bytes, bool)
            or not isinstance(max_event_bytes, int)
            or not 1 <= max_event_bytes <= MAX_EVENT_BYTES_LIMIT
        ):
            raise ConfigurationError(
                f"max_event_bytes must be an integer from 1 to {MAX_EVENT_BYTES_LIMIT} (32 MiB), got {max_event_bytes!r}"
            )
        self._max_event_bytes = max_event_bytes
        self._engine: DeliveryEngine | None = None
        self._closed = False
        if self._endpoint:
            sink = CollectorSink(self._endpoint, headers=headers, gzip=gzip, timeout_seconds=timeout_seconds)
            self._engine = DeliveryEngine([sink], on_error=on_error, name="otel-commerce-client", **engine_options)

    @property
    def enabled(self) -> bool:
        """False for ``Client("")`` (every method is a no-op)."""
        return self._engine is not None

    @property
    def endpoint(self) -> str:
        return self._endpoint

    # ------------------------------------------------------------------ lifecycle
    def flush(self, timeout_seconds: float | None = None) -> bool:
        """Wait until every event emitted so far is settled; True when all were delivered."""
        return True if self._engine is None else self._engine.flush(timeout_seconds)

    def close(self, timeout_seconds: float | None = _DEFAULT_CLOSE_TIMEOUT_SECONDS) -> bool:
        """Flush (within ``timeout_seconds``) and stop; later emits are dropped and counted."""
        self._closed = True
        return True if self._engine is None else self._engine.shutdown(timeout_seconds)

    def stats(self) -> dict[str, int]:
        """The engine's counters (queued, submitted, exported, retried, dropped, rejected, ...)."""
        return {} if self._engine is None else self._engine.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ emitting
    def emit_raw(self, event: Mapping[str, Any]) -> str | None:
        """Send ``event`` as given (``event`` name required), plus ``properties.event_id`` and trace ids.

        Raises :class:`EventValidationError` for a name in a catalog namespace that is neither a catalog
        type nor registered (``order_complete``: did you mean ``order.completed``?), as ``record_event`` does.
        """
        if self._engine is None:
            return None
        if not isinstance(event, Mapping):
            raise EventValidationError(f"event must be a dict, got {type(event).__name__}")
        name = event.get("event")
        if not isinstance(name, str) or not name.strip():
            raise EventValidationError("event must have a non-empty string 'event' name")
        if name not in _TYPE_BY_COLLECTOR_NAME:
            _check_raw_name(name)
        props = event.get("properties")
        if props is not None and not isinstance(props, Mapping):
            raise EventValidationError(f"properties must be an object, got {type(props).__name__}")
        raw_ts = event.get("timestamp")
        if raw_ts is not None:  # in the range every hop can encode (``_model._time.utc``)
            utc(raw_ts if isinstance(raw_ts, datetime) else parse_timestamp(raw_ts))
        payload = dict(clean_data(event, "event", max_bytes=self._max_event_bytes))
        _check_columns(payload)
        properties = dict(payload.get("properties") or {})
        event_type = _TYPE_BY_COLLECTOR_NAME.get(name)
        if isinstance(payload.get("revenue"), float):
            payload["revenue"] = round(payload["revenue"], 4)  # the collector's Decimal64(4)
        if event_type is not None:
            properties = check_fields(CATALOG[event_type], properties, required=False)
        payload["properties"] = properties
        if not properties.get("event_id"):
            properties["event_id"] = uuid7()
        return self._submit(payload)

    def _emit(self, event_type: str, args: dict[str, Any]) -> str | None:
        if self._engine is None:
            return None
        key = args.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise EventValidationError("idempotency_key must be a non-empty string")
        payload, entity_id, org = collector_from_args(event_type, args)
        payload = clean_data(payload, "event", max_bytes=self._max_event_bytes)
        _check_columns(payload)
        spec = CATALOG[event_type]
        payload["properties"]["event_id"] = event_id_for(
            event_type, org, entity_id, once=spec.once, idempotency_key=key
        )
        return self._submit(payload)

    def _submit(self, payload: dict[str, Any]) -> str:
        assert self._engine is not None
        properties = payload["properties"]
        trace_id, span_id, _ = current_ids()
        if trace_id:
            properties.setdefault("trace_id", trace_id)
            properties.setdefault("span_id", span_id)
        _metrics.count("recorded", via="client")
        if not self._engine.submit(Pending(collector=payload, via="client")) and self._closed:
            logger.warning("otel-commerce: Client is closed; event %r dropped", payload.get("event"))
        return str(properties["event_id"])

    # ---- typed emitters: Go signatures (snake_case), amounts in currency units, exact Go payloads ----
    def emit_order_completed(self, order: Order, *, idempotency_key: str | None = None) -> str | None:
        return self._emit("order.completed", locals())

    def emit_referral_link_created(
        self, org_id: str, user_id: str, referral_code: str, referral_url: str, *, idempotency_key: str | None = None
    ) -> str | None:
        return self._emit("referral.link_created", locals())

    def emit_referral_claimed(
        self, org_id: str, referrer_id: str, referee_id: str, referral_code: str, *, idempotency_key: str | None = None
    ) -> str | None:
        return self._emit("referral.claimed", locals())

    def emit_referral_credit_granted(
        self,
        org_id: str,
        user_id: str,
        role: str,
        amount: float,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._emit("referral.credit_granted", locals())

    def emit_referral_commission_earned(
        self,
        org_id: str,
        referrer_id: str,
        order_id: str,
        commission: float,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._emit("referral.commission_earned", locals())

    def emit_referral_tier_upgraded(
        self,
        org_id: str,
        user_id: str,
        previous_tier: str,
        new_tier: str,
        referral_count: int,
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._emit("referral.tier_upgraded", locals())

    def emit_contributor_registered(
        self, org_id: str, user_id: str, github_username: str, *, idempotency_key: str | None = None
    ) -> str | None:
        return self._emit("contributor.registered", locals())

    def emit_contributor_payout_calculated(
        self,
        org_id: str,
        user_id: str,
        period_month: str,
        amount: float,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._emit("contributor.payout_calculated", locals())

    def emit_contributor_payout_sent(
        self,
        org_id: str,
        user_id: str,
        payout_id: str,
        period_month: str,
        amount: float,
        currency: str,
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._emit("contributor.payout_sent", locals())
