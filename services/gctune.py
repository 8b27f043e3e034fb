"""Garbage-collector pauses, measured and kept short.

A SIP edge holds every transaction for 64*T1 (32 s): at a few hundred calls per second
that is a million live objects, and CPython's full collections walk all of them — a pause
of a hundred milliseconds or more, during which no INVITE gets its 100 Trying. So: the
objects made at start-up are frozen out of collection, young collections run less often
(they are cheap and bounded), and full collections are rare. Reference counting frees
almost everything a call makes the moment the call is done; collections are only for
cycles. Every pause goes to `sipcc_gc_pause_seconds{generation}`.
"""

from __future__ import annotations

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


def install(tune: bool = True, gen0: int = 20_000, gen1: int = 20, gen2: int = 100) -> None:
    """Measure pauses; unless told not to, freeze start-up objects and collect less eagerly."""
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
    if not tune:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, gen1, gen2)
