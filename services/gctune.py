"""Garbage-collector pauses, measured and kept short.

A SIP edge holds every transaction for 64*T1 (32 s): at a few hundred calls per second
that is hundreds of thousands of live objects, and CPython's full (generation 2)
collections walk all of them. Measured with bench/edge_cpu.py (6,000 calls, 50 at once),
the default thresholds gave 5 full collections of up to 262 ms, 1.07 s of pauses in 5.2 s
— a 262 ms pause is 50 INVITEs without their 100 Trying at 200 calls/s. Reference
counting frees almost everything a call makes the moment the call is done; collections
only find cycles. So: start-up objects are frozen out of collection, young collections
stay small, and full collections are rare. Same run: no full collection, 0.19 s of pauses.

Generation 1 walks every object that survived the young collections since its last run:
at 1,000 calls/s on two workers that was 7.5 ms on average (12 ms at most) every 1.5 s
with a threshold of 10 — the periodic tail of INVITE->100. Collected every third young
collection (threshold 2) it walks a fifth as much each time: 1.6-2.1 ms on average, at
most 3.8-5.1 ms, for the same total work (figures in docs/BENCHMARKS.md, "GC pauses").
A full collection waits for 12,000 of those: with the clock below running a young
collection every 50 ms (gen 1 every third), about every 30 minutes, loaded or idle.

CPython starts a young collection when allocations minus deallocations pass the first
threshold. Once calls end as fast as they start — 32 s into a steady load, when the first
transactions expire — the frees cancel the allocations, that count hardly moves, and the
young generation grows unchecked: 95,000–255,000 objects, walked in one pause of 40–127 ms
(gen 0) and 33–194 ms (gen 1), INVITE->100 p99 12–32 ms over a 60 s step. So young
collections are also run by the clock (`collect_young`, every 50 ms on the event loop): the
young generation never holds more than 50 ms of survivors, whatever the counts say.
Every pause goes to `sipcc_gc_pause_seconds{generation}`.
"""

from __future__ import annotations

import asyncio
import gc
import time

from services import metrics

_started: list[float] = [0.0]
_children = {g: metrics.gc_pause_seconds.labels(generation=str(g)) for g in (0, 1, 2)}


def _callback(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _children[info["generation"]].observe(time.perf_counter() - _started[0])


def install(tune: bool = True, gen0: int = 2_000, gen1: int = 2, gen2: int = 12_000) -> None:
    """Measure pauses; unless told not to, freeze start-up objects and make full
    collections rare (see the module docstring for the figures)."""
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
    if not tune:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, gen1, gen2)


def collect_young() -> int:
    """The collection CPython's own trigger would run now, if its allocation count were
    honest: the oldest generation whose count of younger collections is over its threshold,
    else generation 0. Returns the generation collected."""
    _c0, c1, c2 = gc.get_count()
    _t0, t1, t2 = gc.get_threshold()
    gen = 2 if c2 > t2 else 1 if c1 > t1 else 0
    gc.collect(gen)
    return gen


async def run_young_collections(every_seconds: float = 0.05) -> None:
    """`collect_young` every `every_seconds` while automatic collection is on."""
    while True:
        await asyncio.sleep(every_seconds)
        if gc.isenabled():
            collect_young()
