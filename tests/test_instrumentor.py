"""The ``commerce`` instrumentor in a real process: no dependencies, adds our processor to the provider the
distro set (never twice), ``uninstrument`` makes it stop acting, direct delivery when there is no provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

APP = textwrap.dedent(
    """
    import json, os
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    import otel_commerce
    from otel_commerce import record_event
    from otel_commerce._otel._sdk import log_processors
    from otel_commerce._runtime._instrumentor import CommerceInstrumentor
    from otel_commerce.testing import capture_events

    out = {}
    if os.environ.get("WITH_PROVIDER"):
        lp = LoggerProvider(shutdown_on_exit=False)
        _logs.set_logger_provider(lp)
    inst = CommerceInstrumentor()
    out["dependencies"] = list(inst.instrumentation_dependencies())
    with capture_events() as events:
        inst.instrument()
        record_event("order.refunded", organization_id="acme", data={"order_id": "i1"})
        out["after_instrument"] = otel_commerce.stats()["fallback"]
        inst.uninstrument()
        record_event("order.refunded", organization_id="acme", data={"order_id": "i2"})
        out["after_uninstrument"] = otel_commerce.stats()["fallback"]
        inst.instrument()
        record_event("order.refunded", organization_id="acme", data={"order_id": "i3"})
        out["after_reinstrument"] = otel_commerce.stats()["fallback"]
    if os.environ.get("WITH_PROVIDER"):
        out["processors"] = [type(p).__name__ for p in log_processors(lp)]
    out["delivered"] = [e.data["order_id"] for e in events]
    print(json.dumps(out))
    """
)


def _run(tmp_path: Path, **env: str) -> dict[str, Any]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    full_env.update(env)
    proc = subprocess.run([sys.executable, str(app)], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_instrument_uninstrument_reinstrument(tmp_path: Path) -> None:
    out = _run(tmp_path, WITH_PROVIDER="1")
    assert out["dependencies"] == []
    assert out["processors"] == ["CommerceLogRecordProcessor"]  # re-instrumenting re-enables it, never a second
    assert (out["after_instrument"], out["after_uninstrument"], out["after_reinstrument"]) == (0, 1, 1)
    assert out["delivered"] == ["i1", "i2", "i3"]  # each once, also while uninstrumented (by the fallback)


def test_without_a_provider_events_go_direct(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert out["delivered"] == ["i1", "i2", "i3"]
    assert (out["after_instrument"], out["after_uninstrument"], out["after_reinstrument"]) == (0, 0, 0)
