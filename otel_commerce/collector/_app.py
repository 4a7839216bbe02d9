"""The collector's ASGI app (Starlette): Hanzo collector API + OTLP/HTTP logs, into an ``EventStore``.

Routes (each Hanzo route also under ``/v1/analytics``)::

    GET  /health        200 {"status": "ok", ...}                      (never needs auth)
    POST /event         200 {"status": "ok"}            | 400 {"error": ...}
    POST /events        200 {"status": "ok", "count": N} | 400 {"error": ..., "rejected": [...]}
    POST /v1/logs       OTLP/HTTP logs, protobuf or JSON, gzip accepted

Every error is a JSON ``{"error": "..."}`` with a 4xx (bad input) or 500 (the store failed) status:
an input never causes a 5xx. In a batch, refused events are named by index (``rejected``) and the
others are stored; OTLP refusals are counted in ``partial_success``. A request is parsed and validated
completely (including that the store can write each event) before anything is stored, and each
request's events are written in one transaction. Multi-member gzip bodies are accepted.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import sqlite3
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from .._errors import EventValidationError
from .._redact import redact, redact_url
from ._forward import Forwarder
from ._hanzo import hanzo_event
from ._otlp import decode_json_request, decode_protobuf_request, events_from_request, export_response
from ._records import StoredEvent, check_storable, parse_traceparent
from ._store import DEFAULT_DB_PATH, EventStore

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

logger = logging.getLogger("otel_commerce.collector")

#: Default limit of a request body, before and after gzip decompression.
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024

_JSON_TYPES = ("application/json",)
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")


class HTTPError(Exception):
    """A request that is answered with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body of one or more members (RFC 1952 §2.2: concatenated members are one file).

    400 when it is not gzip or truncated, 413 when the output is over ``limit`` bytes.
    """
    out = bytearray()
    data = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise HTTPError(400, f"invalid gzip body: {exc}") from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise HTTPError(413, f"decompressed body is over the limit of {limit} bytes")
        if not inflater.eof:
            raise HTTPError(400, "invalid gzip body: truncated stream")
        data = inflater.unused_data
        if not data.strip(b"\0"):  # trailing zero padding after the last member is tolerated (as gzip does)
            return bytes(out)


def _validated(build: Callable[..., StoredEvent], *args: Any, **kwargs: Any) -> StoredEvent:
    """``build(*args, **kwargs)`` one record and check the store can write it.

    Every failure is the input's (a 4xx), never a 500."""
    try:
        event = build(*args, **kwargs)
        check_storable(event)
        return event
    except EventValidationError:
        raise
    except Exception as exc:  # an input we did not foresee: refuse it, keep serving, and say so in the log
        logger.warning("refused an event that failed validation unexpectedly: %s: %s", type(exc).__name__, exc)
        raise EventValidationError(f"invalid event ({type(exc).__name__}: {exc})"[:300]) from exc


def _same(event: StoredEvent) -> StoredEvent:
    return event


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class _Collector:
    """The state behind the routes: store, limits, auth token and the optional forwarder."""

    def __init__(
        self, store: EventStore, *, auth_token: str | None, max_body_bytes: int, forwarder: Forwarder | None
    ) -> None:
        self.store = store
        self.auth_token = auth_token or None
        self.max_body_bytes = max_body_bytes
        self.forwarder = forwarder

    # ---- request plumbing -----------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.auth_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.auth_token.encode()):
            raise HTTPError(401, "missing or invalid bearer token (Authorization: Bearer <token>)")

    async def read_body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip"):
            raise HTTPError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
        return _gunzip(body, limit)

    async def read_json(self, request: Request) -> Any:
        media = _media_type(request)
        if media and media not in _JSON_TYPES and not media.endswith("+json"):
            raise HTTPError(415, f"unsupported Content-Type {media!r}: send application/json")
        body = await self.read_body(request)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"malformed JSON: {exc}") from exc

    async def store_events(self, events: list[StoredEvent]) -> list[bool]:
        if not events:
            return []
        forward = self.forwarder is not None
        try:
            inserted = await run_in_threadpool(self.store.insert, events, forward=forward)
        except sqlite3.Error as exc:
            logger.error("cannot write to the store %s: %s", self.store.path, exc)
            raise HTTPError(500, f"cannot store events: {exc}") from exc
        if self.forwarder is not None and any(inserted):
            self.forwarder.notify()
        return inserted

    # ---- routes ---------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "service": "otel-commerce-collector", "version": __version__}
        if self.forwarder is not None:
            pending = await run_in_threadpool(self.store.pending_count)
            body["forwarding"] = {
                "connected": self.forwarder.connected,
                "pending": pending,
                "forwarded": self.forwarder.forwarded,
                "failed": self.forwarder.failed,
            }
        return _json(body)

    async def event(self, request: Request) -> Response:
        self.check_auth(request)
        payload = await self.read_json(request)
        traceparent = parse_traceparent(request.headers.get("traceparent"))
        received_at = _now()
        try:
            event = _validated(hanzo_event, payload, received_at=received_at, traceparent=traceparent)
        except EventValidationError as exc:
            raise HTTPError(400, str(exc)) from exc
        inserted = await self.store_events([event])
        return _json({"status": "ok", "event_id": event.event_id, "duplicate": not inserted[0]})

    async def events(self, request: Request) -> Response:
        """A batch. Valid events are stored even when others are refused (400 naming their indexes):
        a client that splits the batch and re-sends is harmless, ``event_id`` deduplicates."""
        self.check_auth(request)
        doc = await self.read_json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
            raise HTTPError(400, 'a batch must be a JSON object {"events": [...]}')
        traceparent = parse_traceparent(request.headers.get("traceparent"))
        received_at = _now()
        valid: list[StoredEvent] = []
        rejected: list[dict[str, Any]] = []
        for index, payload in enumerate(doc["events"]):
            try:
                valid.append(_validated(hanzo_event, payload, received_at=received_at, traceparent=traceparent))
            except EventValidationError as exc:
                rejected.append({"index": index, "error": str(exc)})
        inserted = await self.store_events(valid)
        stored = sum(inserted)
        counts = {"count": len(valid), "stored": stored, "duplicates": len(inserted) - stored}
        if rejected:
            detail = "; ".join(f"[{r['index']}] {r['error']}" for r in rejected[:10])
            message = f"{len(rejected)} of {len(doc['events'])} events refused: {detail}"
            return _json({"error": message, "rejected": rejected, **counts}, 400)
        return _json({"status": "ok", **counts})

    async def otlp_logs(self, request: Request) -> Response:
        self.check_auth(request)
        media = _media_type(request)
        if media in _PROTOBUF_TYPES:
            as_json = False
        elif media in _JSON_TYPES:
            as_json = True
        else:
            raise HTTPError(
                415, f"unsupported Content-Type {media!r}: OTLP/HTTP uses application/x-protobuf or application/json"
            )
        body = await self.read_body(request)
        try:
            export = decode_json_request(body) if as_json else decode_protobuf_request(body)
            result = events_from_request(
                export, received_at=_now(), traceparent=parse_traceparent(request.headers.get("traceparent"))
            )
        except EventValidationError as exc:
            raise HTTPError(400, str(exc)) from exc
        except (RecursionError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise HTTPError(400, f"invalid OTLP request: {type(exc).__name__}: {exc}"[:300]) from exc
        storable: list[StoredEvent] = []
        for event in result.events:
            try:
                storable.append(_validated(_same, event))
            except EventValidationError as exc:
                result.rejected.append(f"commerce.{event.type}: {exc}")
        result.events = storable
        await self.store_events(result.events)
        if result.rejected:
            logger.warning("refused %d commerce log record(s): %s", len(result.rejected), result.rejected[0])
        media_type = "application/json" if as_json else "application/x-protobuf"
        return Response(export_response(result, as_json=as_json), media_type=media_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    body = orjson.dumps({"error": exc.message, **exc.extra})
    return Response(body, status_code=exc.status, media_type="application/json", headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    message = "method not allowed" if status == 405 else f"no route {request.url.path}"
    return JSONResponse({"error": message}, status_code=status)


class RedactAccessLog(logging.Filter):
    """Masks secrets in uvicorn's access-log arguments: ``/events?token=s`` is logged as ``/events?token=***``.

    uvicorn's ``AccessFormatter`` unpacks ``record.args`` (client, method, path, version, status), so
    each string argument is redacted in place rather than the message being rewritten.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        return True


def _redact_arg(value: object) -> object:
    if not isinstance(value, str):
        return value
    return redact(redact_url(value) if "?" in value else value)


def install_access_log_redaction() -> None:
    """Add :class:`RedactAccessLog` to the ``uvicorn.access`` logger once (``create_app`` calls it)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())


def create_app(
    store: EventStore | None = None,
    *,
    db_path: str | None = None,
    nats_url: str | None = None,
    auth_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The collector as an ASGI app.

    ``store`` (or a store opened at ``db_path``) receives the events; ``nats_url`` turns on forwarding
    to the COMMERCE stream; ``auth_token`` requires ``Authorization: Bearer <token>`` on every route
    except ``/health``. A store opened here is closed at shutdown; a store passed in is not.
    """
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    install_access_log_redaction()  # a token in a query string never reaches the access log
    own_store = store is None
    the_store = store if store is not None else EventStore(db_path or DEFAULT_DB_PATH)
    forwarder = Forwarder(the_store, nats_url) if nats_url else None
    c = _Collector(the_store, auth_token=auth_token, max_body_bytes=max_body_bytes, forwarder=forwarder)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if forwarder is not None:
            forwarder.start()
        try:
            yield
        finally:
            if forwarder is not None:
                await forwarder.stop()
            if own_store:
                the_store.close()

    routes: list[Route] = []
    for prefix in ("", "/v1/analytics"):
        routes += [
            Route(prefix + "/health", c.health, methods=["GET"]),
            Route(prefix + "/event", c.event, methods=["POST"]),
            Route(prefix + "/events", c.events, methods=["POST"]),
        ]
    routes.append(Route("/v1/logs", c.otlp_logs, methods=["POST"]))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPError: _http_error, 404: _not_found, 405: _not_found},
    )
    app.state.collector = c
    app.state.store = the_store
    return app
