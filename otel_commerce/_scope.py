"""The instrumentation scope of every OTel signal we emit: name, version and one ``schema_url``.

Logger, meter and tracer all carry ``otel_commerce``, the package version and :data:`SCHEMA_URL` (the
semantic-conventions version whose event shape and attributes we emit: events as log records with
``event_name``, details in attributes, no body).
"""

from __future__ import annotations

__all__ = ["SCHEMA_URL", "SCOPE_NAME", "SCOPE_VERSION"]

SCOPE_NAME = "otel_commerce"
#: The package version (also ``otel_commerce.__version__``).
SCOPE_VERSION = "0.2.0"
#: The OpenTelemetry semantic-conventions schema our records, span events and metrics follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
