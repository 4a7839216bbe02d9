"""Process lifecycle hooks: signals, web-server shutdown, Celery / uWSGI, settings for spawned children.

- ``SIGTERM`` (and ``SIGHUP`` only when its handler was the default disposition: gunicorn, uWSGI and
  Celery use HUP to reload) get a handler installed from the main thread that *chains* to the handler
  it found. When that one is the default disposition (the process would just die), the handler runs the
  exit work (``_exit.run_exit``, bounded by ``OTEL_COMMERCE_EXIT_TIMEOUT_MS``), restores the default
  and re-raises the signal, so the exit status stays 128+signum (143 after SIGTERM). When it is an
  application's or a server's handler, that handler decides when the process exits; its exit path
  (atexit, a multiprocessing finalizer, the server hook below) delivers.
- uvicorn: when the handler we chain to is a uvicorn ``Server.handle_exit`` (``uvicorn --workers N``,
  ``--reload``, an app imported inside ``Server.serve``), that server's ``shutdown`` is wrapped so
  the exit work runs *after* its graceful drain — uvicorn re-raises the signal afterwards and no
  ``atexit`` runs.
- Celery prefork workers (billiard): ``worker_process_shutdown`` runs the exit work.
- uWSGI without ``--enable-threads``: the delivery thread never runs; one WARNING says so.
- Spawned children re-import ``__main__`` as ``__mp_main__``: ``configure()`` exports the effective
  settings to ``os.environ`` (secrets only on request) so they configure themselves from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from dataclasses import fields
from types import FrameType
from typing import Any, Literal

from .._config import Settings
from .._redact import redact_url
from . import _exit

__all__ = [
    "UWSGI_HINT",
    "check_uwsgi",
    "export_settings_env",
    "hook_celery",
    "install_signal_handlers",
    "uwsgi_without_threads",
]

logger = logging.getLogger("otel_commerce")

_previous: dict[int, Any] = {}
_thread_warned = False
_uwsgi_warned = False
_celery_hooked = False


def _signals() -> list[int]:
    sigs: list[int] = [signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        sigs.append(signal.SIGHUP)
    return sigs


def install_signal_handlers(settings: Settings) -> None:
    """Chain our handler in front of the current SIGTERM (and default SIGHUP) handler; main thread only."""
    global _thread_warned
    if not settings.handle_signals:
        return
    if threading.current_thread() is not threading.main_thread():
        if not _thread_warned:
            _thread_warned = True
            logger.warning(
                "otel-commerce: configured outside the main thread: SIGTERM is not hooked here (signal handlers "
                "can only be set from the main thread). Exit paths still deliver through atexit; call "
                "otel_commerce.configure() from the main thread, or flush() before the process is stopped."
            )
        return
    for sig in _signals():
        try:
            prev = signal.getsignal(sig)
        except (ValueError, OSError):  # pragma: no cover
            continue
        if prev is _handle:
            continue
        if prev is None or prev is signal.SIG_IGN:  # set outside Python, or ignored on purpose (nohup)
            continue
        if sig != signal.SIGTERM and prev is not signal.SIG_DFL:  # HUP means "reload" to that handler
            continue
        try:
            signal.signal(sig, _handle)
        except (ValueError, OSError):  # pragma: no cover - e.g. an embedded interpreter
            continue
        _previous[sig] = prev
        _hook_server(prev)


def _handle(signum: int, frame: FrameType | None) -> None:
    prev = _previous.get(signum, signal.SIG_DFL)
    if callable(prev):
        _hook_server(prev)
        prev(signum, frame)
        return
    if _exit.running_here():  # the exit work was interrupted (Pool.terminate during the mp finalizer)
        _exit.defer_signal(signum)  # never cut it short: the signal is re-raised when it is done
        return
    try:
        name = signal.Signals(signum).name
    except ValueError:  # pragma: no cover
        name = str(signum)
    _exit.run_exit(f"signal {name}")
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _hook_server(handler: Any) -> None:
    """When ``handler`` is a uvicorn ``Server.handle_exit``, run the exit work after that server's drain."""
    server = getattr(handler, "__self__", None)
    if server is None or getattr(handler, "__name__", "") != "handle_exit":
        return
    if not type(server).__module__.startswith("uvicorn") or getattr(server, "_otel_commerce_hooked", False):
        return
    original = getattr(server, "shutdown", None)
    if original is None:
        return

    async def shutdown(*args: Any, **kwargs: Any) -> None:
        try:
            await original(*args, **kwargs)
        finally:
            loop = asyncio.get_running_loop()
            if getattr(server, "_captured_signals", None):  # uvicorn re-raises it next: the process ends
                await loop.run_in_executor(None, _exit.run_exit, "uvicorn shutdown")
            else:  # a programmatic stop: the process goes on, deliver what its requests recorded
                from ._state import RUNTIME

                await loop.run_in_executor(None, RUNTIME.flush, _exit.exit_timeout())

    server.shutdown = shutdown
    server._otel_commerce_hooked = True


def hook_celery() -> None:
    """In a Celery prefork worker, deliver at ``worker_process_shutdown`` (billiard skips our hooks)."""
    global _celery_hooked
    if _celery_hooked or "celery" not in sys.modules:
        return
    try:
        from celery import signals as celery_signals  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:  # pragma: no cover
        return

    def _on_shutdown(*args: Any, **kwargs: Any) -> None:
        _exit.run_exit("celery worker_process_shutdown")

    celery_signals.worker_process_shutdown.connect(_on_shutdown, weak=False)
    _celery_hooked = True


#: The fix for uWSGI without threads (the WARNING and ``otel-commerce doctor`` give it).
UWSGI_HINT = "start uWSGI with --enable-threads (and --lazy-apps with --master)"


def uwsgi_without_threads() -> bool:
    """True when this process runs under uWSGI without ``--enable-threads`` (no Python thread would run)."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return False
    opt = getattr(uwsgi, "opt", {}) or {}
    enabled = opt.get("enable-threads") or opt.get(b"enable-threads") or opt.get("threads") or opt.get(b"threads")
    return not enabled


def check_uwsgi() -> None:
    """One WARNING when running under uWSGI without threads (the delivery thread would never run)."""
    global _uwsgi_warned
    if _uwsgi_warned or not uwsgi_without_threads():
        return
    _uwsgi_warned = True
    logger.warning(
        "otel-commerce: uWSGI runs without --enable-threads: the delivery thread cannot run and commerce "
        "events are not delivered. Fix: %s.",
        UWSGI_HINT,
    )


#: Settings field -> environment variable, for spawned children (``export_settings_env``).
_ENV_NAMES = {
    "nats_url": "OTEL_COMMERCE_NATS_URL",
    "collector_endpoint": "OTEL_COMMERCE_COLLECTOR_ENDPOINT",
    "mode": "OTEL_COMMERCE_MODE",
    "pii": "OTEL_COMMERCE_PII",
    "nats_user": "OTEL_COMMERCE_NATS_USER",
    "nats_creds": "OTEL_COMMERCE_NATS_CREDS",
    "nats_tls_ca": "OTEL_COMMERCE_NATS_TLS_CA",
    "nats_tls_cert": "OTEL_COMMERCE_NATS_TLS_CERT",
    "nats_tls_key": "OTEL_COMMERCE_NATS_TLS_KEY",
    "collector_gzip": "OTEL_COMMERCE_COLLECTOR_GZIP",
    "queue_size": "OTEL_COMMERCE_QUEUE_SIZE",
    "batch_size": "OTEL_COMMERCE_BATCH_SIZE",
    "linger_seconds": "OTEL_COMMERCE_LINGER_MS",
    "max_attempts": "OTEL_COMMERCE_MAX_ATTEMPTS",
    "max_age_seconds": "OTEL_COMMERCE_MAX_AGE_MS",
    "max_event_bytes": "OTEL_COMMERCE_MAX_EVENT_BYTES",
    "log_body": "OTEL_COMMERCE_LOG_BODY",
    "disabled": "OTEL_COMMERCE_DISABLED",
    "on_commit": "OTEL_COMMERCE_ON_COMMIT",
    "spool": "OTEL_COMMERCE_SPOOL",
    "spool_dir": "OTEL_COMMERCE_SPOOL_DIR",
    "spool_fsync": "OTEL_COMMERCE_SPOOL_FSYNC",
    "spool_fsync_ms": "OTEL_COMMERCE_SPOOL_FSYNC_MS",
    "exit_timeout_seconds": "OTEL_COMMERCE_EXIT_TIMEOUT_MS",
    "handle_signals": "OTEL_COMMERCE_SIGNALS",
}
_SECRET_NAMES = {
    "nats_token": "OTEL_COMMERCE_NATS_TOKEN",
    "nats_password": "OTEL_COMMERCE_NATS_PASSWORD",
    "collector_headers": "OTEL_COMMERCE_COLLECTOR_HEADERS",
}


def _env_value(name: str, value: Any) -> str:
    if name in ("linger_seconds", "max_age_seconds", "exit_timeout_seconds"):
        return f"{float(value) * 1000:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "collector_headers":
        from urllib.parse import quote

        return ",".join(f"{quote(str(k))}={quote(str(v))}" for k, v in dict(value).items())
    return str(value)


def export_settings_env(settings: Settings, export: Literal["settings", "all", "none"] = "settings") -> list[str]:
    """Write the effective settings to ``os.environ`` for spawned children; returns the names written.

    ``"settings"`` writes everything but credentials (token, password, collector headers; a NATS URL or
    collector endpoint carrying user-info or a token-like query parameter such as ``?token=`` is skipped too);
    ``"all"`` includes them; ``"none"`` writes nothing. Values equal to the defaults are not written.
    """
    if export == "none":
        return []
    defaults = Settings()
    names = dict(_ENV_NAMES)
    if export == "all":
        names.update(_SECRET_NAMES)
    written: list[str] = []
    for f in fields(Settings):
        env_name = names.get(f.name)
        if env_name is None:
            continue
        value = getattr(settings, f.name)
        if value == getattr(defaults, f.name):
            continue
        if f.name in ("nats_url", "collector_endpoint") and export != "all" and redact_url(value) != value:
            continue  # credentials in the URL's user part or a token-like query parameter
        os.environ[env_name] = _env_value(f.name, value)
        written.append(env_name)
    return written
