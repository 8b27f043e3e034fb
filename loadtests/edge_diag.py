"""Run `sipcc serve` with diagnostics for load tests (run.py --edge-diagnose).

Changes nothing in the edge's code: it wraps, from outside, the long-running CDR writer
task so that if it ever ends, the reason is logged (traceback to stderr); dumps every
asyncio task's stack on SIGUSR1; and logs each garbage collection that pauses the
process for 20 ms or more — the evidence a load test needs when the writer stops
writing or the latency tail has periodic spikes.

    python loadtests/edge_diag.py serve      # same arguments as `python -m services.cli`
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.edge import Edge
from services import cdr
from services.cli import app


def _say(msg: str) -> None:
    print(f"EDGE_DIAG {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


_orig_run = cdr.CdrWriter.run


async def _run(self: cdr.CdrWriter) -> None:
    _say("cdr writer: started")
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    try:
        await _orig_run(self)
        _say("cdr writer: returned normally")
    except BaseException:
        _say("cdr writer: ended by an exception:\n" + traceback.format_exc())
        raise


def _chain(task: asyncio.Task) -> str:
    """Where a task is suspended: its coroutine await chain, down to the future."""
    lines = []
    c = task.get_coro()
    while c is not None:
        frame = (
            getattr(c, "cr_frame", None)
            or getattr(c, "gi_frame", None)
            or getattr(c, "ag_frame", None)
        )
        if frame is not None:
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = (
            getattr(c, "cr_await", None)
            or getattr(c, "gi_yieldfrom", None)
            or getattr(c, "ag_await", None)
        )
        if nxt is None or nxt is c:
            break
        if not (hasattr(nxt, "cr_frame") or hasattr(nxt, "gi_frame") or hasattr(nxt, "ag_frame")):
            lines.append(f"    awaiting {nxt!r}"[:300])
            break
        c = nxt
    return "\n".join(lines)


def _dump_tasks() -> None:
    tasks = asyncio.all_tasks()
    _say(f"{len(tasks)} asyncio tasks")
    others = 0
    for task in tasks:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", repr(coro))
        if name == "_run" or others < 8:
            _say(f"task {name}:\n{_chain(task)}")
            others += name != "_run"


_gc_started: dict[int, float] = {}


# EDGE_DIAG_GC_MS=0 logs every collection (for pause statistics per generation:
# grep "EDGE_DIAG.*gc generation" in the run's edge.log).
_GC_LOG_MS = float(os.environ.get("EDGE_DIAG_GC_MS", "20"))


# EDGE_DIAG_GC_YOUNG=1: with each logged young collection, how many objects the young
# generations held when it started and the biggest container among them (what it walked).
_GC_YOUNG = os.environ.get("EDGE_DIAG_GC_YOUNG") == "1"
_young_seen: dict[int, str] = {}


def _young_census(gen: int) -> str:
    if gen >= 2:
        return ""
    objs = [o for g in range(gen + 1) for o in gc.get_objects(generation=g)]
    big, size = None, 0
    for o in objs:
        try:
            n = len(o)
        except Exception:  # anything without a length, or one that fails to give it
            continue
        if n > size:
            big, size = o, n
    return f", young objects {len(objs)}, biggest {type(big).__name__} of {size}"


def _gc_timer(phase: str, info: dict) -> None:
    """Log every garbage collection that stops the process for EDGE_DIAG_GC_MS (20) or more."""
    gen = info.get("generation", -1)
    if phase == "start":
        if _GC_YOUNG:
            _young_seen[gen] = _young_census(gen)
        _gc_started[gen] = time.perf_counter()
    elif gen in _gc_started:
        ms = (time.perf_counter() - _gc_started.pop(gen)) * 1000
        if ms >= _GC_LOG_MS:
            _say(f"gc generation {gen}: {ms:.2f} ms, collected {info.get('collected')}, "
                 f"objects tracked {len(gc.get_objects(generation=2)) if gen == 2 else '-'}"
                 f"{_young_seen.pop(gen, '')}")  # fmt: skip


# EDGE_DIAG_BLOCK_MS=N: when one event-loop turn of a SIP worker runs longer than N ms,
# faulthandler prints every thread's stack at that moment (to the edge log): where a
# latency spike's time goes, without a profiler's overhead on every other turn.
_BLOCK_MS = float(os.environ.get("EDGE_DIAG_BLOCK_MS", "0"))
_orig_start = Edge.start


async def _start(self: Edge, *args, **kwargs):
    got = await _orig_start(self, *args, **kwargs)
    if _BLOCK_MS > 0:
        loop = asyncio.get_running_loop()
        period = min(_BLOCK_MS / 4000, 0.005)

        def rearm() -> None:
            faulthandler.dump_traceback_later(_BLOCK_MS / 1000 + period, exit=False)
            loop.call_later(period, rearm)

        _say(f"watchdog: stacks of loop turns over {_BLOCK_MS:.0f} ms go to stderr")
        rearm()
    return got


gc.callbacks.append(_gc_timer)
cdr.CdrWriter.run = _run  # type: ignore[method-assign]
Edge.start = _start  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(app())
