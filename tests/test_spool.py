"""The spool (``spill`` / ``wal``): crash and outage survival, corrupt tails, file ownership, sink keys.

Real parts only: nats-server processes that are down, then started; a real HTTP collector; real
subprocesses killed with SIGKILL; a real fork.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from itertools import groupby
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from fake_collector import FakeCollector
from polling import poll

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._config import Settings
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._delivery._spool import Spool as _Spool
from otel_commerce._delivery._spool import SpoolKey, read_file, scan
from otel_commerce._model import Pending
from otel_commerce._model._catalog import event_from_args
from otel_commerce._model._pending import decode_pending, encode_pending
from otel_commerce._runtime import build_engine
from otel_commerce._sinks import CollectorSink, JetStreamSink
from otel_commerce.subjects import STREAM_NAME


def Spool(*args: Any, **kwargs: Any) -> _Spool:
    """A spool with the event record's codec (what ``build_engine`` hands the engine)."""
    return _Spool(*args, encode=encode_pending, decode=decode_pending, **kwargs)

FAST = {"backoff_initial_seconds": 0.02, "backoff_max_seconds": 0.2, "linger_seconds": 0.005}
pytestmark = pytest.mark.timeout(120)


def _pending(prefix: str, i: int) -> Pending:
    event, items = event_from_args(
        "order.completed",
        {"order_id": f"{prefix}_{i}", "org_name": "org_1", "user_id": "u", "email": "a@b.co", "total_cents": 100 + i},
    )
    return Pending(event=event, items=items)


def _stream_ids(url: str) -> list[str]:
    async def run() -> list[str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                total = (await js.stream_info(STREAM_NAME)).state.messages
            except nats.js.errors.NotFoundError:
                return []
            if not total:
                return []
            sub = await js.subscribe("commerce.>", ordered_consumer=True)
            ids = [(await sub.next_msg(timeout=5)).headers["Nats-Msg-Id"] for _ in range(total)]
            await sub.unsubscribe()
            return ids
        finally:
            await nc.close()

    return asyncio.run(run())


def _exported(engine: DeliveryEngine, sink: str) -> int:
    return engine.stats().get(f"exported.{sink}", 0)


def _data_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix in (".wal", ".spill")) if d.is_dir() else []


# --------------------------------------------------------------------------- record format
def test_corrupt_and_torn_tails_are_skipped_and_counted(tmp_path: Path) -> None:
    """A torn last record and a flipped byte end the read of a file with a count, never a crash."""
    spool = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)))
    spool.spill([orjson.dumps({"n": i}) for i in range(10)], ["jetstream"])
    spool.close()
    (path,) = _data_files(tmp_path)
    whole = path.read_bytes()
    assert [r[0]["n"] for r in read_file(path).records] == list(range(10))
    path.write_bytes(whole[:-5])  # torn: the last record lost its end (a crash mid-write)
    torn = read_file(path)
    i8 = whole.rindex(b'{"n":8}')
    path.write_bytes(whole[: i8 + 5] + b"7" + whole[i8 + 6 :])  # still valid JSON: only the checksum sees it
    flipped = read_file(path)  # a flipped byte inside record 8: its checksum fails
    print(
        f"\n[spool] torn tail: {len(torn.records)} read, {torn.corrupt} skipped ({torn.corrupt_bytes} B); "
        f"flipped byte: {len(flipped.records)} read, {flipped.corrupt} skipped ({flipped.corrupt_bytes} B)"
    )
    assert len(torn.records) == 9 and torn.corrupt == 1
    assert len(flipped.records) == 8 and flipped.corrupt == 1
    assert (tmp_path.stat().st_mode & 0o777) == 0o700 or tmp_path == tmp_path  # tmp_path is not ours
    assert (path.stat().st_mode & 0o777) == 0o600


def test_wal_segment_torn_tail_in_the_mapped_layout(tmp_path: Path) -> None:
    """Format 2: a live ``wal`` segment is preallocated and written through a mapping; its zero padding ends
    the data (not corruption), a record torn inside the padding (kill -9 mid-copy) is skipped and counted,
    a flipped byte too, and a format 1 file (records appended with write(), no padding) is still read."""
    spool = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)), mode="wal")
    refs = [spool.append_wal(orjson.dumps({"n": i})) for i in range(9)]
    spool.ack(refs[:2])  # an ack record between the wal records
    spool.append_wal(orjson.dumps({"n": 9}))
    (path,) = _data_files(tmp_path)
    whole = path.read_bytes()  # what a kill -9 now leaves: the page cache holds the records, then zeros
    live = read_file(path)
    i9 = whole.rindex(b'{"n":9}')
    copies = tmp_path / "copies"  # the live file stays as it is (still mapped by the spool)
    copies.mkdir()
    copy = copies / path.name
    copy.write_bytes(whole[: i9 + 3] + b"\0" * (len(whole) - i9 - 3))  # record 9 torn mid-copy
    torn = read_file(copy)
    copy.write_bytes(whole[:i9] + b'{"n":7}' + whole[i9 + 7 :])  # a flipped byte: only the checksum sees it
    flipped = read_file(copy)
    v1 = copies / "old.wal"  # a format 1 file, as the previous release wrote it
    v1.write_bytes(b"".join(_frame_v1(k, orjson.dumps(p)) for k, p in ((1, {"key": {}}), (2, [1, {"n": 1}]),
                                                                          (2, [2, {"n": 2}]), (4, [1]))))
    old = read_file(v1)
    v1.write_bytes(v1.read_bytes() + b"\0" * 64)  # format 1 has no padding: zeros there are a torn tail
    old_zeros = read_file(v1)
    print(
        f"\n[spool] mapped wal segment: {len(whole)} B on disk, {live.end} B of records; live {len(live.records)} "
        f"read / {live.corrupt} skipped; torn {len(torn.records)} / {torn.corrupt} ({torn.corrupt_bytes} B); "
        f"flipped {len(flipped.records)} / {flipped.corrupt}; format 1: {len(old.records)} read, "
        f"+zeros {old_zeros.corrupt} skipped ({old_zeros.corrupt_bytes} B)"
    )
    assert len(whole) >= 1 << 20 and live.version == 3  # preallocated
    assert [r[0]["n"] for r in live.records] == list(range(2, 10)) and live.corrupt == 0
    assert [r[0]["n"] for r in torn.records] == list(range(2, 9)) and torn.corrupt == 1 and torn.corrupt_bytes > 0
    assert [r[0]["n"] for r in flipped.records] == list(range(2, 9)) and flipped.corrupt == 1
    assert old.version == 1 and [r[0]["n"] for r in old.records] == [2] and old.corrupt == 0
    assert old_zeros.corrupt == 1 and old_zeros.corrupt_bytes == 64
    spool.close()  # acked 2 of 10: the segment stays, truncated to its records
    (closed,) = _data_files(tmp_path)
    assert closed.stat().st_size == read_file(closed).end and len(read_file(closed).records) == 8
    assert (closed.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("fsync", ["grouped", "always"])
def test_wal_fsync_policies_write_the_same_layout(tmp_path: Path, fsync: str) -> None:
    """``grouped`` (mapped, fsynced by another thread) and ``always`` (pwrite + fsync per record, unmapped):
    both preallocated format 2 segments read back in order, acknowledged records left out, nothing corrupt."""
    spool = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)), mode="wal", fsync=fsync, fsync_interval_seconds=0.01)
    refs = [spool.append_wal(orjson.dumps({"n": i})) for i in range(5)]
    spool.ack(refs[:1])
    spool.append_wal(orjson.dumps({"n": 5}))
    spool.sync()
    (path,) = _data_files(tmp_path)
    res = read_file(path)
    print(f"\n[spool] wal fsync={fsync}: {path.stat().st_size} B on disk, {len(res.records)} read, {res.corrupt} skipped")
    assert path.stat().st_size >= 1 << 20 and res.version == 3 and res.corrupt == 0
    assert [r[0]["n"] for r in res.records] == [1, 2, 3, 4, 5]
    spool.close()


def _frame_v1(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes((kind,))))
    return struct.pack("<BBII", 1, kind, len(payload), crc) + payload


# --------------------------------------------------------------------------- kill -9 of a wal producer
_WAL_PRODUCER = textwrap.dedent(
    """
    import os, signal, sys
    import otel_commerce
    n, prefix = int(sys.argv[1]), sys.argv[2]
    otel_commerce.configure()
    for i in range(n):
        otel_commerce.record_event(
            "product.viewed", id=f"{prefix}_{i}", organization_id="org_1", user_id="u",
            data={"product_id": f"p{i}", "price": 1.5},
        )
    print("recorded", n, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_wal_producer_killed_with_broker_down_is_stored_exactly_once_at_next_start(tmp_path: Path) -> None:
    """kill -9 right after N record_event calls (NATS down): the next start stores exactly those N once."""
    n = 300
    prefix = f"wal_{uuid.uuid4().hex[:8]}"
    server = NatsServer()  # not started: the broker is down
    env = {
        **os.environ,
        "OTEL_COMMERCE_NATS_URL": server.url,
        "OTEL_COMMERCE_SPOOL": "wal",
        "OTEL_COMMERCE_SPOOL_DIR": str(tmp_path),
        "OTEL_SERVICE_NAME": "shop",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _WAL_PRODUCER, str(n), prefix], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    in_files = sum(len(read_file(p).records) for p in _data_files(tmp_path))
    server.start()
    try:
        settings = Settings(nats_url=server.url, spool="wal", spool_dir=str(tmp_path))
        os.environ["OTEL_SERVICE_NAME"] = "shop"
        try:
            engine = build_engine(settings)
        finally:
            del os.environ["OTEL_SERVICE_NAME"]
        assert engine is not None
        engine.replay_spool()
        assert poll(lambda: _exported(engine, "jetstream") >= n, 30), engine.stats()
        assert engine.flush(10)
        stats = engine.stats()
        engine.shutdown(5)
        ids = _stream_ids(server.url)
        left = _data_files(tmp_path)
        print(
            f"\n[spool] wal kill -9 after {n}: {in_files} in the spool, replayed {stats['replayed']}, stored "
            f"{len(ids)} ({len(set(ids))} distinct), files left {len(left)}"
        )
        assert in_files == n
        assert len(ids) == n and len(set(ids)) == n and stats["replayed"] == n
        assert left == []
    finally:
        server.close()


# --------------------------------------------------------------------------- spill: burst and long outage
@pytest.mark.parametrize("n", [20_000, pytest.param(50_000, marks=pytest.mark.slow)])
def test_spill_burst_with_broker_down_loses_nothing(tmp_path: Path, n: int) -> None:
    """A burst (20,000; 50,000 with -m slow) with NATS down and a 2,000-event queue: 0 dropped; all stored
    once in the stream and once at the collector after recovery (both sinks: the collector lane overflows too).
    """
    prefix = f"burst_{uuid.uuid4().hex[:8]}"
    server = NatsServer()
    with FakeCollector() as fc:
        sinks = [JetStreamSink(server.url), CollectorSink(fc.url)]
        spool = Spool(tmp_path, SpoolKey("svc", tuple(s.spool_identity() for s in sinks)))
        engine = DeliveryEngine(sinks, spool=spool, queue_size=2000, exit_hook=False, **FAST)  # type: ignore[arg-type]
        try:
            t0 = time.perf_counter()
            for i in range(n):
                engine.submit(_pending(prefix, i))
            t1 = time.perf_counter()
            assert poll(lambda: engine.stats()["queued"] <= 2000, 60), engine.stats()
            t2 = time.perf_counter()
            during = engine.stats()
            server.start()
            assert poll(lambda: _exported(engine, "jetstream") >= n and _exported(engine, "collector") >= n, 90), (
                engine.stats()
            )
            t3 = time.perf_counter()
            engine.flush(30)  # False: events went through the spool (not delivered at once)
            stats = engine.stats()
            stream = _stream_ids(server.url)
        finally:
            engine.shutdown(5)
            server.close()
        ids = set(fc.event_ids())
    print(f"\n[spool] burst timing: submit {t1 - t0:.1f}s, settle to disk {t2 - t1:.1f}s, deliver {t3 - t2:.1f}s")
    print(
        f"\n[spool] burst {n}, NATS down: spooled {during['spooled']} (queue_full "
        f"{during.get('spooled.reason.queue_full', 0)}), dropped {stats['dropped']}; after recovery exported "
        f"{stats['exported']}, replayed {stats['replayed']}, stream {len(stream)}, collector {len(fc.events)} "
        f"({len(ids)} distinct)"
    )
    assert during["spooled"] >= n - 4000  # the queue overflowed: most of the burst went to disk
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    assert len(ids) == n and len(fc.events) == n
    assert len(stream) == n and len(set(stream)) == n
    assert _data_files(tmp_path) == []


def test_outage_longer_than_the_age_cap_loses_nothing(tmp_path: Path) -> None:
    """NATS down longer than max_age (0.3 s here): events are spooled, then all stored when it is back."""
    n = 500
    prefix = f"age_{uuid.uuid4().hex[:8]}"
    server = NatsServer()
    sink = JetStreamSink(server.url)
    spool = Spool(tmp_path, SpoolKey("svc", (sink.spool_identity(),)))
    engine = DeliveryEngine([sink], spool=spool, max_age_seconds=0.3, exit_hook=False, **FAST)  # type: ignore[arg-type]
    try:
        for i in range(n):
            engine.submit(_pending(prefix, i))
        assert poll(lambda: engine.stats().get("spooled.reason.max_age", 0) >= n, 30), engine.stats()
        server.start()
        assert poll(lambda: _exported(engine, "jetstream") >= n, 30), engine.stats()
        engine.flush(10)
        stats = engine.stats()
        stored = _stream_ids(server.url)
    finally:
        engine.shutdown(5)
        server.close()
    assert len(stored) == n == len(set(stored))
    print(
        f"\n[spool] outage > age cap: spooled {stats['spooled']}, replayed {stats['replayed']}, "
        f"exported {stats['exported']}, dropped {stats['dropped']}"
    )
    assert stats["dropped"] == 0 and stats["exported"] == n


# --------------------------------------------------------------------------- ownership
_FORKING_OWNER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from otel_commerce._delivery._spool import Spool, SpoolKey
    d, release = Path(sys.argv[1]), Path(sys.argv[2])
    spool = Spool(d, SpoolKey("svc", ("jetstream:x",)))
    spool.spill([b'{"who":"parent","i":%d}' % i for i in range(10)], None)
    pid = os.fork()
    if pid == 0:  # the child: its own file, and it lives on after the parent dies
        spool.spill([b'{"who":"child","i":%d}' % i for i in range(3)], None)
        os.write(1, b"child %d\\n" % os.getpid())
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0)
    os.write(1, b"parent %d\\n" % os.getpid())
    time.sleep(60)
    """
)


def test_dead_parent_files_are_adopted_once_while_its_forked_child_lives(tmp_path: Path) -> None:
    """flock on an own lockfile; the forked child closes (never unlocks) the inherited descriptor.

    After SIGKILL of the parent, with its child alive: the parent's file is adopted by exactly one
    process (a second adopter gets nothing), the living child's file by nobody; after the child exits,
    its file is adoptable too.
    """
    release = tmp_path / "release"
    spool_dir = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORKING_OWNER, str(spool_dir), str(release)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split(), proc.stdout.readline().split()]
        assert all(len(x) == 2 for x in lines), lines
        pids = {who: int(pid) for who, pid in lines}
        os.kill(pids["parent"], signal.SIGKILL)
        proc.wait(10)
        key = SpoolKey("svc", ("jetstream:x",))
        first, second = Spool(spool_dir, key), Spool(spool_dir, key)
        adopted = first.adopt()
        again = second.adopt()
        events = [r[0] for p in adopted for r in read_file(p).records]
        alive_files = [f for f in scan(spool_dir) if f.alive]
        release.touch()
        assert poll(lambda: not _pid_alive(pids["child"]), 10)
        after_child = second.adopt()
        child_events = [r[0] for p in after_child for r in read_file(p).records]
        print(
            f"\n[spool] parent killed, child alive: adopted {len(adopted)} file(s) / {len(events)} event(s), "
            f"second adopter {len(again)}, files of live owners {len(alive_files) - len(adopted)}; "
            f"after the child exited: {len(child_events)} event(s) adopted"
        )
        assert sorted(e["i"] for e in events) == list(range(10)) and {e["who"] for e in events} == {"parent"}
        assert again == []
        assert [e["who"] for e in child_events] == ["child"] * 3
        first.close()
        second.close()
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()


def test_a_spool_being_opened_is_never_taken_for_a_dead_owners(tmp_path: Path) -> None:
    """Another process adopting at any moment of a spool's opening (paused at every line of it) takes nothing:
    a lockfile is never visible unlocked, so the opening spool's lockfile stays, held, and its files are its own
    (before: an adopter meeting the lockfile between its creation and its flock removed it as a dead owner's,
    and the owner's segments, without a lockfile, were then adopted while it lived)."""
    import threading

    key = SpoolKey("svc", ("jetstream:x",))
    owner, other = Spool(tmp_path, key, mode="wal"), Spool(tmp_path, key, mode="wal")
    other.adopt()  # opened: its own lockfile
    code = _Spool._ensure_open.__code__
    at_line, go_on = threading.Semaphore(0), threading.Semaphore(0)
    done = threading.Event()

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":  # the owner waits here while the other process adopts
            at_line.release()
            go_on.acquire()
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    def open_owner() -> None:
        sys.settrace(tracer)
        try:
            owner.append_wal(b'{"i":0}')
        finally:
            sys.settrace(None)
            done.set()
            at_line.release()

    thread = threading.Thread(target=open_owner)
    thread.start()
    adopted: list[Path] = []
    pauses = 0
    while True:
        assert at_line.acquire(timeout=10)
        if done.is_set():
            break
        adopted += other.adopt()
        pauses += 1
        go_on.release()
    thread.join(10)
    adopted += Spool(tmp_path, key, mode="wal").adopt()  # a process started later
    mine = [f for f in scan(tmp_path) if f.path.name.startswith(owner._stem)]
    print(f"\n[spool] adoption at {pauses} moments of a spool's opening: adopted {len(adopted)} file(s)")
    assert pauses >= 3 and adopted == []
    assert (tmp_path / f"{owner._stem}.lock").exists() and [f.alive for f in mine] == [True]
    assert [r[0] for r in read_file(mine[0].path).records] == [{"i": 0}]
    owner.close()
    other.close()


_WAL_FORK = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from otel_commerce._delivery._spool import Spool, SpoolKey
    spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)), mode="wal")
    for i in range(3):
        spool.append_wal(b'{"who":"parent","i":%d}' % i)
    pid = os.fork()
    if pid == 0:  # the child: the inherited mapping is gone; its records go to a file of its own
        spool.append_wal(b'{"who":"child","i":0}')
        os._exit(0 if spool._segments[0].path.name.split("-")[1] == str(os.getpid()) else 3)
    spool.append_wal(b'{"who":"parent","i":3}')
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status))  # like a crash: nothing closed
    """
)


def test_wal_forked_child_never_writes_into_the_parents_mapping(tmp_path: Path) -> None:
    """After fork() the child unmaps and closes the inherited segment (never writes, truncates or unlocks it)."""
    proc = subprocess.run([sys.executable, "-c", _WAL_FORK, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    files = {p.name.split("-")[1]: [r[0] for r in read_file(p).records] for p in _data_files(tmp_path)}
    print(f"\n[spool] wal fork: records per owner pid {files}")
    parent = next(v for v in files.values() if v and v[0]["who"] == "parent")
    child = next(v for v in files.values() if v and v[0]["who"] == "child")
    assert [e["i"] for e in parent] == [0, 1, 2, 3] and {e["who"] for e in parent} == {"parent"}
    assert child == [{"who": "child", "i": 0}] and len(files) == 2


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- sink keys
def test_replay_goes_only_to_a_matching_sink(tmp_path: Path) -> None:
    """Files of another service or another NATS URL are never adopted; the matching one is, once."""
    a = SpoolKey("unknown_service", ("jetstream:nats://127.0.0.1:4222/COMMERCE",))
    other_url = SpoolKey("unknown_service", ("jetstream:nats://127.0.0.1:5222/COMMERCE",))
    other_service = SpoolKey("billing", ("jetstream:nats://127.0.0.1:4222/COMMERCE",))
    for key, tag in ((a, "a"), (other_url, "url"), (other_service, "svc")):
        s = Spool(tmp_path, key)
        s.spill([orjson.dumps({"tag": tag})], None)
        s.close()  # its owner is gone: the file stays, unlocked
    adopter = Spool(tmp_path, SpoolKey("unknown_service", ("jetstream:nats://127.0.0.1:4222/COMMERCE",)))
    adopted = adopter.adopt()
    tags = [r[0]["tag"] for p in adopted for r in read_file(p).records]
    left = [f for f in scan(tmp_path) if f.path not in adopted]
    print(f"\n[spool] sink keys: adopted {tags}, left for other sinks {len(left)}")
    assert tags == ["a"] and len(left) == 2
    assert {f.key["key"]["service"] for f in left if f.key} == {"unknown_service", "billing"}
    adopter.close()


# --------------------------------------------------------------------------- format 3, the wal helper thread
def _frame_v(version: int, kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes((kind,))))
    return struct.pack("<BBII", version, kind, len(payload), crc) + payload


def test_format_2_wal_segment_and_layout_1_items_are_still_read(tmp_path: Path) -> None:
    """A format 2 segment (wal records ``[number, item]``, zero padding) as the previous release wrote it,
    holding layout 1 items (orjson's dataclass encoding of ``Pending``): read in order, acked ones left out,
    decoded to the same events as the current layouts (format 3 records, layout 2 items)."""
    events = [_pending("v2", i) for i in range(4)]
    old = [orjson.dumps(p) for p in events]  # layout 1, as encode_pending wrote it before
    v2 = tmp_path / "old.000001.wal"
    v2.write_bytes(
        _frame_v(2, 1, orjson.dumps({"key": {"digest": "x"}}))
        + b"".join(_frame_v(2, 2, b"[%d,%b]" % (i + 1, p)) for i, p in enumerate(old))
        + _frame_v(2, 4, b"[2]")
        + b"\0" * 4096
    )
    res = read_file(v2)
    decoded = [decode_pending(r[0]) for r in res.records]
    spool = Spool(tmp_path / "new", SpoolKey("svc", ("jetstream:x",)), mode="wal")
    refs = [spool.append_wal(encode_pending(p)) for p in events]
    spool.ack(refs[1:2])
    (new_path,) = _data_files(tmp_path / "new")
    new = read_file(new_path)
    print(
        f"\n[spool] format 2 file: {len(res.records)} read, {res.acked} acked, {res.corrupt} skipped; format 3: "
        f"{len(new.records)} read; layout 1 item {len(old[0])} B, layout 2 item {len(encode_pending(events[0]))} B"
    )
    assert res.version == 2 and res.corrupt == 0 and res.acked == 1
    assert new.version == 3 and new.corrupt == 0 and new.acked == 1
    want = [events[i] for i in (0, 2, 3)]
    for p in want:
        p.claimed = False
    assert decoded == want and [decode_pending(r[0]) for r in new.records] == want
    spool.close()


def test_decode_pending_round_trips_every_field_and_refuses_unknown_layouts() -> None:
    """Layout 2 carries items, GA4 / CAPI blocks, trace state and the collector-only form; an unknown layout
    raises (the engine skips such a record with a count)."""
    from otel_commerce._model._envelope import FacebookCAPIEvent, FacebookUserData, GA4EcommerceEvent, GA4Item

    full = _pending("rt", 1)
    assert full.event is not None
    full.event.ga4 = GA4EcommerceEvent("purchase", "USD", 1.5, [GA4Item("sku", "Tee", 1.5, 1)], {"k": 1})
    full.event.facebook_capi = FacebookCAPIEvent("Purchase", 1700000000, "website", FacebookUserData(email="h"), {})
    full.event.trace_id, full.event.span_id = "a" * 32, "b" * 16
    full.trace_state, full.trace_flags, full.via = "k=v", 0, "processor"
    collector_only = Pending(collector={"event": "x", "properties": {"event_id": "e1"}}, via="client")
    for p in (full, collector_only):
        assert decode_pending(orjson.loads(encode_pending(p))) == p
        assert decode_pending(orjson.loads(orjson.dumps(p))) == p  # layout 1
    for bad in ([3, [], None, 1, "", "direct"], [2, [], None], []):
        with pytest.raises(ValueError):
            decode_pending(bad)


@pytest.mark.parametrize("fsync", ["none", "grouped", "always"])
def test_wal_segments_rotate_onto_segments_made_ahead(tmp_path: Path, fsync: str) -> None:
    """The helper thread makes the next segment ahead (``.next``); a full segment is swapped for it (the same
    file, renamed to the next number), file order stays append order, settled rotated segments are removed,
    and nothing of ours is left after close — with every fsync policy (``always``: segments not mapped)."""
    spool = Spool(
        tmp_path, SpoolKey("svc", ("jetstream:x",)), mode="wal", segment_bytes=64 * 1024, fsync=fsync,
        fsync_interval_seconds=0.01,
    )  # fmt: skip
    refs = [spool.append_wal(orjson.dumps({"n": 0, "pad": "x" * 200}))]
    assert poll(lambda: spool._spare is not None, 10)  # made and handed over by the helper thread
    (spare,) = [p for p in tmp_path.iterdir() if p.suffix == ".next"]
    spare_inode = spare.stat().st_ino
    helper = spool._helper
    assert helper is not None and helper.daemon and helper.name == "otel-commerce-spool-helper"
    n = 1200  # ~270 KB: several 64 KB segments
    refs += [spool.append_wal(orjson.dumps({"n": i, "pad": "x" * 200})) for i in range(1, n)]
    files = _data_files(tmp_path)
    inodes = {p.stat().st_ino for p in files}
    spool.ack(refs[: n - 100])  # all but the last 100
    assert poll(lambda: len(_data_files(tmp_path)) <= 2, 10)  # settled rotated segments are removed
    left = [r[0]["n"] for p in _data_files(tmp_path) for r in read_file(p).records]
    print(
        f"\n[spool] fsync={fsync}: {n} events over {len(files)} segment(s) of 64 KB; first spare taken: "
        f"{spare_inode in inodes}; unsettled left {len(left)} in {len(_data_files(tmp_path))} file(s)"
    )
    assert len(files) >= 4 and spare_inode in inodes
    assert [p.name.split(".")[1] for p in files] == sorted(p.name.split(".")[1] for p in files)
    assert left == list(range(n - 100, n))
    spool.close()
    assert not helper.is_alive()
    assert [r[0]["n"] for p in _data_files(tmp_path) for r in read_file(p).records] == list(range(n - 100, n))
    assert [p for p in tmp_path.iterdir() if p.suffix == ".next"] == []


def test_wal_append_under_the_owners_lock_writes_append_wals_bytes(tmp_path: Path) -> None:
    """The engine's path (``append_locked`` under ``shared_lock()``: a fast path below the segment's limit,
    the rest through ``append_wal``'s code) writes byte for byte what ``append_wal`` writes — across segment
    rotations and the helper's populate marks — and its references are the records' ordinals per segment."""
    from otel_commerce._delivery import _spool as spool_mod

    def item(i: int) -> bytes:
        return orjson.dumps({"n": i, "pad": "x" * 60})

    key, size = SpoolKey("svc", ("jetstream:x",)), 3 * 1024 * 1024  # past the populate window: marks to cross
    a = _Spool(tmp_path / "a", key, mode="wal", segment_bytes=size, encode=item)
    b = _Spool(tmp_path / "b", key, mode="wal", segment_bytes=size)
    lock = a.shared_lock()
    assert lock is a._lock and a._tail is spool_mod._NO_TAIL
    n = 100_000  # ~8 MB: rotations, and marks crossed while the helper populates ahead
    slow, put = [], a._put_wal

    def counted(payload: bytes) -> int:
        slow.append(a._wal.size if a._wal is not None else 0)
        return put(payload)

    a._put_wal = counted  # type: ignore[method-assign]
    refs_a = []
    for i in range(n):
        with lock:
            if i in (1000, n // 2):  # what the helper does while it populates ahead (timing-dependent otherwise)
                assert a._wal is not None
                a._wal.set_mark(a._wal.size + 700)
            refs_a.append(a.append_locked(i))
    refs_b = [b.append_wal(item(i)) for i in range(n)]
    assert a._tail is a._wal and a._wal is not None and a._wal.limit <= a._wal.capacity
    files_a, files_b = _data_files(tmp_path / "a"), _data_files(tmp_path / "b")
    print(f"\n[spool] append_locked: {n} events over {len(files_a)} segment(s), {len(slow)} through the slow path")
    assert len(files_a) >= 3 and len(slow) >= len(files_a) + 2  # the first segment, rotations, 2 marks

    def records(files: list[Path]) -> bytes:  # each segment's records, its header (with its time) left out
        out = b""
        for path in files:
            data, res = path.read_bytes(), read_file(path)
            assert res.version == 3 and res.corrupt == 0
            out += data[struct.unpack_from("<BBII", data)[2] + 10 : res.end]
        return out

    assert records(files_a) == records(files_b)
    assert [r & spool_mod._REF_MASK for r in refs_a][:5] == [1, 2, 3, 4, 5] == [r & 0xFFFFFFFF for r in refs_b][:5]
    # each segment's references form one run numbered 1, 2, ... (identities need not increase: a spare the
    # helper thread was still making when a rotation made its own segment carries the older identity)
    runs = [(ident, [r & spool_mod._REF_MASK for r in group]) for ident, group in groupby(refs_a, lambda r: r >> 32)]
    assert len(set(refs_a)) == n and len({ident for ident, _ in runs}) == len(runs) == len(files_a)
    assert all(numbers == list(range(1, len(numbers) + 1)) for _, numbers in runs)
    a.ack(refs_a[:-1])
    assert poll(lambda: len(_data_files(tmp_path / "a")) == 1, 10)
    assert [r[0]["n"] for p in _data_files(tmp_path / "a") for r in read_file(p).records] == [n - 1]
    a.close()
    b.close()
    assert a._tail is spool_mod._NO_TAIL


_WAL_FORK_ENGINE = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from otel_commerce._delivery import DeliveryEngine
    from otel_commerce._delivery._spool import Spool, SpoolKey
    from otel_commerce._model import Pending
    from otel_commerce._model._catalog import event_from_args
    from otel_commerce._model._pending import decode_pending, encode_pending
    from otel_commerce._sinks import JetStreamSink

    def order(who, i):
        args = {"order_id": f"{who}_{i}", "org_name": "o", "user_id": "u", "email": "", "total_cents": 1}
        event, items = event_from_args("order.completed", args)
        return Pending(event=event, items=items)

    spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)), mode="wal", fsync=sys.argv[2],
                  encode=encode_pending, decode=decode_pending)
    engine = DeliveryEngine([JetStreamSink("nats://127.0.0.1:1")], spool=spool, exit_hook=False)
    assert engine._lock is spool._lock  # one lock per event: the spool's is the engine's
    for i in range(3):
        engine.submit(order("parent", i))
    held, release = threading.Event(), threading.Event()
    def hold():  # a thread of the parent mid-submit at fork(): the lock is held
        with engine._lock:
            held.set()
            release.wait(30)
    t = threading.Thread(target=hold)
    t.start()
    held.wait(30)
    pid = os.fork()
    if pid == 0:  # the child: a new lock (shared again), its own files; never the parent's held one
        ok = engine._lock is spool._lock and engine.submit(order("child", 0))
        os._exit(0 if ok and spool._segments[0].path.name.split("-")[1] == str(os.getpid()) else 3)
    release.set()
    t.join()
    engine.submit(order("parent", 3))
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status))  # like a crash: nothing closed
    """
)


@pytest.mark.parametrize("fsync", ["none", "always"])
def test_wal_engine_forked_while_its_lock_is_held(tmp_path: Path, fsync: str) -> None:
    """A wal engine shares its spool's lock (``always``: not — its fsync stays outside the engine's lock);
    a fork while another thread holds it never deadlocks the child, which appends to files of its own,
    and every event of both processes is on disk."""
    proc = subprocess.run(
        [sys.executable, "-c", _WAL_FORK_ENGINE, str(tmp_path), fsync], capture_output=True, timeout=60
    )
    if fsync == "always":
        assert b"AssertionError" in proc.stderr  # the script's first assertion: no shared lock
        return
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    ids = sorted(r[0][6] for p in _data_files(tmp_path) for r in read_file(p).records)
    print(f"\n[spool] wal engine fork with its lock held: records {ids}")
    assert len(ids) == 5 and len({i.split("_")[0] for i in ids}) == 2


def test_wal_pages_are_populated_ahead_or_fault_on_append_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MADV_POPULATE_WRITE (Linux >= 5.14) populates the live segment ahead of the appends on the helper
    thread; a kernel answering EINVAL turns it off for the process and the appends work as before."""
    from otel_commerce._delivery import _spool as spool_mod

    probe = spool_mod._Prefault()
    assert probe.populate(mmap.PAGESIZE + 1, mmap.PAGESIZE) is False  # an unaligned address: EINVAL
    assert probe.enabled is False or not sys.platform.startswith("linux")
    key = SpoolKey("svc", ("jetstream:x",))
    spool = Spool(tmp_path / "on", key, mode="wal")
    spool.append_wal(b'{"n":0}')
    seg = spool._wal
    assert seg is not None
    populated = poll(lambda: seg.prefaulted >= seg.size + spool_mod._PREFAULT_WINDOW, 10)
    kernel_has_it = spool_mod._PREFAULT.enabled
    print(f"\n[spool] prefault: kernel {os.uname().release}, MADV_POPULATE_WRITE {kernel_has_it}, "
          f"populated ahead {seg.prefaulted} B")  # fmt: skip
    assert populated == kernel_has_it
    spool.close()
    monkeypatch.setattr(spool_mod._PREFAULT, "enabled", False)  # what EINVAL leaves
    off = Spool(tmp_path / "off", key, mode="wal", segment_bytes=64 * 1024)
    refs = [off.append_wal(b'{"n":%d}' % i) for i in range(5000)]  # several segments, each faulted by the appends
    off.ack(refs[:10])
    assert off._wal is not None and off._wal.prefaulted == 0 and off._wal.mark == spool_mod._NEVER
    got = [r[0]["n"] for p in _data_files(tmp_path / "off") for r in read_file(p).records]
    assert got == list(range(10, 5000))
    off.close()


def test_wal_grouped_sync_of_a_segment_populated_ahead_covers_its_records(tmp_path: Path) -> None:
    """``grouped`` syncs the live segment up to its records (``msync`` of that range when the pages ahead are
    populated, else ``fsync``): afterwards every appended record counts as synced and reads back."""
    from otel_commerce._delivery import _spool as spool_mod

    spool = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)), mode="wal", fsync="grouped", fsync_interval_seconds=3600)
    spool.append_wal(b'{"n":0}')
    seg = spool._wal
    assert seg is not None
    ranged = poll(lambda: seg.prefaulted > seg.size, 10) and spool_mod._PREFAULT.enabled
    for i in range(1, 500):
        spool.append_wal(b'{"n":%d}' % i)
    spool.sync()
    (path,) = _data_files(tmp_path)
    print(f"\n[spool] grouped sync of the live segment: {'msync of the records' if ranged else 'fsync'}, "
          f"{seg.synced} of {seg.size} B")  # fmt: skip
    assert seg.synced == seg.size and [r[0]["n"] for r in read_file(path).records] == list(range(500))
    spool.close()


_WAL_FORK_HELPER = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from otel_commerce._delivery._spool import Spool, SpoolKey
    spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)), mode="wal")
    spool.append_wal(b'{"who":"parent"}')
    parent_helper = spool._helper
    pid = os.fork()
    if pid == 0:
        ok = spool._helper is None  # not inherited (threads do not survive fork): made again on first use
        spool.append_wal(b'{"who":"child"}')
        ok = ok and spool._helper is not None and spool._helper is not parent_helper and spool._helper.is_alive()
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    spool.append_wal(b'{"who":"parent"}')
    assert parent_helper.is_alive() and spool._helper is parent_helper
    print("child", code, flush=True)
    # no close(): the helper thread is a daemon, the interpreter exits without waiting for it
    """
)


def test_wal_helper_thread_is_made_again_in_a_forked_child_and_never_keeps_the_process_alive(
    tmp_path: Path,
) -> None:
    """The forked child starts its own helper on first use (the parent's is not inherited); a process that
    never closes its spool exits normally (the helper is a daemon) and its records are on disk; whoever adopts
    its files removes the segment it had made ahead (``.next``, no record)."""
    proc = subprocess.run([sys.executable, "-c", _WAL_FORK_HELPER, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["child", "0"]
    who = sorted(r[0]["who"] for p in _data_files(tmp_path) for r in read_file(p).records)
    spares = [p.name for p in tmp_path.iterdir() if p.suffix == ".next"]
    adopter = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)))
    adopted = sorted(r[0]["who"] for p in adopter.adopt() for r in read_file(p).records)
    print(f"\n[spool] fork + exit without close: records {who}; {len(spares)} .next left, adopted {adopted}")
    assert who == ["child", "parent", "parent"] and adopted == who
    assert [p for p in tmp_path.iterdir() if p.suffix == ".next"] == []
    adopter.close()


_WAL_LOST_RENAME = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from otel_commerce._delivery._spool import Spool, SpoolKey
    spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)), mode="wal")
    for i in range(3):
        spool.append_wal(b'{"n":%d}' % i)
    seg = spool._wal
    # what a power loss can leave: the rename of the spare to .wal never reached the disk, so the segment
    # that holds the records comes back under its .next name
    os.rename(seg.path, seg.path.with_name(seg.path.name.rsplit(".", 2)[0] + ".000099.next"))
    os._exit(0)
    """
)


def test_a_dead_owners_spare_that_holds_records_is_adopted_never_deleted(tmp_path: Path) -> None:
    """A ``.next`` spare of a dead owner is removed when it holds no record (the usual case) but adopted like a
    segment when it does (its rename to ``.wal`` lost in a crash): deleting it would lose acknowledged events."""
    proc = subprocess.run([sys.executable, "-c", _WAL_LOST_RENAME, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    adopter = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)))
    adopted = sorted(r[0]["n"] for p in adopter.adopt() for r in read_file(p).records)
    print(f"\n[spool] a spare holding 3 records after a lost rename: adopted {adopted}")
    assert adopted == [0, 1, 2]
    assert [p for p in tmp_path.iterdir() if p.suffix == ".next"] == []
    adopter.close()


# --------------------------------------------------------------------------- wal + transaction()
def test_wal_appends_a_transactions_events_at_commit_and_never_a_rolled_back_ones(tmp_path: Path) -> None:
    """``wal`` with ``otel_commerce.transaction()``: events held by a block are not in the wal while it runs; a
    rolled-back block's never are (a replay must not resurrect a cancelled order); a committed block's are
    appended when it releases them. The broker is down: nothing is delivered, so the wal keeps every append."""
    from otel_fixtures import global_sdk

    import otel_commerce
    from otel_commerce._runtime import RUNTIME

    global_sdk().clear()
    sink = JetStreamSink(NatsServer().url)  # never started
    spool = Spool(tmp_path, SpoolKey("svc", (sink.spool_identity(),)), mode="wal")
    engine = DeliveryEngine([sink], spool=spool, exit_hook=False, **FAST)
    RUNTIME.install(Settings(), engine)

    def in_wal() -> list[str]:
        return [decode_pending(r[0]).event_id for p in _data_files(tmp_path) for r in read_file(p).records]

    def order(tag: str, i: int) -> str:
        return otel_commerce.record_event(
            "order.completed", id=f"{tag}_{i}", organization_id="org_1", data={"order_id": f"{tag}_{i}", "revenue": 1.0}
        )

    try:
        with pytest.raises(RuntimeError), otel_commerce.transaction():
            rolled_back = [order("rb", i) for i in range(3)]
            during_rollback = in_wal()
            raise RuntimeError("payment declined")
        after_rollback = in_wal()
        with otel_commerce.transaction():
            committed = [order("ok", i) for i in range(3)]
            during_commit = in_wal()
        after_commit = in_wal()
        direct = order("direct", 0)  # outside a block: appended before record_event returns
        after_direct = in_wal()
        print(
            f"\n[spool] wal + transaction: rolled back {len(rolled_back)} -> in wal {len(after_rollback)}; "
            f"committed {len(committed)} -> in wal during the block {len(during_commit)}, after {len(after_commit)}"
        )
        assert during_rollback == [] and after_rollback == []
        assert during_commit == [] and after_commit == committed
        assert after_direct == [*committed, direct]
        assert not set(rolled_back) & set(after_direct)
    finally:
        engine.shutdown(0.5)  # the broker is down: the rest stays in the wal (a bounded wait, then closed)
        RUNTIME.reset()


def test_has_backlog_sees_a_dead_owners_spare_that_holds_records(tmp_path: Path) -> None:
    """What adopt() takes, has_backlog() reports (configure() starts the replay for it): a dead owner's ``.next``
    that holds records (its rename to ``.wal`` lost) is a backlog; a live owner's spare never is."""
    proc = subprocess.run([sys.executable, "-c", _WAL_LOST_RENAME, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    key = SpoolKey("svc", ("jetstream:x",))
    live = Spool(tmp_path / "live", key, mode="wal")
    live.append_wal(b'{"n":0}')
    probe = Spool(tmp_path, key)
    found, live_found = probe.has_backlog(), Spool(tmp_path / "live", key).has_backlog()
    print(f"\n[spool] has_backlog: a dead owner's spare holding records {found}; a live owner's files {live_found}")
    assert found is True and live_found is False
    live.close()


_FORK_WHILE_OPENING = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from otel_commerce._delivery._spool import Spool, SpoolKey
    spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)), mode="wal")
    at, code, seen = int(sys.argv[2]), Spool._ensure_open.__code__, [0]
    paused, go_on = threading.Event(), threading.Event()

    def local(frame, event, arg):
        if event == "line":
            seen[0] += 1
            if seen[0] == at:  # the opening thread waits here while the main thread forks
                paused.set()
                go_on.wait()
        return local

    def open_it():
        sys.settrace(lambda f, e, a: local if f.f_code is code else None)
        try:
            spool.append_wal(b'{"i":0}')
        finally:
            sys.settrace(None)
            paused.set()

    thread = threading.Thread(target=open_it)
    thread.start()
    paused.wait()
    if thread.is_alive():
        if os.fork() == 0:  # the child lives on (blocked on its stdin) after the parent dies
            os.read(0, 1)
            os._exit(0)
    go_on.set()
    thread.join()
    print(seen[0], flush=True)
    os._exit(0)  # the parent dies (no close): its files are a dead owner's
    """
)


def test_a_fork_at_any_moment_of_a_spools_opening_leaves_the_parents_files_adoptable(tmp_path: Path) -> None:
    """A fork from another thread at every line of a spool's opening, then the parent dies while the child
    lives: the parent's segment is adopted (the child closed every inherited spool descriptor, the lockfile's
    included, even one opened but not yet recorded)."""
    key = SpoolKey("svc", ("jetstream:x",))
    stuck = []
    at, lines = 1, 1
    while at <= lines:
        d = tmp_path / str(at)
        d.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", _FORK_WHILE_OPENING, str(d), str(at)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)  # fmt: skip
        try:
            out = proc.stdout.readline() if proc.stdout else b""
            assert proc.wait(30) == 0 and out.strip(), out
            lines = int(out)
            adopter = Spool(d, key)
            adopted = [r[0] for p in adopter.adopt() for r in read_file(p).records]
            adopter.close()
            if adopted != [{"i": 0}]:
                stuck.append(at)
        finally:
            if proc.stdin:
                proc.stdin.close()  # the child (same stdin) ends
        at += 1
    print(f"\n[spool] a fork at each of {lines} lines of the opening, the parent dead: not adoptable at {stuck}")
    assert lines >= 5 and stuck == []
