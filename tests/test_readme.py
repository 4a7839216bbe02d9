"""The README stays true: its catalog table matches the catalog, and CI runs the README's commands."""

from __future__ import annotations

import re
from pathlib import Path

from otel_commerce import CATALOG
from otel_commerce._model._catalog import required_fields

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_catalog_table_matches_the_catalog() -> None:
    """Every one of the 20 catalog rows is in the README table: subject, id rule, required fields, GA4, Meta."""
    rows = {}
    for line in README.splitlines():
        m = re.match(r"^\| `([a-z_.]+)`(?: ¹)? \| `(commerce\.[a-z_.]+)` \| `([^`]+)` \| ([^|]+) \|", line)
        if m:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4).strip(), cells[6], cells[7], cells[8].strip("`"), cells[5])
    assert sorted(rows) == sorted(CATALOG) and len(rows) == 20
    for type_, spec in CATALOG.items():
        subject, id_rule, policy, ga4, meta, collector, required = rows[type_]
        assert required == (", ".join(required_fields(type_)) or "\u2013")
        assert subject == spec.subject and id_rule == spec.id and collector == spec.collector_event
        assert policy.startswith("once") == spec.once
        assert ga4 == (spec.ga4.event if spec.ga4 else "\u2013")
        assert meta == (spec.meta.event if spec.meta else "\u2013")


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run installs and tests with exactly the README's two commands."""
    ci = (ROOT / ".ci" / "run").read_text()
    block = README.split("## Set-up: two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    install, test = (line.split("#")[0].strip() for line in block.strip().splitlines())
    assert install == 'pip install -e ".[dev]"' and test.startswith("python -m pytest")
    assert 'pip install -q --disable-pip-version-check -e ".[dev]"' in ci
    assert "python -m pytest" in ci


def test_install_lines_work_from_a_checkout() -> None:
    """otel-commerce is not on PyPI: no README line installs `otel-commerce[...]` from an index (only `@ file://`
    or `-e ".[...]"` forms)."""
    text = README + (ROOT / "examples" / "otel-config.yaml").read_text()
    bare = [line for line in text.splitlines() if re.search(r"pip install[^\n]*otel-commerce(\[|\s|$|`)", line)]
    assert [line for line in bare if "@ file://" not in line] == []
    assert 'pip install -e ".[instrument,otlp]"' in README and 'pip install -e ".[demo]"' in README


def _section(title: str) -> str:
    return README.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def test_transactions_snippets_run_as_written() -> None:
    """Every ```python block of the README's Transactions section runs unchanged and records its event (held
    until the block / the commit releases it)."""
    import subprocess
    import sys

    blocks = re.findall(r"```python\n(.*?)```", _section("Transactions"), re.S)
    assert len(blocks) == 2
    for block in blocks:
        script = (
            "from otel_commerce.testing import capture_events\n"
            "with capture_events() as events:\n"
            + "".join(f"    {line}\n" for line in block.splitlines())
            + "assert [(e.type, e.organization_id, e.id) for e in events] == [('order.completed', 'acme', 'o1')], events\n"
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, block + proc.stderr


def test_every_environment_variable_the_code_reads_is_in_the_readme_table() -> None:
    """Each `OTEL_COMMERCE_*` name in the package appears in README "Environment" (full name, or `_SUFFIX` in a
    row that starts with a full name)."""
    names = set()
    for path in (ROOT / "otel_commerce").rglob("*.py"):
        names |= set(re.findall(r"OTEL_COMMERCE_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    assert len(names) > 30
    table = _section("Wiring it up").split("### Environment", 1)[1].split("\nDurations in the environment", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `OTEL_")]
    documented = set()
    for row in rows:
        first = row.split("|")[1]
        documented |= set(re.findall(r"OTEL_COMMERCE_[A-Z0-9_]+", first))
        documented |= {"OTEL_COMMERCE" + s for s in re.findall(r"`(_[A-Z0-9_]+)`", first)}
        documented |= {"OTEL_COMMERCE_NATS" + s for s in re.findall(r"/ `(_[A-Z0-9_]+)`", first)}
    missing = sorted(names - documented - {"OTEL_COMMERCE_MAX_AGE_SECONDS"})  # the deprecated alias: in the MAX_AGE_MS row
    assert missing == [], missing
