"""`otel-commerce spool stats|replay|drop` on real spool files and a real nats-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    report = json.loads(stats.output)  # one JSON object: totals and one entry per key
    assert report["events"] == 47 and report["directory"] == str(tmp_path)
    rows = sorted(k["events"] for k in report["keys"])
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
    # the 7 events of the other key are still on disk: exit 1, and said (with what to do)
    assert replay.exit_code == 1, replay.output
    assert "7 event(s) left on disk for another sink key" in replay.output and "spool drop" in replay.output
    assert len(ours) == 40 and len(set(ours)) == 40
    assert refused.exit_code == 1 and left_after_no == 1 and "nothing dropped" in refused.output
    assert dropped.exit_code == 0 and "7 event(s)" in dropped.output
    assert not list(tmp_path.glob("*.spill")) and os.path.isdir(tmp_path)


# --------------------------------------------------------------------------- as a new user runs them: subprocesses
def _cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``otel-commerce ...`` in its own process (stdout a pipe, as in a script)."""
    full = {**os.environ, **(env or {})}
    full.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "otel_commerce.cli", *args], env=full, capture_output=True, text=True, input=stdin,
        timeout=120,
    )  # fmt: skip


_NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "Exception ignored")


def test_replay_with_nothing_to_replay_shuts_down_cleanly(tmp_path: Path, nats_server: NatsServer) -> None:
    """`spool replay` (a real process, nothing to replay) exits 0 with no traceback from nats-py or asyncio at
    exit: the engine cancels and awaits its tasks and closes the connection before closing its loop. Before
    the fix about half the runs printed "Task was destroyed but it is pending!" / "Event loop is closed"."""
    env = {"OTEL_COMMERCE_NATS_URL": nats_server.url, "OTEL_COMMERCE_COLLECTOR_ENDPOINT": ""}
    runs = [_cli("spool", "replay", "--dir", str(tmp_path), "--timeout", "10", env=env) for _ in range(8)]
    noisy = [r.stderr for r in runs if any(n in r.stderr for n in _NOISE)]
    print(f"\n[cli spool] replay with nothing to replay: {len(noisy)} of {len(runs)} runs with a traceback")
    assert [r.returncode for r in runs] == [0] * len(runs), runs[0].stderr
    assert all("replayed 0 event(s)" in r.stdout for r in runs)
    assert noisy == [], noisy[0][-2000:]


def test_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    """`--dir` naming no directory: a clear error and exit 2 (as other input errors), never "empty"."""
    missing = tmp_path / "nope" / "x"
    a_file = tmp_path / "f"
    a_file.write_text("")
    results = {
        "stats": _cli("spool", "stats", "--dir", str(missing)),
        "stats --json": _cli("spool", "stats", "--dir", str(missing), "--json"),
        "drop": _cli("spool", "drop", "--before", "0s", "-y", "--dir", str(missing)),
        "replay": _cli("spool", "replay", "--dir", str(missing), env={"OTEL_COMMERCE_NATS_URL": "nats://127.0.0.1:1"}),
        "stats on a file": _cli("spool", "stats", "--dir", str(a_file)),
    }
    print("\n[cli spool] --dir missing: " + ", ".join(f"{k} exit {r.returncode}" for k, r in results.items()))
    for name, r in results.items():
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "error:" in r.stderr and str(missing if "file" not in name else a_file) in r.stderr, (name, r.stderr)
        assert "empty" not in r.stdout and "Traceback" not in r.stderr
    assert not missing.exists()  # never created by looking


def test_stats_piped_prints_whole_lines_and_one_json_object(tmp_path: Path) -> None:
    """Piped (not a terminal) `spool stats` prints one compact line per key with the whole key digest (no
    80-column table cutting it); `--json` prints one JSON object."""
    _dead_spool(tmp_path, "nats://127.0.0.1:1", 3, "piped_a")
    _dead_spool(tmp_path, "nats://127.0.0.1:2", 2, "piped_b")
    digests = sorted({p.name.split("-", 1)[0] for p in tmp_path.iterdir()})
    text = _cli("spool", "stats", "--dir", str(tmp_path))
    js = _cli("spool", "stats", "--dir", str(tmp_path), "--json")
    lines = text.stdout.splitlines()
    print(f"\n[cli spool] stats piped: {len(lines)} line(s), longest {max(map(len, lines))}; --json: "
          f"{len(js.stdout.splitlines())} line(s)")  # fmt: skip
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    assert "…" not in text.stdout and "━" not in text.stdout and "│" not in text.stdout
    for digest in digests:
        assert any(line.startswith(f"key={digest}  ") for line in lines), text.stdout
    assert "2 file(s), 5 event(s)" in lines[0]
    assert len(js.stdout.splitlines()) == 1
    report = json.loads(js.stdout)
    assert sorted(k["key"] for k in report["keys"]) == digests and report["events"] == 5 and report["files"] == 2


_WAL_KILLED = """
import os, signal, sys
import otel_commerce
otel_commerce.configure()
otel_commerce.record_event("product.viewed", id="p1", organization_id="org_1", user_id="u",
                           data={"product_id": "p1", "price": 1.5})
spool = otel_commerce._runtime.RUNTIME.engine.spool
import threading
from polling import poll
assert poll(lambda: spool._spare is not None, 30), "no spare segment made ahead"
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_drop_removes_spares_and_lockfiles_of_dead_owners_only(tmp_path: Path) -> None:
    """A `wal` process killed with kill -9 leaves its segment, its spare (`.next`) and its lockfile; `stats`
    counts the disk they take (spares included); `drop --before 0s -y` removes all three, and never the
    lockfile (or files) of a live process."""
    env = {
        "OTEL_COMMERCE_NATS_URL": "nats://127.0.0.1:1", "OTEL_COMMERCE_SPOOL": "wal",
        "OTEL_COMMERCE_SPOOL_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path]),
    }  # fmt: skip
    killed = subprocess.run(
        [sys.executable, "-c", _WAL_KILLED], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -9 and "ready" in killed.stdout, killed.stderr[-2000:]
    after_kill = sorted(p.suffix for p in tmp_path.iterdir())
    live = Spool(tmp_path, SpoolKey("live", ("jetstream:nats://127.0.0.1:3/COMMERCE",)))
    live.spill([encode_pending(_pending("live", 0))], None)  # a live owner: its lock is held
    try:
        stats = json.loads(_cli("spool", "stats", "--dir", str(tmp_path), "--json").stdout)
        dropped = _cli("spool", "drop", "--before", "0s", "-y", "--dir", str(tmp_path))
        left = sorted(p.name for p in tmp_path.iterdir())
        print(f"\n[cli spool] after kill -9: {after_kill}, on disk {stats['disk_bytes']} bytes; drop: "
              f"{dropped.stdout.strip()!r}; left {left}")  # fmt: skip
        assert after_kill == [".lock", ".next", ".wal"]
        assert stats["disk_bytes"] >= 2 * 16 * 1024 * 1024  # the preallocated segment and its spare
        assert dropped.returncode == 0, dropped.stderr
        assert "dropped 1 file(s), 1 event(s)" in dropped.stdout
        assert "removed 1 spare segment(s) (16777216 bytes) and 1 lockfile(s)" in dropped.stdout
        assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock", ".spill"]  # the live spool's, untouched
        assert all(p.name.startswith(live.key.digest) for p in tmp_path.iterdir())
    finally:
        live.close()


def test_drop_never_deletes_a_dead_owners_spare_that_holds_records(tmp_path: Path) -> None:
    """A dead owner's ``.next`` that holds records (its rename to ``.wal`` lost in a crash) is data, which adoption
    replays: `drop --before` with a time before it removes neither it nor the lockfile that makes it adoptable."""
    from test_spool import _WAL_LOST_RENAME

    from otel_commerce._delivery._spool import read_file

    proc = subprocess.run([sys.executable, "-c", _WAL_LOST_RENAME, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    dropped = _cli("spool", "drop", "--before", "2000-01-01", "-y", "--dir", str(tmp_path))
    kept = sorted(p.name.rsplit(".", 1)[1] for p in tmp_path.iterdir() if p.suffix != ".next" or read_file(p).records)
    adopter = Spool(tmp_path, SpoolKey("svc", ("jetstream:x",)))
    adopted = sorted(r[0]["n"] for p in adopter.adopt() for r in read_file(p).records)
    adopter.close()
    print(f"\n[cli spool] drop before 2000 with a spare holding records: {dropped.stdout.strip()!r}; kept {kept}; "
          f"adopted after {adopted}")  # fmt: skip
    assert dropped.returncode == 0, dropped.stderr
    assert kept == ["lock", "next"] and adopted == [0, 1, 2]


_KILLED_WHILE_LOCKING = """
import os, signal, sys
from pathlib import Path
from otel_commerce._delivery._spool import Spool, SpoolKey
spool = Spool(Path(sys.argv[1]), SpoolKey("svc", ("jetstream:x",)))
os.rename = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # killed between the .locking file and its rename
spool.spill([b'{"n":0}'], None)
"""


def test_drop_removes_the_locking_file_of_a_process_killed_while_opening_its_spool(tmp_path: Path) -> None:
    """kill -9 between creating ``<stem>.locking`` and renaming it to ``.lock`` leaves the ``.locking`` file:
    `drop` removes it like a dead owner's lockfile, and never a live (starting) process's."""
    proc = subprocess.run([sys.executable, "-c", _KILLED_WHILE_LOCKING, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    left = sorted(p.suffix for p in tmp_path.iterdir())
    live = tmp_path / f"{'0' * 16}-{os.getpid()}-1-live.locking"  # a live process holding it (before its rename)
    fd = os.open(live, os.O_RDWR | os.O_CREAT, 0o600)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        dropped = _cli("spool", "drop", "--before", "0s", "-y", "--dir", str(tmp_path))
        after = sorted(p.name for p in tmp_path.iterdir())
    finally:
        os.close(fd)
    print(f"\n[cli spool] killed while locking: {left}; drop: {dropped.stdout.strip()!r}; left {after}")
    assert left == [".locking"]
    assert dropped.returncode == 0, dropped.stderr
    assert after == [live.name]
