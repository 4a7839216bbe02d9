"""Every benchmark script takes ``--quick`` (README "Benchmarks"): a smoke run that exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))


def _run(script: str, *args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_documents_quick(script: str) -> None:
    result = _run(script, "--help")
    assert result.returncode == 0 and "--quick" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    "script",
    [s if s != "bench_end_to_end.py" else pytest.param(s, marks=pytest.mark.slow) for s in SCRIPTS],  # (~10 s)
)
def test_quick_smoke_run(script: str, tmp_path: Path) -> None:
    """Exits 0, and leaves nothing in the temporary directory (spool and server stores removed)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = _run(script, "--quick", tmpdir=tmpdir)
    lines = result.stdout.strip().splitlines()
    print(f"\n[bench --quick] {script}: exit {result.returncode}, {len(lines)} line(s)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines and "unrecognized arguments" not in result.stderr
    assert sorted(p.name for p in tmpdir.iterdir()) == []
