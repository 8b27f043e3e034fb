"""Live configuration: a node's in-memory inventory follows the provisioning store.

Every committed change to the tables a snapshot is built from sends `NOTIFY
sipcc_inventory` (statement triggers, migration 0011, whoever made the change), so the
signal arrives when the change is committed. The node then loads a whole new snapshot and
swaps it in; the call path only ever sees complete snapshots. Reloads are serialised and
coalesced: a burst of changes costs one reload after the one in progress, and an older
reload can never finish after a newer one and put stale data back.

Postgres delivers every committed notification to a live LISTEN session, so a signal can
only be missed while that session is down. Once a minute the node checks it (a round trip
on it, with a timeout); when it is gone the node listens again and reloads (cause
`resync`), which picks up whatever changed meanwhile. A node no longer reloads every
minute "in case": at 100,000 numbers a reload costs ~0.35 s of CPU on the event loop
(bench/inventory_reload.py), in slices, but the calls arriving meanwhile still share it.

A trunk group's capacity and a customer's status are read from the current snapshot at each
new call (gateway/routing.py, rater/admission.py), so a lowered capacity lets the calls up
finish and admits none until under it, and a suspension refuses the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import asyncpg

from services import inventory, logs, metrics

log = logs.get("live_config")
CHANNEL = "sipcc_inventory"


class InventoryFeed:
    def __init__(self, pool: asyncpg.Pool, dsn: str, install: Callable[[inventory.Inventory], None],
                 resync_seconds: float = 60, probe_timeout: float = 5) -> None:  # fmt: skip
        self._pool = pool
        self._dsn = dsn
        self._install = install
        self._resync_seconds = resync_seconds
        self._probe_timeout = probe_timeout
        self._dirty = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task] = []
        self._last_change = 0

    async def start(self) -> None:
        # Listening first: a change committed while the first snapshot loads is not missed.
        await self._listen()
        await self.reload("start")
        self._tasks = [asyncio.create_task(self._reloader()), asyncio.create_task(self._resync())]

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            self._listener.terminate()
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(CHANNEL, self._on_notify)

    def _on_notify(self, *_args) -> None:
        self._dirty.set()

    async def _reloader(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()  # a change committed during this reload sets it again
            try:
                await self.reload("notify")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("inventory_reload_failed", error=repr(exc))

    async def _resync(self) -> None:
        behind = False  # a session was lost and the reload after it has not succeeded yet
        while True:
            await asyncio.sleep(self._resync_seconds)
            if not behind and await self._listening():
                continue
            if not behind:
                log.warning("inventory_listener_lost")
            behind = True
            try:
                if not await self._listening():
                    await self._listen()
                await self.reload("resync")
                behind = False
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("inventory_reload_failed", error=repr(exc))

    async def _listening(self) -> bool:
        """Whether the LISTEN session is alive: a round trip on it, not just its socket
        state, so a session the server ended (or a dead peer) is found out."""
        conn = self._listener
        if conn is None or conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=self._probe_timeout)
            return True
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            with contextlib.suppress(Exception):
                conn.terminate()
            return False

    async def reload(self, cause: str) -> None:
        t0 = time.perf_counter()
        inv = await inventory.load(self._pool)
        self._install(inv)
        metrics.inventory_reload_seconds.observe(time.perf_counter() - t0)
        metrics.inventory_reloads_total.labels(cause=cause).inc()
        # How long the newest audited change took to reach this node's call path (the
        # database's clock at both ends, so no skew between hosts).
        row = await self._pool.fetchrow(
            "SELECT id, extract(epoch FROM clock_timestamp() - at)::float8 AS lag "
            "FROM provisioning_audit ORDER BY id DESC LIMIT 1"
        )
        newest = row["id"] if row is not None else 0
        if newest != self._last_change:
            if cause == "notify" and row is not None:
                metrics.inventory_change_lag_seconds.observe(max(0.0, row["lag"]))
            self._last_change = newest

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
