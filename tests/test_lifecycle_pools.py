"""Worker pools: every child's events delivered without flush(), for each start method and pool shape.

The parent calls ``configure()`` under the main guard only (the environment names no sink), so spawned
and forkserver children rely on the settings ``configure()`` exported to the environment.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_collector import FakeCollector
from lifecycle_support import PYTHON, child_env, stream_ids, write_script

from otel_commerce._cli._natsserver import NatsServer


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


_POOL_SCRIPT = """
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import otel_commerce
from lifecycle_record import record

N = 8


def task(i):
    return record(i)


def process_main(ids_file, lo, hi):
    with open(ids_file, "a") as f:
        for i in range(lo, hi):
            f.write(record(i) + "\\n")


if __name__ == "__main__":
    method, shape, ids_file = sys.argv[1:4]
    otel_commerce.configure(collector_endpoint=os.environ["APP_COLLECTOR"], nats_url=os.environ.get("APP_NATS", ""))
    ctx = multiprocessing.get_context(method)
    if shape == "process":
        procs = [ctx.Process(target=process_main, args=(ids_file, k * N, (k + 1) * N)) for k in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        codes = [p.exitcode for p in procs]
        ids = open(ids_file).read().split()
    elif shape == "pool_close":
        pool = ctx.Pool(2)
        ids = pool.map(task, range(2 * N))
        pool.close()
        pool.join()
        codes = []
    elif shape == "with_pool":  # __exit__ terminates the workers (SIGTERM)
        with ctx.Pool(2) as pool:
            ids = pool.map(task, range(2 * N))
        codes = []
    else:
        with ProcessPoolExecutor(2, mp_context=ctx) as ex:
            ids = list(ex.map(task, range(2 * N)))
        codes = []
    print(json.dumps({"ids": ids, "codes": codes}))
"""

_SHAPES = ("process", "pool_close", "with_pool", "executor")
_METHODS = ("fork", "spawn", "forkserver")
#: The default run: each start method and each pool shape once (the full matrix is marked slow).
_DEFAULT = {("fork", "process"), ("fork", "with_pool"), ("spawn", "executor"), ("forkserver", "pool_close")}


def _cases() -> list[object]:
    return [
        pytest.param(m, s, id=f"{m}-{s}", marks=() if (m, s) in _DEFAULT else (pytest.mark.slow,))
        for m in _METHODS
        for s in _SHAPES
    ]


@pytest.mark.parametrize(("method", "shape"), _cases())
def test_pool_children_deliver_without_flush(
    tmp_path: Path, collector: FakeCollector, nats_server: NatsServer, method: str, shape: str, uid: str
) -> None:
    script = write_script(tmp_path, "pool_app.py", _POOL_SCRIPT)
    env = child_env(
        TEST_PREFIX=f"pool_{method}_{shape}_{uid}",
        APP_COLLECTOR=collector.url,
        APP_NATS=nats_server.url if (method, shape) == ("fork", "with_pool") else "",
    )
    proc = subprocess.run(
        [PYTHON, str(script), method, shape, str(tmp_path / "ids.txt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    ids = set(result["ids"])
    assert len(ids) == 16 and all(code == 0 for code in result["codes"]), result
    # every child left before the parent printed: nothing may still be on its way
    delivered = set(collector.event_ids())
    assert ids <= delivered, (f"{len(ids - delivered)} of 16 lost", proc.stderr[-3000:])
    if env["APP_NATS"]:
        in_stream = stream_ids(nats_server.url, env["TEST_PREFIX"])
        assert all(in_stream[i] == 1 for i in ids)


def test_configure_exports_settings_but_not_secrets_to_children(tmp_path: Path) -> None:
    """configure() writes the effective settings to os.environ for spawned children; credentials only on request."""
    script = """
import json, os
import otel_commerce
otel_commerce.configure(collector_endpoint="http://127.0.0.1:9", nats_url="nats://127.0.0.1:9",
                        nats_token="s3cret", collector_headers={"Authorization": "Bearer x"}, linger_seconds=0.2)
first = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
otel_commerce.configure(export_env="all", collector_endpoint="http://127.0.0.1:9", nats_token="s3cret")
second = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
print(json.dumps([first, second]))
"""
    proc = subprocess.run(
        [PYTHON, "-c", script], env=child_env(OTEL_COMMERCE_SIGNALS="false"), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    first, second = json.loads(proc.stdout)
    assert first["OTEL_COMMERCE_COLLECTOR_ENDPOINT"] == "http://127.0.0.1:9"
    assert first["OTEL_COMMERCE_NATS_URL"] == "nats://127.0.0.1:9"
    assert first["OTEL_COMMERCE_LINGER_MS"] == "200"
    assert "OTEL_COMMERCE_NATS_TOKEN" not in first and "OTEL_COMMERCE_COLLECTOR_HEADERS" not in first
    assert second["OTEL_COMMERCE_NATS_TOKEN"] == "s3cret"



def test_export_env_leaves_out_urls_carrying_secrets(tmp_path: Path) -> None:
    """A collector endpoint with `?token=` or user-info, a NATS URL with a user part: written only with "all"."""
    script = """
import json, os
import otel_commerce
otel_commerce.configure(collector_endpoint="http://127.0.0.1:9/base?token=qq1",
                        nats_url="nats://u:pw1@127.0.0.1:9", handle_signals=False)
first = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
otel_commerce.configure(collector_endpoint="http://me:pw2@127.0.0.1:9", handle_signals=False)
second = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
otel_commerce.configure(export_env="all", collector_endpoint="http://127.0.0.1:9?token=qq1", handle_signals=False)
third = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
print(json.dumps([first, second, third]))
"""
    env = {k: v for k, v in child_env(OTEL_COMMERCE_SIGNALS="false").items() if "_NATS_URL" not in k and "_ENDPOINT" not in k}
    proc = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, second, third = json.loads(proc.stdout)
    for exported in (first, second):
        assert not any(secret in v for v in exported.values() for secret in ("qq1", "pw1", "pw2")), exported
    assert third["OTEL_COMMERCE_COLLECTOR_ENDPOINT"] == "http://127.0.0.1:9?token=qq1"
