"""A minimal HTTP collector stand-in for ``bench_collector.py``: counts events, stores nothing.

Run as ``python benchmarks/_count_server.py PORT`` (uvicorn on 127.0.0.1, in its own process so that it
does not share the benchmark's GIL). Routes: ``POST /event`` (one event), ``POST /events``
(``{"events":[...]}``, answered like the Hanzo collector: ``{"status":"ok","count":N}``) and
``GET /count``.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

COUNTS = {"events": 0, "requests": 0}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path, method = scope["path"], scope["method"]
    status, out = 200, {"status": "ok"}
    if method == "POST" and path == "/events":
        n = len(orjson.loads(body)["events"])
        out["count"] = n
    elif method == "POST" and path == "/event":
        orjson.loads(body)
        n = 1
    elif method == "GET" and path == "/count":
        n, out = 0, dict(COUNTS)
    else:
        n, status, out = 0, 404, {"error": "not found"}
    COUNTS["events"] += n
    COUNTS["requests"] += 1
    raw = orjson.dumps(out)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
