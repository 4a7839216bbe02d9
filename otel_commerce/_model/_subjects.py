"""Subjects of the COMMERCE stream (the Go package's constants, UPPER_SNAKE_CASE)."""

from __future__ import annotations

import re

from .._errors import EventValidationError

__all__ = [
    "ALL_SUBJECTS",
    "STREAM_NAME",
    "STREAM_SUBJECTS",
    "SUBJECT_CART_UPDATED",
    "SUBJECT_CHECKOUT_FAILED",
    "SUBJECT_CHECKOUT_STARTED",
    "SUBJECT_CONTRIBUTOR_PAYOUT_CALC",
    "SUBJECT_CONTRIBUTOR_PAYOUT_SENT",
    "SUBJECT_CONTRIBUTOR_REGISTERED",
    "SUBJECT_ORDER_CANCELED",
    "SUBJECT_ORDER_COMPLETED",
    "SUBJECT_ORDER_CREATED",
    "SUBJECT_ORDER_REFUNDED",
    "SUBJECT_PAYMENT_RECEIVED",
    "SUBJECT_PREFIX",
    "SUBJECT_PRODUCT_CREATED",
    "SUBJECT_PRODUCT_UPDATED",
    "SUBJECT_PRODUCT_VIEWED",
    "SUBJECT_REFERRAL_CLAIMED",
    "SUBJECT_REFERRAL_COMMISSION_EARNED",
    "SUBJECT_REFERRAL_CREDIT_GRANTED",
    "SUBJECT_REFERRAL_LINK_CREATED",
    "SUBJECT_REFERRAL_PAYOUT_SENT",
    "SUBJECT_REFERRAL_TIER_UPGRADED",
    "subject_for",
    "type_for",
    "validate_subject",
]

STREAM_NAME = "COMMERCE"
STREAM_SUBJECTS = ["commerce.>"]
SUBJECT_PREFIX = "commerce."

SUBJECT_ORDER_CREATED = "commerce.order.created"
SUBJECT_ORDER_COMPLETED = "commerce.order.completed"
SUBJECT_ORDER_CANCELED = "commerce.order.canceled"
SUBJECT_ORDER_REFUNDED = "commerce.order.refunded"
SUBJECT_CHECKOUT_STARTED = "commerce.checkout.started"
SUBJECT_CHECKOUT_FAILED = "commerce.checkout.failed"
SUBJECT_PAYMENT_RECEIVED = "commerce.payment.received"
SUBJECT_CART_UPDATED = "commerce.cart.updated"
SUBJECT_PRODUCT_VIEWED = "commerce.product.viewed"
SUBJECT_PRODUCT_CREATED = "commerce.product.created"
SUBJECT_PRODUCT_UPDATED = "commerce.product.updated"
SUBJECT_REFERRAL_LINK_CREATED = "commerce.referral.link_created"
SUBJECT_REFERRAL_CLAIMED = "commerce.referral.claimed"
SUBJECT_REFERRAL_CREDIT_GRANTED = "commerce.referral.credit_granted"
SUBJECT_REFERRAL_COMMISSION_EARNED = "commerce.referral.commission_earned"
SUBJECT_REFERRAL_PAYOUT_SENT = "commerce.referral.payout_sent"
SUBJECT_REFERRAL_TIER_UPGRADED = "commerce.referral.tier_upgraded"
SUBJECT_CONTRIBUTOR_REGISTERED = "commerce.contributor.registered"
SUBJECT_CONTRIBUTOR_PAYOUT_CALC = "commerce.contributor.payout_calculated"
SUBJECT_CONTRIBUTOR_PAYOUT_SENT = "commerce.contributor.payout_sent"

#: The 20 subjects of the catalog, in the seed's order.
ALL_SUBJECTS: tuple[str, ...] = (
    SUBJECT_ORDER_CREATED,
    SUBJECT_ORDER_COMPLETED,
    SUBJECT_ORDER_CANCELED,
    SUBJECT_ORDER_REFUNDED,
    SUBJECT_CHECKOUT_STARTED,
    SUBJECT_CHECKOUT_FAILED,
    SUBJECT_PAYMENT_RECEIVED,
    SUBJECT_CART_UPDATED,
    SUBJECT_PRODUCT_VIEWED,
    SUBJECT_PRODUCT_CREATED,
    SUBJECT_PRODUCT_UPDATED,
    SUBJECT_REFERRAL_LINK_CREATED,
    SUBJECT_REFERRAL_CLAIMED,
    SUBJECT_REFERRAL_CREDIT_GRANTED,
    SUBJECT_REFERRAL_COMMISSION_EARNED,
    SUBJECT_REFERRAL_PAYOUT_SENT,
    SUBJECT_REFERRAL_TIER_UPGRADED,
    SUBJECT_CONTRIBUTOR_REGISTERED,
    SUBJECT_CONTRIBUTOR_PAYOUT_CALC,
    SUBJECT_CONTRIBUTOR_PAYOUT_SENT,
)

# A type is dot-separated tokens of letters, digits, '_' and '-' (no wildcards, no spaces).
_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


_VALID_TYPES: set[str] = set()
_VALID_TYPES_MAX = 4096


def _check_type(event_type: str) -> str:
    if (
        isinstance(event_type, str) and event_type in _VALID_TYPES
    ):  # memoised: the same few types are recorded again and again
        return event_type
    if not isinstance(event_type, str) or not _TYPE_RE.match(event_type):
        raise EventValidationError(
            f"invalid event type {event_type!r}: expected dot-separated tokens of letters, digits, '_' or '-'"
        )
    if len(_VALID_TYPES) < _VALID_TYPES_MAX:
        _VALID_TYPES.add(event_type)
    return event_type


def subject_for(event_type: str) -> str:
    """``"order.completed"`` → ``"commerce.order.completed"`` (a ``commerce.`` prefix is accepted)."""
    if isinstance(event_type, str) and event_type.startswith(SUBJECT_PREFIX):
        event_type = event_type[len(SUBJECT_PREFIX) :]
    return SUBJECT_PREFIX + _check_type(event_type)


def type_for(subject: str) -> str:
    """``"commerce.order.completed"`` → ``"order.completed"``."""
    validate_subject(subject)
    return subject[len(SUBJECT_PREFIX) :]


def validate_subject(subject: str) -> str:
    """Return ``subject`` if it is a concrete subject under ``commerce.``, else raise."""
    if not isinstance(subject, str) or not subject.startswith(SUBJECT_PREFIX):
        raise EventValidationError(f"subject {subject!r} is not under {SUBJECT_PREFIX!r} (stream {STREAM_NAME})")
    _check_type(subject[len(SUBJECT_PREFIX) :])
    return subject
