"""The shipped collector configs: valid YAML, consistent pipelines, settings our collector accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_commerce.collector._settings import load_settings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_otelcol_pipelines_reference_defined_components() -> None:
    """Every receiver, processor, exporter and connector used by a pipeline is defined, and every definition is used."""
    doc = load("otelcol-contrib.yaml")
    defined = {kind: set(doc.get(kind) or {}) for kind in ("receivers", "processors", "exporters", "connectors")}
    used: dict[str, set[str]] = {kind: set() for kind in defined}
    pipelines = doc["service"]["pipelines"]
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] in ("traces", "metrics", "logs"), name
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"{name} needs receivers and exporters"
        for kind, component_kinds in (
            ("receivers", ("receivers", "connectors")),
            ("processors", ("processors",)),
            ("exporters", ("exporters", "connectors")),
        ):
            for component in pipeline.get(kind) or ():
                owner = next((k for k in component_kinds if component in defined[k]), None)
                assert owner is not None, f"pipeline {name}: {kind} {component!r} is not defined"
                used[owner].add(component)
    assert used == defined, "every defined component is used by a pipeline"


def test_otelcol_routes_commerce_logs_to_otel_commerce() -> None:
    """The routing connector sends commerce.* log records to a pipeline exporting to the otel-commerce collector."""
    doc = load("otelcol-contrib.yaml")
    routing = doc["connectors"]["routing/commerce"]
    [route] = routing["table"]
    assert "event_name" in route["condition"] and "commerce" in route["condition"]
    pipelines = doc["service"]["pipelines"]
    for target in route["pipelines"]:
        assert pipelines[target]["exporters"] == ["otlphttp/otel-commerce"]
    for target in routing["default_pipelines"]:
        assert "otlphttp/otel-commerce" not in pipelines[target]["exporters"]
    # the connector is fed by a logs pipeline and feeds logs pipelines only
    assert any("routing/commerce" in p["exporters"] for n, p in pipelines.items() if n.startswith("logs"))
    assert doc["exporters"]["otlphttp/otel-commerce"]["endpoint"].startswith("${env:")


def test_otel_commerce_collector_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The otel-commerce collector's config file is accepted by our loader and its env references expand."""
    monkeypatch.setenv("OTEL_COMMERCE_NATS_URL", "nats://nats:4222")
    monkeypatch.delenv("OTEL_COMMERCE_COLLECTOR_TOKEN", raising=False)
    monkeypatch.delenv("OTEL_COMMERCE_COLLECTOR_DB", raising=False)
    settings = load_settings(CONFIG_DIR / "otel-commerce-collector.yaml")
    assert (settings.host, settings.port) == ("0.0.0.0", 8091)
    assert settings.nats_url == "nats://nats:4222" and settings.auth_token is None
    assert settings.db.endswith("events.db") and settings.max_body_bytes == 5 * 1024 * 1024
    assert load_settings(CONFIG_DIR / "otel-commerce-collector.yaml", port=9000).port == 9000


def test_collector_config_readme_agrees_with_the_main_readme() -> None:
    """No `OTEL_LOGS_EXPORTER=otlp,commerce` requirement, no "envelope as its body" (the body is unset by default)."""
    text = (Path(__file__).resolve().parent.parent / "collector-config" / "README.md").read_text()
    flat = " ".join(text.split())
    assert "OTEL_LOGS_EXPORTER=otlp,commerce" not in flat
    assert "envelope as its body" not in flat and "the body is unset unless" in flat
