"""Redis commands of one event-loop turn, sent as one pipeline.

Per command, redis-py's asyncio client costs about 150 µs of CPU; in a pipeline of fifty,
about 12 µs (bench figures in docs/BENCHMARKS.md). The call path issues a handful of small
commands per call (slot lease, dialog record, CDR event), so it queues them here: every
command issued before the loop next runs goes out in one pipeline, and each caller gets
its own result (or its own exception) back. One pipeline is in flight at a time, so
commands reach Redis in the order they were issued — a dialog record is never removed
before it was saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from services.pacing import paced


class RedisBatcher:
    def __init__(self, client: aioredis.Redis, max_batch: int = 1000, wake_at_once: int = 32) -> None:
        self.client = client
        self.max_batch = max_batch
        self.wake_at_once = wake_at_once
        self._queue: list[tuple[Sequence, asyncio.Future]] = []
        self._running = False

    def execute(self, *args) -> asyncio.Future:
        """Queue one command; the future resolves to its reply."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((args, fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return fut

    async def eval(self, script: str, sha: str, keys: Sequence, args: Sequence):
        """EVALSHA, falling back to EVAL when Redis lost its script cache (a restart)."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def _drain(self) -> None:
        try:
            # Let every coroutine that is ready this turn add its command first.
            await asyncio.sleep(0)
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._send(batch)
        finally:
            self._running = False

    async def _send(self, batch: list[tuple[Sequence, asyncio.Future]]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args, _fut in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every caller learns it
            for _args, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        # Each reply wakes a call that then does its next step (rating, forwarding: ~0.1-0.2
        # ms each). Woken all at once, a batch of hundreds runs as one loop turn of tens of
        # ms, during which no datagram is read: every INVITE arriving then waits that long
        # for its 100 Trying. A turn per slice lets the loop read the socket between slices.
        async for (_args, fut), reply in paced(list(zip(batch, replies, strict=True)),
                                               self.wake_at_once):  # fmt: skip
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)
