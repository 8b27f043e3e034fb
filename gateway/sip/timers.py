"""A cancellable deadline heap for the sans-I/O SIP layers.

The transaction layer arms and disarms many short timers (A–M of RFC 3261 Table 4) and most
of them are disarmed before they fire: a response stops Timer A/B long before 32 s. Removing
an entry from the middle of a binary heap is O(n), so disarming is lazy: the heap keeps the
stale entry and `pop_due`/`next_deadline` skip it. To keep memory bounded when traffic
disarms timers faster than their deadlines pass, the heap is rebuilt once stale entries
outnumber live ones.

Time is whatever float the caller passes in; this module never reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# Below this size a rebuild saves nothing worth the work.
_COMPACT_MIN = 64


class TimerHeap(Generic[K]):
    """Deadlines keyed by an arbitrary hashable; at most one live deadline per key."""

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        # key -> sequence number of its live heap entry; an entry whose sequence number does
        # not match is stale (disarmed or re-armed since).
        self._live: dict[K, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def schedule(self, key: K, deadline: float) -> None:
        """Arm `key` at `deadline`, replacing any deadline it already had."""
        seq = next(self._seq)
        self._live[key] = seq
        # The sequence number also breaks ties, so equal deadlines fire in arming order.
        heapq.heappush(self._heap, (deadline, seq, key))
        self._maybe_compact()

    def cancel(self, key: K) -> None:
        self._live.pop(key, None)

    def pop_due(self, now: float) -> K | None:
        """Disarm and return the earliest key whose deadline is <= now, or None."""
        heap = self._heap
        while heap:
            deadline, seq, key = heap[0]
            if self._live.get(key) != seq:
                heapq.heappop(heap)
                continue
            if deadline > now:
                return None
            heapq.heappop(heap)
            del self._live[key]
            return key
        return None

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            _deadline, seq, key = heap[0]
            if self._live.get(key) == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def _maybe_compact(self) -> None:
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            live = self._live
            self._heap = [entry for entry in self._heap if live.get(entry[2]) == entry[1]]
            heapq.heapify(self._heap)
