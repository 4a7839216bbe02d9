"""``run()``: serve the collector with uvicorn (blocking, until SIGINT / SIGTERM)."""

from __future__ import annotations

import uvicorn

from ._app import create_app
from ._settings import CollectorSettings

__all__ = ["run"]


def run(settings: CollectorSettings | None = None) -> None:
    """Serve the collector as configured (defaults: 127.0.0.1:8091, ``otel-commerce-events.db``)."""
    s = (settings or CollectorSettings()).validate()
    app = create_app(db_path=s.db, nats_url=s.nats_url, auth_token=s.auth_token, max_body_bytes=s.max_body_bytes)
    uvicorn.run(app, host=s.host, port=s.port, log_level=s.log_level.lower(), lifespan="on")
