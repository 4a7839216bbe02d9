"""``CollectorSettings``: the collector's options, from a YAML file, env and the command line.

Precedence: command-line option > environment variable > config file > default. Strings in the file
may reference the environment as ``${env:NAME}`` or ``${NAME}`` (like the OpenTelemetry Collector).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from ._store import DEFAULT_DB_PATH

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "CollectorSettings", "exposure_warning", "load_settings", "read_token_file"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091
_DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")

#: Environment variables read for each setting.
ENV = {
    "db": "OTEL_COMMERCE_COLLECTOR_DB",
    "nats_url": "OTEL_COMMERCE_NATS_URL",
    "auth_token": "OTEL_COMMERCE_COLLECTOR_TOKEN",
}
#: A file holding the bearer token (keeps it out of the process list and the environment).
TOKEN_FILE_ENV = "OTEL_COMMERCE_COLLECTOR_TOKEN_FILE"
_LOOPBACK = ("127.", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """Everything ``otel-commerce collector`` needs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = DEFAULT_DB_PATH
    nats_url: str | None = None
    auth_token: str | None = None
    max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"

    def validate(self) -> CollectorSettings:
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"port must be between 1 and 65535, got {self.port}")
        if self.max_body_bytes <= 0:
            raise ConfigurationError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ConfigurationError(f"unknown log_level {self.log_level!r}")
        return self


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
    return value


def _from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError("reading a config file needs PyYAML: `pip install pyyaml`") from exc
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"config file {path} is not valid YAML: {exc}") from exc
    section = (doc or {}).get("collector", doc or {}) if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise ConfigurationError(f"config file {path}: expected a mapping under 'collector'")
    known = {f.name: f.type for f in fields(CollectorSettings)}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigurationError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in section.items():
        value = _expand(value)
        if value in (None, ""):
            continue
        if key in ("port", "max_body_bytes"):
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
                raise ConfigurationError(f"config file {path}: {key} must be a positive integer, got {value!r}")
            value = int(value)
        elif not isinstance(value, str):
            raise ConfigurationError(f"config file {path}: {key} must be a string, got {value!r}")
        out[key] = value
    return out


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped); ConfigurationError when unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ConfigurationError(f"the token file {path} is empty")
    return token


def exposure_warning(settings: CollectorSettings) -> str | None:
    """A warning when the collector listens beyond loopback without a token (anyone could write events)."""
    if settings.auth_token or settings.host.startswith(_LOOPBACK):
        return None
    return (
        f"the collector listens on {settings.host} (not loopback) WITHOUT authentication: anyone who can reach "
        f"port {settings.port} can write and read events. Set OTEL_COMMERCE_COLLECTOR_TOKEN_FILE (or "
        "--auth-token-file) or bind --host 127.0.0.1."
    )


def load_settings(config_file: str | os.PathLike[str] | None = None, **options: Any) -> CollectorSettings:
    """Merge file, environment and ``options`` (``None`` values mean "not given").

    The token: ``auth_token`` > ``auth_token_file`` > ``$OTEL_COMMERCE_COLLECTOR_TOKEN`` >
    ``$OTEL_COMMERCE_COLLECTOR_TOKEN_FILE`` > the file's ``auth_token``.
    """
    token_file = options.pop("auth_token_file", None)
    if token_file is not None and options.get("auth_token") is None:
        options["auth_token"] = read_token_file(token_file)
    elif not os.environ.get(ENV["auth_token"]) and os.environ.get(TOKEN_FILE_ENV) and options.get("auth_token") is None:
        options["auth_token"] = read_token_file(os.environ[TOKEN_FILE_ENV])
    settings = CollectorSettings()
    if config_file is not None:
        settings = replace(settings, **_from_file(config_file))
    env: dict[str, Any] = {key: os.environ[var] for key, var in ENV.items() if os.environ.get(var)}
    if "nats_url" not in env and os.environ.get("PUBSUB_URL"):
        env["nats_url"] = os.environ["PUBSUB_URL"]
    settings = replace(settings, **env)
    given = {k: v for k, v in options.items() if v is not None}
    return replace(settings, **given).validate()
