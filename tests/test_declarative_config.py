"""Declarative configuration (OTEL_CONFIG_FILE, opentelemetry-configuration): the example file loads under
opentelemetry-instrument with the official distro, builds CommerceLogExporter from its keyword arguments,
the instrumentor still adds our processor, and a 5,000-event burst reaches a real nats-server with 0 lost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
from nats.js.client import JetStreamContext

from otel_commerce._cli._natsserver import NatsServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "otel-config.yaml"
INSTRUMENT = str(Path(sysconfig.get_path("scripts")) / "opentelemetry-instrument")


def _configuration_matches_sdk() -> bool:
    """opentelemetry-configuration pins one SDK release: skip where another one is installed (.ci/run's min pass)."""
    try:
        pins = [r for r in requires("opentelemetry-configuration") or () if r.startswith("opentelemetry-sdk")]
    except PackageNotFoundError:
        return False
    sdk = version("opentelemetry-sdk")
    return all(re.sub(r"\s", "", p).endswith(f"=={sdk}") or ">=" in p for p in pins)


pytestmark = pytest.mark.skipif(
    not _configuration_matches_sdk(), reason="opentelemetry-configuration does not match the installed SDK"
)

APP = textwrap.dedent(
    """
    import json
    from opentelemetry import _logs, trace
    import otel_commerce
    from otel_commerce import flush, record_event
    from otel_commerce._otel._sdk import log_processors

    ids = [record_event("order.refunded", organization_id="acme", data={"order_id": f"burst{i}"})
           for i in range(5000)]
    assert flush(60)
    s = otel_commerce.stats()
    print(json.dumps({
        "ids": len(set(ids)),
        "processors": [type(p).__name__ for p in log_processors(_logs.get_logger_provider())],
        "exporter": type(log_processors(_logs.get_logger_provider())[0]._exporter).__name__,
        "settings": {"linger_seconds": otel_commerce._runtime.RUNTIME.settings.linger_seconds,
                     "nats_url": otel_commerce._runtime.RUNTIME.settings.nats_url},
        "tracer": type(trace.get_tracer_provider()).__name__,
        "fallback": s["fallback"], "dropped": s.get("dropped", 0), "exported": s.get("exported", 0),
    }))
    """
)


async def test_example_config_file_burst_loses_nothing(
    tmp_path: Path, fresh_nats_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """A server of its own: the 5,000 messages counted below are this test's only."""
    nats_server, js = fresh_nats_server, fresh_js
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    env.update({"OTEL_CONFIG_FILE": str(EXAMPLE), "OTEL_COMMERCE_NATS_URL": nats_server.url})
    proc = subprocess.run([INSTRUMENT, sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # built from the file: our exporter behind `simple`, its keyword arguments in force; our processor added
    assert out["processors"] == ["SimpleLogRecordProcessor", "CommerceLogRecordProcessor"]
    assert out["exporter"] == "CommerceLogExporter"
    # the file's tracer_provider section: an SDK provider, so events in request spans carry trace ids
    assert out["tracer"] == "TracerProvider" and "no trace ids" not in proc.stderr, proc.stderr[-2000:]
    assert out["settings"] == {"linger_seconds": 0.05, "nats_url": nats_server.url}
    assert out["ids"] == out["exported"] == 5000 and out["fallback"] == 0 and out["dropped"] == 0
    info = await js.stream_info("COMMERCE")
    assert info.state.messages == 5000  # refunds repeat per order: each event once, none lost
