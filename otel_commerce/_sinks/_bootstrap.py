"""``bootstrap()``: create the COMMERCE stream, or check / reconcile one that others own.

DESIGN.md "Stream ownership": by default an existing stream is only checked (its subjects must cover
``commerce.>`` and its duplicate window must be at least ours) and every difference is logged;
``reconcile=True`` updates it — replacing subjects that ``commerce.>`` subsumes, raising the
duplicate window, raising the replica count — without touching storage or data.

``replicas=3`` asks for a replicated stream (a JetStream cluster of at least 3 servers): a missing stream is
created R3; an existing one with fewer replicas is reported (and scaled up with ``reconcile=True``; the
server moves the data). Fewer replicas than an existing stream has are never asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from nats.js import errors as js_errors
from nats.js.api import StreamConfig, StreamInfo

from .._errors import StreamError
from .._model import STREAM_NAME, STREAM_SUBJECTS, SUBJECT_PREFIX

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

__all__ = ["DEFAULT_DUPLICATE_WINDOW_SECONDS", "BootstrapResult", "bootstrap"]

logger = logging.getLogger("otel_commerce")

#: Our default duplicate window (Go relies on the server's 2 minutes; retries can take longer).
DEFAULT_DUPLICATE_WINDOW_SECONDS = 600.0


@dataclass(slots=True)
class BootstrapResult:
    """What ``bootstrap`` found and did."""

    action: Literal["created", "unchanged", "differs", "updated"]
    stream: StreamInfo
    differences: list[str] = field(default_factory=list)


def _subsumed(subject: str) -> bool:
    """True when ``commerce.>`` already captures ``subject``."""
    return subject.startswith(SUBJECT_PREFIX) and len(subject) > len(SUBJECT_PREFIX)


def _differences(config: StreamConfig, window: float, replicas: int | None = None) -> list[str]:
    diffs: list[str] = []
    subjects = list(config.subjects or [])
    if not ({">", *STREAM_SUBJECTS} & set(subjects)):
        diffs.append(f"subjects {subjects} do not cover {STREAM_SUBJECTS}")
    current = float(config.duplicate_window or 0.0)
    if current + 1e-9 < window:
        diffs.append(f"duplicate_window {current:g}s is shorter than {window:g}s")
    have = int(config.num_replicas or 1)
    if replicas is not None and have < replicas:
        diffs.append(f"replicas {have} is fewer than {replicas}")
    return diffs


async def bootstrap(
    js: JetStreamContext,
    *,
    reconcile: bool = False,
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW_SECONDS,
    replicas: int | None = None,
) -> BootstrapResult:
    """Create COMMERCE when missing; check (and with ``reconcile=True`` update) an existing one.

    ``duplicate_window`` in seconds; ``replicas`` (1-5, JetStream's limit) is the stream's replica count
    (None: 1 for a new stream, an existing one is not checked). Idempotent. Raises :class:`StreamError`
    when the stream cannot be created or reconciled (for example when another stream already captures
    overlapping subjects, or ``replicas`` exceeds the servers of the cluster).
    """
    if duplicate_window <= 0:
        raise StreamError("duplicate_window must be positive")
    if replicas is not None and not 1 <= replicas <= 5:
        raise StreamError(f"replicas must be between 1 and 5 (JetStream's limit), got {replicas}")
    try:
        info = await js.stream_info(STREAM_NAME)
    except js_errors.NotFoundError:
        try:
            info = await js.add_stream(
                StreamConfig(
                    name=STREAM_NAME,
                    subjects=list(STREAM_SUBJECTS),
                    duplicate_window=duplicate_window,
                    num_replicas=replicas or 1,
                )
            )
            return BootstrapResult("created", info)
        except js_errors.BadRequestError as exc:
            if exc.err_code != 10058:  # 10058: a stream with that name exists (a concurrent bootstrap)
                raise StreamError(f"cannot create stream {STREAM_NAME}: {exc.description}") from exc
            info = await js.stream_info(STREAM_NAME)
        except js_errors.APIError as exc:
            raise StreamError(f"cannot create stream {STREAM_NAME}: {exc.description}") from exc

    diffs = _differences(info.config, duplicate_window, replicas)
    if not diffs:
        return BootstrapResult("unchanged", info)
    if not reconcile:
        logger.warning(
            "stream %s differs from what otel-commerce needs: %s (run bootstrap with reconcile=True "
            "or `otel-commerce bootstrap --reconcile` to update it)",
            STREAM_NAME,
            "; ".join(diffs),
        )
        return BootstrapResult("differs", info, diffs)

    config = info.config
    kept = [s for s in (config.subjects or []) if not _subsumed(s) and s not in STREAM_SUBJECTS]
    config.subjects = [*STREAM_SUBJECTS, *kept]
    config.duplicate_window = max(float(config.duplicate_window or 0.0), duplicate_window)
    if replicas is not None:
        config.num_replicas = max(int(config.num_replicas or 1), replicas)
    try:
        updated = await js.update_stream(config)
    except js_errors.APIError as exc:
        raise StreamError(f"cannot reconcile stream {STREAM_NAME} ({'; '.join(diffs)}): {exc.description}") from exc
    logger.info("stream %s reconciled: %s", STREAM_NAME, "; ".join(diffs))
    return BootstrapResult("updated", updated, diffs)
