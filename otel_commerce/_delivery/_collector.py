"""``CollectorSink``: events to the Hanzo analytics collector over HTTP (facts §4).

Batches go to ``POST {endpoint}/events`` as ``{"events": [...]}``; a collector without that route
(404 / 405) is remembered and served one ``POST {endpoint}/event`` per event. 2xx = delivered;
network errors, 408, 429 (with ``Retry-After``) and 5xx are transient; a 400 (or 413) on a batch is
split in halves until the bad event(s) are isolated and rejected with the server's message, the rest
delivered; any other 4xx rejects the batch. httpx errors become ours in :func:`_translate` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_module
import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from .._catalog import collector_from_event
from .._errors import DeliveryError, EventValidationError, PermanentDeliveryError, TransientDeliveryError
from ._pending import Pending
from ._retry import is_retryable_status, parse_retry_after
from ._sink import Outcome, Prepared, abandon

__all__ = ["CollectorSink"]

logger = logging.getLogger("otel_commerce")

_DEFAULT_TIMEOUT_SECONDS = 5.0
#: After falling back to ``/event``, try ``/events`` again this often (the collector may be upgraded).
_BATCH_ROUTE_RETRY_SECONDS = 300.0
_SPLIT_STATUS = frozenset({400, 413})
_MISSING_ROUTE_STATUS = frozenset({404, 405})
#: Imported lazily by httpx on the first request: imported by ``warm()`` on the caller's thread instead.
_LAZY_MODULES = (
    "anyio._backends._asyncio",
    "anyio.streams.tls",
    "anyio.streams.stapled",
    "anyio.streams.memory",
    "anyio.to_thread",
    "anyio.lowlevel",
)


def _translate(exc: BaseException, what: str) -> DeliveryError:
    """The one place httpx errors become ours (all transient: network, timeouts, protocol)."""
    if isinstance(exc, DeliveryError):
        return exc
    err = TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _status_error(response: httpx.Response, what: str) -> DeliveryError | None:
    """None for 2xx, else a transient or permanent error carrying the status and the server's message."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    message = _server_message(response)
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    if is_retryable_status(status):
        return TransientDeliveryError(
            text, status=status, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    return PermanentDeliveryError(text, status=status)


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except Exception:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])[:200]
    return str(body)[:200]


class CollectorSink:
    """Delivers collector payloads (``Client.emit_*`` or mapped envelopes) to ``{endpoint}/events``."""

    name = "collector"

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        timeout_seconds: float = _DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not endpoint or not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"collector endpoint must be an http(s) URL, got {endpoint!r}")
        self._endpoint = endpoint.rstrip("/")
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = gzip
        self._timeout = timeout_seconds
        self._client: httpx.AsyncClient | None = None
        self._warm: httpx.AsyncClient | None = None  # built by warm() on the caller's thread
        self._started: asyncio.Event | None = None
        self._single_since: float | None = None  # monotonic time we fell back to /event

    @property
    def endpoint(self) -> str:
        return self._endpoint

    # ------------------------------------------------------------------ encoding (delivery thread)
    def prepare(self, pending: Pending) -> Prepared | None:
        payload = pending.collector
        if payload is None:
            if pending.event is None:
                return None
            payload = collector_from_event(pending.event, pending.items)
        try:
            raw = orjson.dumps(payload)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise EventValidationError(f"collector payload is not JSON-serialisable: {exc}") from exc
        return raw, len(raw) + 1

    # ------------------------------------------------------------------ lifecycle
    def warm(self) -> None:
        """Build the HTTP client (imports, TLS context) on the calling thread, before the delivery thread starts."""
        for name in _LAZY_MODULES:
            with contextlib.suppress(ImportError):  # another anyio layout: imported on first use instead
                importlib.import_module(name)
        if self._warm is None and self._client is None:
            self._warm = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)

    async def start(self) -> None:
        client, self._warm = self._warm, None
        self._client = client or httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        if self._started is not None:
            self._started.set()

    def ready(self) -> bool:
        return self._client is not None

    async def wait_ready(self, timeout_seconds: float) -> bool:
        if self._client is None:
            if self._started is None:
                self._started = asyncio.Event()
            try:
                await asyncio.wait_for(self._started.wait(), timeout_seconds)
            except asyncio.TimeoutError:
                return False
        return self.ready()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def forget(self) -> None:
        abandon((self._client, self._warm, self._started))
        self._client = None
        self._warm = None
        self._started = None

    # ------------------------------------------------------------------ sending
    async def send(self, items: Sequence[Any]) -> list[Outcome]:
        if self._client is None:
            return [TransientDeliveryError("collector: not started")] * len(items)
        if self._single_since is not None and time.monotonic() - self._single_since > _BATCH_ROUTE_RETRY_SECONDS:
            self._single_since = None
        results: list[Outcome] = [None] * len(items)
        if self._single_since is None:
            await self._send_batch(items, 0, len(items), results)
        else:
            await self._send_each(items, 0, len(items), results)
        return results

    async def _post(self, route: str, body: bytes) -> httpx.Response:
        assert self._client is not None
        if self._gzip:
            body = gzip_module.compress(body, compresslevel=6)
        return await self._client.post(self._endpoint + route, content=body)

    async def _send_batch(self, items: Sequence[Any], lo: int, hi: int, results: list[Outcome]) -> None:
        body = b'{"events":[' + b",".join(items[lo:hi]) + b"]}"
        what = f"POST {self._endpoint}/events ({hi - lo} events)"
        try:
            response = await self._post("/events", body)
        except Exception as exc:
            self._fill(results, lo, hi, _translate(exc, what))
            return
        if response.status_code in _MISSING_ROUTE_STATUS and self._single_since is None and lo == 0:
            logger.info(
                "otel-commerce: %s/events answered %d: sending one event per request",
                self._endpoint,
                response.status_code,
            )
            self._single_since = time.monotonic()
            await self._send_each(items, lo, hi, results)
            return
        error = _status_error(response, what)
        if error is None:
            return
        if response.status_code in _SPLIT_STATUS:
            if hi - lo == 1:
                results[lo] = error
                return
            mid = (lo + hi) // 2
            await self._send_batch(items, lo, mid, results)
            await self._send_batch(items, mid, hi, results)
            return
        self._fill(results, lo, hi, error)

    async def _send_each(self, items: Sequence[Any], lo: int, hi: int, results: list[Outcome]) -> None:
        what = f"POST {self._endpoint}/event"
        for i in range(lo, hi):
            try:
                response = await self._post("/event", items[i])
            except Exception as exc:
                self._fill(results, i, hi, _translate(exc, what))
                return
            error = _status_error(response, what)
            results[i] = error
            if isinstance(error, TransientDeliveryError):  # the collector is struggling: stop here
                self._fill(results, i, hi, error)
                return

    @staticmethod
    def _fill(results: list[Outcome], lo: int, hi: int, error: DeliveryError) -> None:
        for i in range(lo, hi):
            results[i] = error
