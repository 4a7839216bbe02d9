"""Pure data, no I/O: the envelope and its JSON codec, validation, time, identity, the event record
(``Pending``), the catalog, GA4/Meta CAPI mapping, hashing/normalisers and NATS subjects.
"""

from ._catalog import (
    CATALOG,
    CollectorRule,
    EventSpec,
    GA4Rule,
    Kind,
    MetaRule,
    Param,
    apply_marketing,
    collector_from_args,
    collector_from_event,
    entity_id,
    event_from_args,
    fields_from_order,
    new_event,
    register_event_type,
    spec_for,
)
from ._envelope import (
    CommerceEvent,
    FacebookCAPIEvent,
    FacebookUserData,
    GA4EcommerceEvent,
    GA4Item,
    LineItemInfo,
    Order,
    OrderItem,
    check_json_value,
    format_timestamp,
    parse_timestamp,
    to_order_items,
)
from ._hashing import CAPI_NORMALIZERS, capi_hash, is_sha256_hex, normalize_capi, sha256_hex
from ._identity import EVENT_ID_NAMESPACE, event_id_for, uuid7
from ._pending import OnError, Pending
from ._subjects import (
    ALL_SUBJECTS,
    STREAM_NAME,
    STREAM_SUBJECTS,
    SUBJECT_CART_UPDATED,
    SUBJECT_CHECKOUT_FAILED,
    SUBJECT_CHECKOUT_STARTED,
    SUBJECT_CONTRIBUTOR_PAYOUT_CALC,
    SUBJECT_CONTRIBUTOR_PAYOUT_SENT,
    SUBJECT_CONTRIBUTOR_REGISTERED,
    SUBJECT_ORDER_CANCELED,
    SUBJECT_ORDER_COMPLETED,
    SUBJECT_ORDER_CREATED,
    SUBJECT_ORDER_REFUNDED,
    SUBJECT_PAYMENT_RECEIVED,
    SUBJECT_PREFIX,
    SUBJECT_PRODUCT_CREATED,
    SUBJECT_PRODUCT_UPDATED,
    SUBJECT_PRODUCT_VIEWED,
    SUBJECT_REFERRAL_CLAIMED,
    SUBJECT_REFERRAL_COMMISSION_EARNED,
    SUBJECT_REFERRAL_CREDIT_GRANTED,
    SUBJECT_REFERRAL_LINK_CREATED,
    SUBJECT_REFERRAL_PAYOUT_SENT,
    SUBJECT_REFERRAL_TIER_UPGRADED,
    subject_for,
    type_for,
    validate_subject,
)
from ._wire import encode_envelope

__all__ = ['ALL_SUBJECTS', 'CAPI_NORMALIZERS', 'CATALOG', 'CollectorRule', 'CommerceEvent', 'EVENT_ID_NAMESPACE', 'EventSpec', 'FacebookCAPIEvent', 'FacebookUserData', 'GA4EcommerceEvent', 'GA4Item', 'GA4Rule', 'Kind', 'LineItemInfo', 'MetaRule', 'OnError', 'Order', 'OrderItem', 'Param', 'Pending', 'STREAM_NAME', 'STREAM_SUBJECTS', 'SUBJECT_CART_UPDATED', 'SUBJECT_CHECKOUT_FAILED', 'SUBJECT_CHECKOUT_STARTED', 'SUBJECT_CONTRIBUTOR_PAYOUT_CALC', 'SUBJECT_CONTRIBUTOR_PAYOUT_SENT', 'SUBJECT_CONTRIBUTOR_REGISTERED', 'SUBJECT_ORDER_CANCELED', 'SUBJECT_ORDER_COMPLETED', 'SUBJECT_ORDER_CREATED', 'SUBJECT_ORDER_REFUNDED', 'SUBJECT_PAYMENT_RECEIVED', 'SUBJECT_PREFIX', 'SUBJECT_PRODUCT_CREATED', 'SUBJECT_PRODUCT_UPDATED', 'SUBJECT_PRODUCT_VIEWED', 'SUBJECT_REFERRAL_CLAIMED', 'SUBJECT_REFERRAL_COMMISSION_EARNED', 'SUBJECT_REFERRAL_CREDIT_GRANTED', 'SUBJECT_REFERRAL_LINK_CREATED', 'SUBJECT_REFERRAL_PAYOUT_SENT', 'SUBJECT_REFERRAL_TIER_UPGRADED', 'apply_marketing', 'capi_hash', 'check_json_value', 'collector_from_args', 'collector_from_event', 'encode_envelope', 'entity_id', 'event_from_args', 'event_id_for', 'fields_from_order', 'format_timestamp', 'is_sha256_hex', 'new_event', 'normalize_capi', 'parse_timestamp', 'register_event_type', 'sha256_hex', 'spec_for', 'subject_for', 'to_order_items', 'type_for', 'uuid7', 'validate_subject']
