"""A cancellable deadline queue for the sans-I/O SIP layers.

The transaction layer arms and disarms many timers (A–M of RFC 3261 Table 4), most of them
disarmed before they fire: a response stops Timer A/B long before 32 s. Disarming is lazy:
the stale entry stays queued and `pop_due`/`next_deadline` skip it.

Nearly every timer has one of a few durations (T1 doublings, T4, 64*T1), and entries of one
duration armed in time order expire in that order: each duration gets a FIFO lane, where
arming and expiry cost O(1) and stale entries leave as their deadline passes. A binary
heap takes the rest (an entry armed with no lane, or earlier than its lane's last). At
1,000 calls/s a heap alone held ~200,000 entries per worker, and the rebuild that dropped
its stale ones walked them all in one go: a loop block of tens of ms (docs/BENCHMARKS.md).

Time is whatever float the caller passes in; this module never reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# Below this size a rebuild saves nothing worth the work.
_COMPACT_MIN = 64


class TimerHeap(Generic[K]):
    """Deadlines keyed by an arbitrary hashable; at most one live deadline per key."""

    __slots__ = ("_heap", "_lanes", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._lanes: dict[Hashable, deque[tuple[float, int, K]]] = {}
        # key -> sequence number of its live entry; an entry whose sequence number does not
        # match is stale (disarmed or re-armed since).
        self._live: dict[K, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def schedule(self, key: K, deadline: float, lane: Hashable | None = None) -> None:
        """Arm `key` at `deadline`, replacing any deadline it already had. Entries given the
        same `lane` (for example their duration) are expected in deadline order."""
        seq = next(self._seq)
        self._live[key] = seq
        # The sequence number also breaks ties, so equal deadlines fire in arming order.
        entry = (deadline, seq, key)
        if lane is not None:
            q = self._lanes.get(lane)
            if q is None:
                q = self._lanes[lane] = deque()
            if not q or q[-1][0] <= deadline:
                q.append(entry)
                return
        heapq.heappush(self._heap, entry)
        self._maybe_compact()

    def cancel(self, key: K) -> None:
        self._live.pop(key, None)

    def pop_due(self, now: float) -> K | None:
        """Disarm and return the earliest key whose deadline is <= now, or None."""
        entry, where = self._earliest()
        if entry is None or entry[0] > now:
            return None
        if where is None:
            heapq.heappop(self._heap)
        else:
            where.popleft()
        del self._live[entry[2]]
        return entry[2]

    def next_deadline(self) -> float | None:
        entry, _where = self._earliest()
        return None if entry is None else entry[0]

    def _earliest(self) -> tuple[tuple[float, int, K] | None, deque | None]:
        """The earliest live entry, and its lane (None: the heap); drops stale heads."""
        live = self._live
        heap = self._heap
        while heap and live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        best = heap[0] if heap else None
        where = None
        for q in self._lanes.values():
            while q and live.get(q[0][2]) != q[0][1]:
                q.popleft()
            # (deadline, seq): sequence numbers are unique, so keys are never compared.
            if q and (best is None or q[0][:2] < best[:2]):
                best, where = q[0], q
        return best, where

    def _maybe_compact(self) -> None:
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            live = self._live
            self._heap = [entry for entry in self._heap if live.get(entry[2]) == entry[1]]
            heapq.heapify(self._heap)
