"""A restarted process replays its spool at configure(), not at its first event (real nats-server, real
processes); a process with nothing to replay starts no thread; configure(spool_fsync=...) outside ``wal``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from test_spool import _pending, _stream_ids

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery._spool import Spool, SpoolKey, read_file
from otel_commerce._model._pending import decode_pending, encode_pending
from otel_commerce._sinks import JetStreamSink

pytestmark = pytest.mark.timeout(120)

_RESTARTED = textwrap.dedent(
    """
    import os, sys, threading
    import otel_commerce
    otel_commerce.configure()
    started = any(t.name.endswith("-delivery") for t in threading.enumerate())
    ok = otel_commerce.flush(10)
    if sys.argv[1] == "fork":  # a forked child after the start: its own engine, its own events
        pid = os.fork()
        if pid == 0:
            otel_commerce.record_event("product.viewed", id=sys.argv[2] + "_child", organization_id="org_1",
                                       user_id="u", data={"product_id": "p", "price": 1.5})
            os._exit(0 if otel_commerce.flush(10) else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    s = otel_commerce.stats()
    print("started", started, "flush", ok, "replayed", s.get("replayed", 0), "exported", s.get("exported", 0), flush=True)
    """
)


def _spooled_by_a_dead_process(d: Path, url: str, service: str, n: int, prefix: str) -> None:
    key = SpoolKey(service, (JetStreamSink(url).spool_identity(),))
    spool = Spool(d, key, encode=encode_pending, decode=decode_pending)
    spool.spill([encode_pending(_pending(prefix, i)) for i in range(n)], None)
    spool.close()  # its lock released, its file left: what a process that is gone leaves


def _run(d: Path, url: str, service: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OTEL_COMMERCE_NATS_URL": url, "OTEL_COMMERCE_SPOOL": "spill",
           "OTEL_COMMERCE_SPOOL_DIR": str(d), "OTEL_SERVICE_NAME": service, "OTEL_COMMERCE_COLLECTOR_ENDPOINT": ""}  # fmt: skip
    return subprocess.run([sys.executable, "-c", _RESTARTED, *args], env=env, capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("fork", ["plain", "fork"])
def test_configure_then_flush_replays_the_backlog_of_dead_processes(
    tmp_path: Path, nats_server: NatsServer, fork: str
) -> None:
    """configure() then flush(10), no event recorded: the events a dead process of this service spooled are
    stored (once) and its file is gone; a forked child still records and delivers its own event."""
    n, prefix = 30, f"start_{uuid.uuid4().hex[:8]}"
    _spooled_by_a_dead_process(tmp_path, nats_server.url, "shop", n, prefix)
    before = len(_stream_ids(nats_server.url))
    proc = _run(tmp_path, nats_server.url, "shop", fork, prefix)
    stored = _stream_ids(nats_server.url)[before:]
    left = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".spill", ".wal"))
    print(f"\n[spool start] {fork}: {proc.stdout.strip()!r}; stored {len(stored)} ({len(set(stored))} distinct); "
          f"files left {left}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started True flush True replayed 30" in proc.stdout
    assert len(stored) == n + (fork == "fork") and len(set(stored)) == len(stored)
    assert left == []
    if fork == "fork":
        assert "child 0" in proc.stdout


def test_no_backlog_keeps_the_lazy_start(tmp_path: Path, nats_server: NatsServer) -> None:
    """Nothing of this service to replay (only another service's file): configure() starts no thread and
    leaves the other file alone."""
    _spooled_by_a_dead_process(tmp_path, nats_server.url, "another_service", 4, "lazy")
    files = sorted(p.name for p in tmp_path.iterdir())
    proc = _run(tmp_path, nats_server.url, "shop", "plain", "lazy")
    print(f"\n[spool start] no backlog: {proc.stdout.strip()!r}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started False flush True replayed 0" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_spool_fsync_outside_wal_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """configure(spool="spill", spool_fsync="always"): accepted, with one WARNING that fsync is ignored."""
    import otel_commerce
    from otel_commerce._runtime import RUNTIME

    RUNTIME.reset()
    RUNTIME._announced.discard("spool_fsync")
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        otel_commerce.configure(spool="spill", spool_fsync="always", nats_url="nats://127.0.0.1:1")
        otel_commerce.configure(spool="spill", spool_fsync="grouped", nats_url="nats://127.0.0.1:1")
        otel_commerce.configure(spool="wal", spool_fsync="always", nats_url="nats://127.0.0.1:1")
    try:
        warnings = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
        print(f"\n[spool start] fsync outside wal: {warnings}")
        assert warnings == [
            "otel-commerce: spool_fsync=always (OTEL_COMMERCE_SPOOL_FSYNC) is ignored: it applies to spool mode wal "
            "only, and the spool is spill"
        ]
    finally:
        otel_commerce.shutdown(1)
        RUNTIME.reset()


def test_invalid_spool_environment_values_warn_and_use_the_default(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README "invalid values": OTEL_COMMERCE_SPOOL / _SPOOL_FSYNC / _SPOOL_FSYNC_MS follow the numeric and enum
    rule (a WARNING naming the variable, the default used), never raise."""
    from otel_commerce import Settings

    monkeypatch.setenv("OTEL_COMMERCE_SPOOL", "bogus")
    monkeypatch.setenv("OTEL_COMMERCE_SPOOL_FSYNC", "often")
    monkeypatch.setenv("OTEL_COMMERCE_SPOOL_FSYNC_MS", "-3")
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        settings = Settings.from_env()
    named = [r.getMessage().split("=", 1)[0].removeprefix("otel-commerce: ") for r in caplog.records]
    print(f"\n[spool start] invalid env: {named} -> {settings.spool!r} {settings.spool_fsync} {settings.spool_fsync_ms}")
    assert (settings.spool, settings.spool_fsync, settings.spool_fsync_ms) == ("", "none", 100.0)
    assert named == ["OTEL_COMMERCE_SPOOL", "OTEL_COMMERCE_SPOOL_FSYNC", "OTEL_COMMERCE_SPOOL_FSYNC_MS"]


def test_a_killed_wal_process_leaves_nothing_after_the_next_start(tmp_path: Path, nats_server: NatsServer) -> None:
    """kill -9 of a `wal` process leaves its segment, its spare (`.next`) and its lockfile; the next process of
    the service adopts them at configure(): none of the dead owner's files is left."""
    from test_cli_spool import _WAL_KILLED

    env = {**os.environ, "OTEL_COMMERCE_NATS_URL": nats_server.url, "OTEL_COMMERCE_SPOOL": "wal",
           "OTEL_COMMERCE_SPOOL_DIR": str(tmp_path), "OTEL_SERVICE_NAME": "shop", "OTEL_COMMERCE_COLLECTOR_ENDPOINT": "",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", _WAL_KILLED], env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr[-2000:]
    dead = sorted(p.name for p in tmp_path.iterdir())
    stem = dead[0].split(".", 1)[0]
    restarted = _run(tmp_path, nats_server.url, "shop", "plain", "x")
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(stem))
    print(f"\n[spool start] after kill -9: {[Path(n).suffix for n in dead]}; the next start: "
          f"{restarted.stdout.strip()!r}; dead owner's files left {left}")  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert sorted(Path(n).suffix for n in dead) == [".lock", ".next", ".wal"]
    assert "started True flush True" in restarted.stdout
    assert left == []


_FLUSH_SINK_DOWN = textwrap.dedent(
    """
    import os, threading, time
    import otel_commerce
    otel_commerce.configure()
    t0, out = time.monotonic(), []
    th = threading.Thread(target=lambda: out.append(otel_commerce.flush()), daemon=True)
    th.start()
    th.join(15)
    print("returned", not th.is_alive(), "result", out, "after", round(time.monotonic() - t0, 1), flush=True)
    os._exit(0)
    """
)


def test_flush_without_timeout_after_configure_with_the_sink_down_ends_like_an_events(tmp_path: Path) -> None:
    """A backlog to replay and the broker down: flush() with no timeout does not wait for the sink forever; like
    a recorded event it gives up after max_age (False) and the backlog stays on disk for a later replay."""
    from lifecycle_support import free_port

    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens
    _spooled_by_a_dead_process(tmp_path, url, "shop", 5, "down")
    env = {**os.environ, "OTEL_COMMERCE_NATS_URL": url, "OTEL_COMMERCE_SPOOL": "spill", "OTEL_COMMERCE_MAX_AGE_MS": "1000",
           "OTEL_COMMERCE_SPOOL_DIR": str(tmp_path), "OTEL_SERVICE_NAME": "shop", "OTEL_COMMERCE_COLLECTOR_ENDPOINT": ""}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _FLUSH_SINK_DOWN], env=env, capture_output=True, text=True, timeout=90)
    kept = sum(len(r.records) for r in map(read_file, tmp_path.glob("*.spill")))
    print(f"\n[spool start] flush() with the sink down: {proc.stdout.strip()!r}; events kept on disk {kept}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "returned True result [False]" in proc.stdout
    assert kept == 5


@pytest.mark.parametrize("new_engine", ["lazy", "started"])
def test_configure_again_replays_what_the_replaced_engine_spilled(
    tmp_path: Path, fresh_nats_server: NatsServer, new_engine: str
) -> None:
    """configure() called a second time in one process: the old engine, its broker down, spills its queued
    events at shutdown; the new engine (same sinks, same key) adopts and replays them once the broker is back —
    not only at the next process start. ``started``: the new engine was already replaying a dead process's
    backlog when the old one spilled (it adopts again)."""
    import otel_commerce
    from otel_commerce._delivery._spool import service_name
    from otel_commerce._runtime import RUNTIME

    server = fresh_nats_server
    settings = {"nats_url": server.url, "spool": "spill", "spool_dir": str(tmp_path), "collector_endpoint": ""}
    RUNTIME.reset()
    try:
        otel_commerce.configure(**settings)
        assert otel_commerce.flush(10)
        server.stop()  # refused: nothing recorded now can reach the stream before the restart
        data = {"product_id": "p", "price": 1.5}
        ids = [
            otel_commerce.record_event("product.viewed", id=f"reconf_{i}", organization_id="org_1", user_id="u", data=data)
            for i in range(10)
        ]
        if new_engine == "started":  # a dead process's backlog: the new engine starts at configure()
            _spooled_by_a_dead_process(tmp_path, server.url, service_name(), 3, "reconf_dead")
        before = sum(len(read_file(p).records) for p in tmp_path.glob("*.spill"))
        otel_commerce.configure(**settings)  # the old engine shuts down (5 s) and spills the 10 events
        spilled = sum(len(read_file(p).records) for p in tmp_path.glob("*.spill")) - before
        server.start()
        ok = otel_commerce.flush(30)
        stored = _stream_ids(server.url)
        left = sum(len(read_file(p).records) for p in tmp_path.glob("*.spill"))
        print(f"\n[spool start] configure() again: spilled {spilled}, flush {ok}, stored {len(stored)} "
              f"({len(set(stored) & set(ids))} of ours), left on disk {left}")  # fmt: skip
        assert spilled == 10 and RUNTIME.engine is not None
        assert ok and set(ids) <= set(stored) and len(stored) == 10 + before == len(set(stored)) and left == 0
    finally:
        otel_commerce.shutdown(1)
        RUNTIME.reset()
