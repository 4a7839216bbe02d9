"""Adaptive linger (``OTEL_COMMERCE_LINGER_MS`` unset, the default): a batch leaves at once when its lane is
idle, and the events that arrive while a send is in flight make up the next batch. ``0`` = no wait, ``N`` = N ms."""

from __future__ import annotations

import logging
import threading

import pytest
from fake_collector import FakeCollector
from polling import poll

from otel_commerce import ConfigurationError, Settings
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, collector_from_args
from otel_commerce._sinks import CollectorSink


def _pending(tag: str) -> Pending:
    payload = collector_from_args(
        "referral.claimed", {"org_id": "acme", "referrer_id": "r", "referee_id": tag, "referral_code": "C"}
    )[0]
    return Pending(collector=payload, via="client")


def test_idle_lane_sends_at_once_and_batches_while_a_send_is_in_flight(uid: str) -> None:
    with FakeCollector() as fc:
        fc.gate = threading.Event()  # holds every POST until released: the first send stays in flight
        engine = DeliveryEngine([CollectorSink(fc.url)], exit_hook=False)  # default settings: adaptive linger
        try:
            engine.submit(_pending(f"{uid}-0"))
            # no flush() (it would cut any linger short): the idle lane sent the event on its own
            assert poll(lambda: len(fc.headers_seen) == 1, 5.0)
            for i in range(1, 6):
                engine.submit(_pending(f"{uid}-{i}"))
            fc.gate.set()
            assert engine.flush(10)
            assert fc.batch_sizes == [1, 5]  # the five that came during the first send: one batch
            assert [e["properties"]["referee_id"] for e in fc.events] == [f"{uid}-{i}" for i in range(6)]
        finally:
            fc.gate.set()
            engine.shutdown(5)


def test_linger_settings_from_the_environment_and_configure(caplog: pytest.LogCaptureFixture) -> None:
    assert Settings.from_env({}).linger_seconds is None  # unset: adaptive
    assert Settings().linger_seconds is None
    assert Settings.from_env({"OTEL_COMMERCE_LINGER_MS": "0"}).linger_seconds == 0.0
    assert Settings.from_env({"OTEL_COMMERCE_LINGER_MS": "20"}).linger_seconds == 0.02
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        assert Settings.from_env({"OTEL_COMMERCE_LINGER_MS": "-1"}).linger_seconds is None
    assert "OTEL_COMMERCE_LINGER_MS" in caplog.text and "adaptive" in caplog.text
    assert Settings(linger_seconds=None).linger_seconds is None and Settings(linger_seconds=0.5).linger_seconds == 0.5
    for bad in (-0.1, float("inf"), "5", True):
        with pytest.raises(ConfigurationError):
            Settings(linger_seconds=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DeliveryEngine([], linger_seconds=-1.0, exit_hook=False)


def test_configure_none_means_not_given() -> None:
    """As for every setting, ``linger_seconds=None`` in configure() keeps the environment's value."""
    assert Settings.from_env({"OTEL_COMMERCE_LINGER_MS": "7"}, linger_seconds=None).linger_seconds == 0.007
    assert Settings.from_env({}, linger_seconds=None).linger_seconds is None
    assert Settings.from_env({"OTEL_COMMERCE_LINGER_MS": "7"}, linger_seconds=0).linger_seconds == 0
