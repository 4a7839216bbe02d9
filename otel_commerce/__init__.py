"""otel-commerce: commerce business events as OpenTelemetry signals, shipped to JetStream and a collector."""

from ._bootstrap import DEFAULT_DUPLICATE_WINDOW_SECONDS, BootstrapResult, bootstrap
from ._catalog import CATALOG, EventSpec, spec_for
from ._errors import (
    CommerceError,
    ConfigurationError,
    DeliveryError,
    EventValidationError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    StreamError,
    TransientDeliveryError,
)
from ._hashing import capi_hash, normalize_capi, sha256_hex
from ._model import (
    CommerceEvent,
    FacebookCAPIEvent,
    FacebookUserData,
    GA4EcommerceEvent,
    GA4Item,
    LineItemInfo,
    Order,
    OrderItem,
    to_order_items,
)
from ._publisher import Publisher
from .subjects import *  # noqa: F403
from .subjects import __all__ as _subjects_all

__version__ = "0.1.0"

__all__ = sorted(
    [
        "BootstrapResult",
        "CATALOG",
        "CommerceError",
        "CommerceEvent",
        "ConfigurationError",
        "DEFAULT_DUPLICATE_WINDOW_SECONDS",
        "DeliveryError",
        "EventSpec",
        "EventValidationError",
        "FacebookCAPIEvent",
        "FacebookUserData",
        "GA4EcommerceEvent",
        "GA4Item",
        "LineItemInfo",
        "Order",
        "OrderItem",
        "PayloadTooLargeError",
        "PermanentDeliveryError",
        "Publisher",
        "StreamError",
        "TransientDeliveryError",
        "__version__",
        "bootstrap",
        "capi_hash",
        "normalize_capi",
        "sha256_hex",
        "spec_for",
        "to_order_items",
        *_subjects_all,
    ]
)
