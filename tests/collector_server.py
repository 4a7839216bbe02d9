"""Run the collector app under a real uvicorn server in a background thread (for tests and demos).

with CollectorServer(create_app(store)) as server:
    httpx.post(server.url + "/event", json={...})
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from otel_commerce._cli._demo_services import ThreadedServer
from otel_commerce.collector import EventStore

#: A uvicorn server on 127.0.0.1:<free port>; ``start()`` returns once ``/health`` answers 200.
CollectorServer = ThreadedServer


@contextlib.contextmanager
def running_collector(
    db_path: str | os.PathLike[str], **app_options: Any
) -> Iterator[tuple[CollectorServer, EventStore]]:
    """A collector (``create_app(**app_options)``) over a fresh store at ``db_path``, served on a free port."""
    from otel_commerce.collector import create_app

    store = EventStore(db_path)
    try:
        with CollectorServer(create_app(store, **app_options)) as server:
            yield server, store
    finally:
        store.close()
