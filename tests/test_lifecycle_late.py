"""Events recorded after (or while) the exit work ran: delivered, or counted and logged — never silently lost."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from fake_collector import FakeCollector
from lifecycle_support import PYTHON, child_env, write_script

_LATE_ATEXIT = """
import atexit, sys

def final_event():  # e.g. a job runner's shutdown hook, registered before otel_commerce is imported
    from lifecycle_record import record
    print("late", record(1), flush=True)

atexit.register(final_event)  # atexit is LIFO: runs after otel-commerce's exit work

import otel_commerce
from lifecycle_record import record

otel_commerce.configure(collector_endpoint=sys.argv[1])
print("early", record(0), flush=True)
"""


@pytest.mark.parametrize("spool", ["off", "spill"])
def test_an_event_recorded_by_an_atexit_hook_running_after_ours_is_delivered(
    tmp_path: Path, spool: str, uid: str
) -> None:
    script = write_script(tmp_path, "late_app.py", _LATE_ATEXIT)
    with FakeCollector() as fc:
        env = child_env(TEST_PREFIX=uid, OTEL_COMMERCE_SPOOL=spool, OTEL_COMMERCE_SPOOL_DIR=str(tmp_path / "spool"))
        p = subprocess.run(
            [PYTHON, str(script), fc.url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        returned = dict(line.split() for line in p.stdout.splitlines())
        assert set(returned) == {"early", "late"}
        assert fc.wait_for(2, 10), p.stderr  # both arrived: the late one through a last bounded attempt
        assert sorted(fc.event_ids()) == sorted(returned.values())


_DAEMON = """
import sys, threading, time
import otel_commerce
from lifecycle_record import record

otel_commerce.configure(collector_endpoint=sys.argv[1])
out = open(sys.argv[2], "w", buffering=1)

def worker():
    i = 0
    while True:
        out.write(record(i) + "\\n")
        i += 1
        time.sleep(0.0005)

threading.Thread(target=worker, daemon=True).start()
time.sleep(0.3)  # the main thread returns while the daemon thread keeps recording
"""


def test_a_daemon_thread_recording_during_exit_loses_nothing_uncounted(tmp_path: Path, uid: str) -> None:
    """Every id ``record_event`` returned is delivered, or counted in a WARNING of the child."""
    script = write_script(tmp_path, "daemon_app.py", _DAEMON)
    for run in range(3):
        ids = tmp_path / f"ids_{run}.txt"
        with FakeCollector() as fc:
            env = child_env(TEST_PREFIX=f"{uid}_{run}", OTEL_COMMERCE_SPOOL="off")
            p = subprocess.run(
                [PYTHON, str(script), fc.url, str(ids)], cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=60,
            )
            assert p.returncode == 0, p.stderr
            returned = [line for line in ids.read_text().splitlines() if len(line) == 36]
            delivered = set(fc.event_ids())
        missing = [r for r in returned if r not in delivered]
        counted = sum(
            int(n)
            for line in p.stderr.splitlines()
            if "shut down with undelivered events" in line
            for n in re.findall(r": (\d+)", line.split("undelivered events", 1)[1].split(")")[0])
        )
        assert len(returned) > 10
        assert len(missing) <= counted, (run, len(missing), counted, p.stderr[-2000:])


def test_shutdown_without_a_timeout_is_bounded_by_the_exit_timeout(uid: str) -> None:
    """``otel_commerce.shutdown()`` with a sink that accepts connections and never answers returns within the
    exit timeout (+ the engine's close margin), counting the event undelivered; it used to wait > 280 s."""
    import threading
    import time

    from lifecycle_support import silent_port
    from otel_fixtures import global_sdk

    import otel_commerce
    from otel_commerce._runtime import RUNTIME
    from otel_commerce._runtime._exit import set_exit_timeout

    global_sdk()  # the suite's global OTel providers (configure() would install its own)
    with silent_port() as port:
        otel_commerce.configure(collector_endpoint=f"http://127.0.0.1:{port}", spool="off", exit_timeout_seconds=1.0)
        try:
            otel_commerce.record_event("loyalty.points_earned", organization_id="acme", id=f"{uid}-1")
            result: list[bool] = []
            t0 = time.monotonic()
            worker = threading.Thread(target=lambda: result.append(otel_commerce.shutdown()), daemon=True)
            worker.start()
            worker.join(10.0)
            elapsed = time.monotonic() - t0
            assert result == [False], f"shutdown() still waiting after {elapsed:.1f} s"
            assert elapsed < 1.0 + 2.0
        finally:
            RUNTIME.reset()
            set_exit_timeout(None)  # configure() set the process's exit budget
