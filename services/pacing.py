"""Long loops on the event loop, in slices.

A node builds its inventory snapshot from rows it has already fetched; at 100,000 numbers
that is ~0.2 s of pure Python (bench/inventory_reload.py), and for all of it no datagram
is read and no 100 Trying sent. `paced` hands the rows out a slice at a time and lets the
loop run between slices: the snapshot takes the same CPU and is still swapped in whole.
The Redis batcher hands out a pipeline's replies the same way (services/redisbatch.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

T = TypeVar("T")


async def paced(rows: Sequence[T], every: int = 2000) -> AsyncIterator[T]:
    for start in range(0, len(rows), every):
        if start:
            await asyncio.sleep(0)
        for row in rows[start : start + every]:
            yield row
