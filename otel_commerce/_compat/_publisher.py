"""The seed-compatible async JetStream ``Publisher`` (Go ``events.Publisher``).

Typed helpers take integer cents (Go) and are one-line calls into the catalog. Every message carries
``Nats-Msg-Id`` = the envelope's ``event_id`` (exactly once within the stream's duplicate window) and,
when a span is active, ``traceparent`` plus the envelope's ``trace_id`` / ``span_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import EventValidationError, PayloadTooLargeError
from .._model import CATALOG, CommerceEvent, OrderItem, apply_marketing, event_from_args, event_id_for, validate_subject
from .._model._catalog import check_envelope
from .._model._time import utc
from .._otel import current_ids, inject_headers
from .._sinks import max_payload, translate_nats_error

if TYPE_CHECKING:
    from nats.js.api import PubAck
    from nats.js.client import JetStreamContext

__all__ = ["Publisher", "message_headers"]

_DEFAULT_TIMEOUT_SECONDS = 5.0


def message_headers(event: CommerceEvent) -> dict[str, str]:
    """``Nats-Msg-Id`` (the event_id) plus the current W3C trace context."""
    return inject_headers({"Nats-Msg-Id": event.event_id})


class Publisher:
    """Publishes ``CommerceEvent``s to the COMMERCE stream and returns each PubAck.

    ``Publisher(None)`` is disabled: every method returns ``None`` (Go's nil publisher).
    Bad input raises :class:`EventValidationError` before anything is sent; a failed publish raises
    a :class:`DeliveryError` (transient or permanent) chained to the nats-py error.
    """

    def __init__(self, js: JetStreamContext | None, *, timeout_seconds: float = _DEFAULT_TIMEOUT_SECONDS) -> None:
        self._js = js
        self._timeout = timeout_seconds

    @property
    def enabled(self) -> bool:
        return self._js is not None

    async def publish(self, subject: str, event: CommerceEvent) -> PubAck | None:
        """Publish ``event`` on ``subject`` (any subject under ``commerce.``) and await the ack.

        The envelope is checked like ``record_event``'s (NaN/inf, int64, lone surrogates, non-JSON
        types, the catalog's fields; ``Decimal`` → float, currency upper-cased) and raises
        ``EventValidationError`` before anything is sent; over the server's max payload raises
        ``PayloadTooLargeError``.
        """
        if self._js is None:
            return None
        validate_subject(subject)
        if not isinstance(event, CommerceEvent):
            raise EventValidationError(f"event must be a CommerceEvent, got {type(event).__name__}")
        event.timestamp = utc(event.timestamp)  # naive means UTC; 1970 .. 2554 only (EventValidationError)
        check_envelope(event, max_bytes=None)  # the server's max_payload is checked below, exactly
        if not event.event_id:
            spec = CATALOG.get(event.type)
            event.event_id = event_id_for(
                event.type, event.organization_id, event.id, once=spec.once if spec else False
            )
        if not event.trace_id:
            event.trace_id, event.span_id, _ = current_ids()
        payload = event.to_json()
        limit = max_payload(self._js)
        if len(payload) > limit:
            raise PayloadTooLargeError(len(payload), limit)
        try:
            return await self._js.publish(subject, payload, timeout=self._timeout, headers=message_headers(event))
        except Exception as exc:
            raise translate_nats_error(exc, f"publish {subject}") from exc

    async def _typed(self, event_type: str, args: dict[str, Any]) -> PubAck | None:
        if self._js is None:
            return None
        key = args.pop("idempotency_key", None)
        event, items = event_from_args(event_type, args, idempotency_key=key)
        apply_marketing(event, items)
        return await self.publish(event.subject, event)

    # ---- typed helpers: Go signatures (snake_case), cents in, float units on the wire -------------
    async def publish_order_created(
        self,
        order_id: str,
        org_name: str,
        user_id: str,
        email: str,
        total_cents: int,
        currency_code: str = "",
        items: list[OrderItem] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("order.created", locals())

    async def publish_order_completed(
        self,
        order_id: str,
        org_name: str,
        user_id: str,
        email: str,
        total_cents: int,
        currency_code: str = "",
        items: list[OrderItem] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("order.completed", locals())

    async def publish_order_canceled(
        self,
        order_id: str,
        org_name: str,
        user_id: str,
        total_cents: int,
        currency_code: str = "",
        reason: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("order.canceled", locals())

    async def publish_order_refunded(
        self,
        order_id: str,
        org_name: str,
        user_id: str,
        refunded_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("order.refunded", locals())

    async def publish_checkout_started(
        self,
        session_id: str,
        org_name: str,
        total_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("checkout.started", locals())

    async def publish_checkout_failed(
        self,
        session_id: str,
        org_name: str,
        total_cents: int,
        currency_code: str = "",
        reason: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("checkout.failed", locals())

    async def publish_payment_received(
        self,
        payment_id: str,
        org_name: str,
        order_id: str,
        user_id: str,
        amount_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("payment.received", locals())

    async def publish_cart_updated(
        self,
        cart_id: str,
        org_name: str,
        user_id: str,
        total_cents: int,
        currency_code: str = "",
        items: list[OrderItem] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("cart.updated", locals())

    async def publish_product_viewed(
        self,
        product_id: str,
        org_name: str,
        user_id: str,
        product_name: str,
        price_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("product.viewed", locals())

    async def publish_product_created(
        self,
        org_id: str,
        product_id: str,
        slug: str,
        name: str,
        sku: str,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("product.created", locals())

    async def publish_product_updated(
        self,
        org_id: str,
        product_id: str,
        slug: str,
        name: str,
        sku: str,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("product.updated", locals())

    async def publish_referral_link_created(
        self,
        org_id: str,
        user_id: str,
        referral_code: str,
        referral_url: str,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.link_created", locals())

    async def publish_referral_claimed(
        self,
        org_id: str,
        referrer_id: str,
        referee_id: str,
        referral_code: str,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.claimed", locals())

    async def publish_referral_credit_granted(
        self,
        org_id: str,
        user_id: str,
        role: str,
        amount_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.credit_granted", locals())

    async def publish_referral_commission_earned(
        self,
        org_id: str,
        referrer_id: str,
        order_id: str,
        commission_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.commission_earned", locals())

    async def publish_referral_payout_sent(
        self,
        org_id: str,
        referrer_id: str,
        payout_id: str,
        amount_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.payout_sent", locals())

    async def publish_referral_tier_upgraded(
        self,
        org_id: str,
        user_id: str,
        previous_tier: str,
        new_tier: str,
        referral_count: int,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("referral.tier_upgraded", locals())

    async def publish_contributor_registered(
        self,
        org_id: str,
        user_id: str,
        github_username: str,
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("contributor.registered", locals())

    async def publish_contributor_payout_calculated(
        self,
        org_id: str,
        user_id: str,
        period_month: str,
        amount_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("contributor.payout_calculated", locals())

    async def publish_contributor_payout_sent(
        self,
        org_id: str,
        user_id: str,
        payout_id: str,
        period_month: str,
        amount_cents: int,
        currency_code: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> PubAck | None:
        return await self._typed("contributor.payout_sent", locals())
