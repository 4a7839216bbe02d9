"""Round 5 adversarial checks: ``record_event`` beside other processors (the record built without constructors,
its data an orjson copy, the processors called one level below ``Logger.emit``) against the SDK's own path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_ENV = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_COMMERCE_NATS_URL": "", "OTEL_SDK_DISABLED": "false"}


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=_ENV
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


_FORK_APP = """
    import json, os
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce

    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    _logs.set_logger_provider(lp)
    otel_commerce.configure()
    otel_commerce.record_event("loyalty.points_earned", organization_id="o", data={"a": 1})  # before the fork
    parent = dict(mem.get_finished_logs()[0].resource.attributes)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        mem.clear()
        otel_commerce.record_event("loyalty.points_earned", organization_id="o", data={"a": 2})
        _logs.get_logger("app").emit(body="a plain log record of the child")
        got = [dict(l.resource.attributes) for l in mem.get_finished_logs()]
        os.write(w, json.dumps(got).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        child = json.loads(f.read())
    print(json.dumps({"parent": parent, "child": child}))
"""


def test_a_forked_child_records_with_the_childs_resource() -> None:
    """After ``fork()`` the SDK gives the provider's loggers a new resource (a new ``service.instance.id``, the
    process detectors run again). ``record_event`` beside another processor must put the logger's resource of
    *now* on its records, as ``Logger.emit`` does — not the parent's, read once before the fork (a pre-fork
    server recording at start-up would label every worker's events with the parent's instance)."""
    got = json.loads(_run(_FORK_APP))
    ours, plain = got["child"]
    assert ours == plain
    assert ours["service.instance.id"] != got["parent"]["service.instance.id"]
