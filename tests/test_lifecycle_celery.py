"""A real Celery prefork worker (billiard children) on a filesystem:// broker: every task's event delivered."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_collector import FakeCollector
from lifecycle_support import PYTHON, child_env, write_script
from polling import poll

pytest.importorskip("celery")


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


_TASKS = """
import os
from pathlib import Path

from celery import Celery

import otel_commerce
from lifecycle_record import record

box = Path(os.environ["APP_BOX"])
for d in ("queue", "processed"):
    (box / d).mkdir(parents=True, exist_ok=True)
app = Celery("tasks", broker="filesystem://")
app.conf.broker_transport_options = {
    "data_folder_in": str(box / "queue"),
    "data_folder_out": str(box / "queue"),
    "data_folder_processed": str(box / "processed"),
}
app.conf.task_ignore_result = True
otel_commerce.configure()  # Celery imported first: worker processes deliver at worker_process_shutdown


@app.task
def order(i):
    event_id = record(i)
    (box / "done" / event_id).parent.mkdir(exist_ok=True)
    (box / "done" / event_id).touch()
"""


def test_celery_prefork_worker_delivers_every_task_event(tmp_path: Path, collector: FakeCollector, uid: str) -> None:
    write_script(tmp_path, "tasks.py", _TASKS)
    box = tmp_path / "box"
    collector.delay_seconds = 0.3  # delivery slower than the tasks: the children must flush at their exit
    env = child_env(
        TEST_PREFIX=f"celery_{uid}",
        APP_BOX=str(box),
        OTEL_COMMERCE_COLLECTOR_ENDPOINT=collector.url,
        OTEL_COMMERCE_LINGER_MS="30000",  # only an exit-time flush delivers in time
    )
    send = "from tasks import order\nfor i in range(10):\n    order.delay(i)\n"
    subprocess.run([PYTHON, "-c", send], cwd=tmp_path, env=env, check=True, timeout=60)
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "2", "--without-heartbeat",
             "--without-gossip", "--without-mingle", "-l", "info"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        done = box / "done"
        assert poll(lambda: done.is_dir() and len(list(done.iterdir())) == 10, 60), log.read_text()[-3000:]
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the pool's processes exit
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    ids = {p.name for p in done.iterdir()}
    delivered = set(collector.event_ids())
    assert ids <= delivered, (f"{len(ids - delivered)} of 10 lost", log.read_text()[-3000:])
