"""uWSGI (the pyuwsgi wheel) without --enable-threads: detected, one WARNING and doctor's hint; with threads: none."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lifecycle_support import PYTHON, child_env, write_script
from polling import poll

_UWSGI = shutil.which("uwsgi", path=str(Path(PYTHON).parent))

_APP = """
import otel_commerce
from otel_commerce._cli._doctor import uwsgi_check

otel_commerce.configure(collector_endpoint="http://127.0.0.1:9")
check = uwsgi_check()  # otel-commerce doctor's check, run inside the app
print(f"doctor uwsgi: ok={check.ok} fix={check.fix}", flush=True)


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""


@pytest.mark.skipif(_UWSGI is None, reason="uWSGI (pyuwsgi) not installed")
@pytest.mark.parametrize("threads", [False, True])
def test_uwsgi_without_threads_is_detected_once(tmp_path: Path, threads: bool) -> None:
    assert _UWSGI is not None
    write_script(tmp_path, "app.py", _APP)
    log = tmp_path / "uwsgi.log"
    cmd = [_UWSGI, "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py", "--master", "--processes", "1"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd + (["--enable-threads"] if threads else []),
            cwd=tmp_path,
            env=child_env(TEST_PREFIX="uwsgi"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert poll(lambda: "WSGI app 0" in log.read_text(), 30), log.read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert text.count("uWSGI runs without --enable-threads") == (0 if threads else 1), text[-3000:]
    hint = "fix=start uWSGI with --enable-threads" if not threads else "ok=True"
    assert f"doctor uwsgi: ok={threads} " in text and hint in text, text[-3000:]
