"""Run pytest while two busy-loop processes load the CPU (how CI's 2 cores feel with neighbours); no make needed.

    python scripts/loaded_pytest.py [--busy N] [pytest args...]

Starts N (default 2) processes that spin forever, runs ``python -m pytest`` with the given arguments, stops the
busy loops and exits with pytest's exit code.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys


def _spin() -> None:  # pragma: no cover - runs in the load processes
    while True:
        pass


def main(argv: list[str]) -> int:
    busy = 2
    if argv[:1] == ["--busy"]:
        busy, argv = int(argv[1]), argv[2:]
    loops = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for p in loops:
        p.start()
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *argv])
    finally:
        for p in loops:
            p.terminate()
        for p in loops:
            p.join(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
