"""Settings, read from the environment in one place (so ``opentelemetry-instrument`` needs no code).

=====================================  ===========================================================
``OTEL_COMMERCE_NATS_URL``             NATS server(s), comma-separated (fallback ``PUBSUB_URL``)
``OTEL_COMMERCE_COLLECTOR_ENDPOINT``   analytics collector base URL (fallback ``ANALYTICS_ENDPOINT``)
``OTEL_COMMERCE_MODE``                 ``log`` (default) | ``span`` | ``both``
``OTEL_COMMERCE_PII``                  ``hash`` (default) | ``drop`` | ``keep``
``OTEL_COMMERCE_NATS_TOKEN``           token auth (a token in the URL's user part also works)
``OTEL_COMMERCE_NATS_USER`` / ``_PASSWORD``  user/password auth
``OTEL_COMMERCE_NATS_CREDS``           path of a .creds file (JWT + nkey)
``OTEL_COMMERCE_NATS_TLS_CA`` / ``_CERT`` / ``_KEY``  TLS files
``OTEL_COMMERCE_COLLECTOR_HEADERS``    ``k=v,k2=v2`` (URL-encoded values), e.g. ``Authorization=Bearer%20x``
``OTEL_COMMERCE_COLLECTOR_GZIP``       ``true`` to gzip collector batches
``OTEL_COMMERCE_QUEUE_SIZE``           delivery queue bound (default 10000)
``OTEL_COMMERCE_BATCH_SIZE``           events per batch (default 512)
``OTEL_COMMERCE_LINGER_MS``            batching delay in milliseconds (default 50)
``OTEL_COMMERCE_MAX_ATTEMPTS``         attempts per event and sink before it is dropped (default 10)
``OTEL_COMMERCE_MAX_AGE_SECONDS``      age after which an undelivered event is dropped (default 300)
``OTEL_COMMERCE_EXIT_TIMEOUT_MS``      one deadline for all exit work, in milliseconds (default 5000)
``OTEL_COMMERCE_SIGNALS``              ``false`` to leave SIGTERM / SIGHUP alone (default ``true``)
=====================================  ===========================================================
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote

from ._errors import ConfigurationError

__all__ = ["MODES", "PII_POLICIES", "Settings"]

Mode = Literal["log", "span", "both"]
PiiPolicy = Literal["hash", "drop", "keep"]
MODES: tuple[Mode, ...] = ("log", "span", "both")
PII_POLICIES: tuple[PiiPolicy, ...] = ("hash", "drop", "keep")

_DEFAULT_QUEUE_SIZE = 10_000
_DEFAULT_BATCH_SIZE = 512
_DEFAULT_LINGER_SECONDS = 0.05
_DEFAULT_MAX_ATTEMPTS = 10
_DEFAULT_MAX_AGE_SECONDS = 300.0  # below the 10-minute duplicate window
_DEFAULT_EXIT_TIMEOUT_SECONDS = 5.0  # Kubernetes' default grace period is 30 s: leave the app most of it


def _first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def parse_headers(raw: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (OTel's header list format, values URL-encoded)."""
    headers: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"OTEL_COMMERCE_COLLECTOR_HEADERS: {part!r} is not key=value")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


@dataclass(frozen=True)
class Settings:
    """Everything otel-commerce can be configured with; ``Settings.from_env()`` reads the environment."""

    nats_url: str = ""
    collector_endpoint: str = ""
    mode: Mode = "log"
    pii: PiiPolicy = "hash"
    nats_token: str = ""
    nats_user: str = ""
    nats_password: str = ""
    nats_creds: str = ""
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    collector_headers: Mapping[str, str] = field(default_factory=dict)
    collector_gzip: bool = False
    queue_size: int = _DEFAULT_QUEUE_SIZE
    batch_size: int = _DEFAULT_BATCH_SIZE
    linger_seconds: float = _DEFAULT_LINGER_SECONDS
    max_attempts: int = _DEFAULT_MAX_ATTEMPTS
    max_age_seconds: float = _DEFAULT_MAX_AGE_SECONDS
    exit_timeout_seconds: float = _DEFAULT_EXIT_TIMEOUT_SECONDS
    handle_signals: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.pii not in PII_POLICIES:
            raise ConfigurationError(f"pii must be one of {PII_POLICIES}, got {self.pii!r}")
        for url in filter(None, self.nats_url.split(",")):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ConfigurationError(f"NATS URL {url!r} must start with nats://, tls://, ws:// or wss://")
        if self.collector_endpoint and not self.collector_endpoint.startswith(("http://", "https://")):
            raise ConfigurationError(f"collector endpoint {self.collector_endpoint!r} must be an http(s) URL")

    @property
    def has_sink(self) -> bool:
        return bool(self.nats_url or self.collector_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``OTEL_COMMERCE_*`` (and Hanzo's ``PUBSUB_URL`` / ``ANALYTICS_ENDPOINT``); overrides win."""
        env = os.environ if env is None else env
        mode = _first(env, "OTEL_COMMERCE_MODE").lower() or "log"
        pii = _first(env, "OTEL_COMMERCE_PII").lower() or "hash"
        settings = cls(
            nats_url=_first(env, "OTEL_COMMERCE_NATS_URL", "PUBSUB_URL"),
            collector_endpoint=_first(env, "OTEL_COMMERCE_COLLECTOR_ENDPOINT", "ANALYTICS_ENDPOINT").rstrip("/"),
            mode=mode,  # type: ignore[arg-type]  # validated in __post_init__
            pii=pii,  # type: ignore[arg-type]
            nats_token=_first(env, "OTEL_COMMERCE_NATS_TOKEN"),
            nats_user=_first(env, "OTEL_COMMERCE_NATS_USER"),
            nats_password=_first(env, "OTEL_COMMERCE_NATS_PASSWORD"),
            nats_creds=_first(env, "OTEL_COMMERCE_NATS_CREDS"),
            nats_tls_ca=_first(env, "OTEL_COMMERCE_NATS_TLS_CA"),
            nats_tls_cert=_first(env, "OTEL_COMMERCE_NATS_TLS_CERT"),
            nats_tls_key=_first(env, "OTEL_COMMERCE_NATS_TLS_KEY"),
            collector_headers=parse_headers(_first(env, "OTEL_COMMERCE_COLLECTOR_HEADERS")),
            collector_gzip=_first(env, "OTEL_COMMERCE_COLLECTOR_GZIP").lower() in ("1", "true", "yes"),
            queue_size=_int(env, "OTEL_COMMERCE_QUEUE_SIZE", _DEFAULT_QUEUE_SIZE),
            batch_size=_int(env, "OTEL_COMMERCE_BATCH_SIZE", _DEFAULT_BATCH_SIZE),
            linger_seconds=_float(env, "OTEL_COMMERCE_LINGER_MS", _DEFAULT_LINGER_SECONDS * 1000) / 1000,
            max_attempts=_int(env, "OTEL_COMMERCE_MAX_ATTEMPTS", _DEFAULT_MAX_ATTEMPTS),
            max_age_seconds=_float(env, "OTEL_COMMERCE_MAX_AGE_SECONDS", _DEFAULT_MAX_AGE_SECONDS),
            exit_timeout_seconds=_float(env, "OTEL_COMMERCE_EXIT_TIMEOUT_MS", _DEFAULT_EXIT_TIMEOUT_SECONDS * 1000)
            / 1000,
            handle_signals=_first(env, "OTEL_COMMERCE_SIGNALS").lower() not in ("0", "false", "no", "off"),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None}) if overrides else settings

    def nats_connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (servers, auth, TLS) — reconnection is ours."""
        opts: dict[str, Any] = {"servers": [u.strip() for u in self.nats_url.split(",") if u.strip()]}
        if self.nats_token:
            opts["token"] = self.nats_token
        if self.nats_user:
            opts["user"] = self.nats_user
            opts["password"] = self.nats_password
        if self.nats_creds:
            opts["user_credentials"] = self.nats_creds
        if self.nats_tls_ca or self.nats_tls_cert:
            ctx = ssl.create_default_context(cafile=self.nats_tls_ca or None)
            if self.nats_tls_cert:
                ctx.load_cert_chain(self.nats_tls_cert, self.nats_tls_key or None)
            opts["tls"] = ctx
        return opts
