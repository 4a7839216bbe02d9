"""`otel-commerce spool stats|replay|drop` on real spool files and a real nats-server."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_spool import _pending, _stream_ids
from typer.testing import CliRunner

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery._spool import Spool as _Spool
from otel_commerce._delivery._spool import SpoolKey, service_name
from otel_commerce._model._pending import decode_pending, encode_pending
from otel_commerce._sinks import JetStreamSink
from otel_commerce.cli import app


def Spool(*args: Any, **kwargs: Any) -> _Spool:
    """A spool with the event record's codec (what ``build_engine`` hands the engine)."""
    return _Spool(*args, encode=encode_pending, decode=decode_pending, **kwargs)


runner = CliRunner()


def _dead_spool(d: Path, url: str, n: int, prefix: str) -> None:
    """n events spooled by a process that is gone (its lock released, its file left)."""
    spool = Spool(d, SpoolKey(service_name(), (JetStreamSink(url).spool_identity(),)))
    spool.spill([encode_pending(_pending(prefix, i)) for i in range(n)], None)
    spool.close()


def test_stats_replay_and_drop(tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """stats counts per key; replay stores every event of the matching key; drop asks, then deletes."""
    prefix = f"cli_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_COMMERCE_NATS_URL", nats_server.url)
    monkeypatch.delenv("OTEL_COMMERCE_COLLECTOR_ENDPOINT", raising=False)
    _dead_spool(tmp_path, nats_server.url, 40, prefix)
    _dead_spool(tmp_path, "nats://127.0.0.1:1", 7, prefix + "_other")  # another sink: never replayed here

    stats = runner.invoke(app, ["spool", "stats", "--dir", str(tmp_path), "--json"])
    assert stats.exit_code == 0, stats.output
    rows = sorted(json.loads(line)["events"] for line in stats.output.splitlines())
    before = len(_stream_ids(nats_server.url))
    replay = runner.invoke(app, ["spool", "replay", "--dir", str(tmp_path), "--timeout", "30"])
    ours = [i for i in _stream_ids(nats_server.url)[before:]]
    refused = runner.invoke(app, ["spool", "drop", "--before", "0s", "--dir", str(tmp_path)], input="n\n")
    left_after_no = len(list(tmp_path.glob("*.spill")))
    dropped = runner.invoke(app, ["spool", "drop", "--before", "0s", "--dir", str(tmp_path)], input="y\n")
    print(
        f"\n[cli spool] stats events per key {rows}; replay stored {len(ours)}; drop: refused kept "
        f"{left_after_no} file(s), then {dropped.output.strip().splitlines()[-1]!r}"
    )
    assert rows == [7, 40]
    assert replay.exit_code == 0, replay.output
    assert len(ours) == 40 and len(set(ours)) == 40
    assert refused.exit_code == 1 and left_after_no == 1 and "nothing dropped" in refused.output
    assert dropped.exit_code == 0 and "7 event(s)" in dropped.output
    assert not list(tmp_path.glob("*.spill")) and os.path.isdir(tmp_path)
