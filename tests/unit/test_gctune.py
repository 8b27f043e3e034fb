"""services/gctune.py: young collections by the clock. CPython counts allocations minus
frees to start a young collection; under a steady load whose calls end as fast as they
start, the frees cancel the allocations and the young generation grows unchecked (the
40-190 ms pauses of docs/BENCHMARKS.md, "GC pauses"). `collect_young` bounds it."""

from __future__ import annotations

import gc

import pytest

from services.gctune import collect_young


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(2000, 2, 5000)
    gc.collect()  # every generation's count back to 0
    yield
    gc.set_threshold(*saved)


def test_collect_young_runs_the_generation_cpythons_trigger_would(thresholds) -> None:
    # Generation 1 once more than two young collections ran since its last one.
    assert [collect_young() for _ in range(4)] == [0, 0, 0, 1]
    assert [collect_young() for _ in range(4)] == [0, 0, 0, 1]


def test_frees_that_cancel_allocations_leave_the_young_generation_unchecked(thresholds) -> None:
    old = [[] for _ in range(30_000)]
    gc.collect()  # the calls already running: old objects
    young = []
    for _ in range(30_000):
        young.append([])  # a new call's object …
        old.pop()  # … while an old call's object is freed: the count stays near 0
    assert len(gc.get_objects(generation=0)) > 25_000  # no automatic collection ran

    gc.collect()
    old = [[] for _ in range(30_000)]
    gc.collect()
    young = []
    biggest = 0
    for i in range(30_000):
        young.append([])
        old.pop()
        if i % 1_000 == 999:  # what the 50 ms clock does under load
            biggest = max(biggest, len(gc.get_objects(generation=0)))
            collect_young()
    assert biggest < 2_000
