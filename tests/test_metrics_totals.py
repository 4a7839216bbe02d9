"""The per-event counter adds (``_metrics.add_one``, the recording thread's hot path) take no lock: they are queued
and folded into the totals before any read. The totals stay exact under concurrent adds, counts and reads."""

from __future__ import annotations

import threading

from otel_commerce._delivery import _metrics


def test_lock_free_adds_are_exact_under_concurrent_adds_counts_and_reads() -> None:
    key = _metrics.count_key("recorded", via="test-lock-free")
    other = _metrics.count_key("recorded", via="test-lock-free-2")
    before = _metrics.total("recorded", via="test-lock-free")
    start = threading.Barrier(5)
    stop = threading.Event()
    seen: list[int] = []

    def adder() -> None:
        start.wait()
        for i in range(20_000):
            _metrics.add_one(key)
            if i % 1000 == 0:
                _metrics.count("recorded", 2, via="test-lock-free")  # a batch count folds what is queued
                _metrics.add_one(other)

    def reader() -> None:
        start.wait()
        while not stop.is_set():
            seen.append(_metrics.total("recorded", via="test-lock-free"))

    threads = [threading.Thread(target=adder) for _ in range(4)]
    watcher = threading.Thread(target=reader)
    for t in [*threads, watcher]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert _metrics.total("recorded", via="test-lock-free") == before + 4 * (20_000 + 20 * 2)
    assert _metrics.total("recorded", via="test-lock-free-2") >= 4 * 20
    assert seen == sorted(seen)  # a read never sees a total go back
    assert len(_metrics._ones) <= _metrics._FOLD_AT + 4  # bounded: folded as it grows, whoever reads


def test_the_observable_counter_reports_the_adds_not_yet_folded() -> None:
    """A collection folds first: the adds queued since the last fold are in the reported value."""
    key = _metrics.count_key("recorded", via="test-observed")
    _metrics.add_one(key)  # first use of the name: creates the counter (and folds)
    for _ in range(10):
        _metrics.add_one(key)
    assert len(_metrics._ones) >= 10  # queued, not folded yet
    (observation,) = [
        o for o in _metrics._callback("recorded")(None) if o.attributes.get("via") == "test-observed"
    ]
    assert observation.value == 11
