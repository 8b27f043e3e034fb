"""Redis commands of one event-loop turn, sent as one batch on one connection.

The call path issues a handful of small commands per call (slot lease, dialog record, CDR
event, credit counters). Each store queues them on the batcher of its Redis client
(`batcher_for`), so every command issued before the loop next runs — from any store —
goes out in one write, and each caller gets its own reply (or its own exception) back.
One batch is in flight at a time, so commands reach Redis in the order they were issued:
a dialog record is never removed before it was saved.

The batcher holds one connection of the client's pool and talks to it without redis-py's
pipeline object: the pipeline's per-execute bookkeeping (pool checkout, retry wrapper, a
task for the write timeout, a timeout per reply) cost 110 µs of CPU for a batch of one
command and 259 µs for sixteen; packed with hiredis and read straight off the connection
under one deadline for the whole batch, 68 and 108 µs, callers' futures included
(bench/redis_batch.py, docs/BENCHMARKS.md). Replies are the server's own: no redis-py
response callbacks (SET gives b"OK", ZUNION … WITHSCORES a flat list under RESP2).
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Sequence

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from services.pacing import paced

_BATCHERS: weakref.WeakKeyDictionary[aioredis.Redis, RedisBatcher] = weakref.WeakKeyDictionary()


def batcher_for(client: aioredis.Redis) -> RedisBatcher:
    """The one batcher of this client: stores that share a client share its batches."""
    got = _BATCHERS.get(client)
    if got is None:
        got = _BATCHERS[client] = RedisBatcher(client)
    return got


class RedisBatcher:
    def __init__(self, client: aioredis.Redis, max_batch: int = 1000, wake_at_once: int = 8) -> None:
        self.client = client
        self.max_batch = max_batch
        self.wake_at_once = wake_at_once
        self._queue: list[tuple[Sequence, asyncio.Future]] = []
        self._running = False
        self._conn = None
        self._socket_timeout = None
        # The client's socket timeout bounds a whole batch (write and every reply).
        self._deadline = client.connection_pool.connection_kwargs.get("socket_timeout") or 5.0

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

    async def _connection(self):
        if self._conn is None:
            # Taken from the pool and never given back: the pool still closes it with the
            # client (disconnect of in-use connections). The batch has its own deadline,
            # so the connection needs none per read or write (each costs a timer or a task).
            self._conn = await self.client.connection_pool.get_connection()
            self._socket_timeout, self._conn.socket_timeout = self._conn.socket_timeout, None
        return self._conn

    async def _roundtrip(self, batch: list[tuple[Sequence, asyncio.Future]]) -> list:
        conn = await self._connection()
        wire = b"".join([hiredis.pack_command(args) for args, _fut in batch])
        await conn.send_packed_command(wire, check_health=False)
        replies: list = []
        for _ in batch:
            try:
                replies.append(await conn.read_response(timeout=math.inf))
            except ResponseError as exc:  # this command's error, read off the wire
                replies.append(exc)
        return replies

    async def _send(self, batch: list[tuple[Sequence, asyncio.Future]]) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                replies = await self._roundtrip(batch)
        except Exception as exc:  # the connection failed: every caller learns it
            if isinstance(exc, TimeoutError):
                exc = aioredis.TimeoutError(f"Redis did not answer a batch within {self._deadline} s")
            if self._conn is not None:
                # Replies may still be on their way: they must not answer the next batch.
                # The next batch takes a new connection from the pool, which finds the
                # server again (after a Sentinel failover: the new master).
                conn, self._conn = self._conn, None
                await conn.disconnect(nowait=True)
                conn.socket_timeout = self._socket_timeout
                await self.client.connection_pool.release(conn)
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
