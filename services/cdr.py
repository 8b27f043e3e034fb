"""CDR pipeline: the edge publishes one event per call leg to a Redis stream; the writer
stores them in Postgres.

Exactly one row per leg: the writer copies a batch into a temporary table and inserts it
with ON CONFLICT DO NOTHING on the table's key (call_id, leg, started_at), then
acknowledges the stream entries only after the commit. A crash between commit and ack
replays the batch, and the replay inserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from services import cdr_partitions, logs, metrics
from services.cdr_spool import CdrSpool, read_lines
from services.redisbatch import RedisBatcher

log = logs.get("cdr")
GROUP = "cdr-writers"


@dataclass(slots=True)
class CdrEvent:
    call_id: str
    leg: str
    direction: str
    dnis: str
    started_at: datetime
    ended_at: datetime
    disposition: str
    customer_id: str | None = None
    trunk_id: str | None = None
    ani: str | None = None
    ani_source: str | None = None
    jurisdiction: str | None = None
    answered_at: datetime | None = None
    duration_ms: int = 0
    billed_seconds: int = 0
    rate_per_minute: Decimal | None = None
    amount: Decimal = Decimal("0.00000")
    currency: str = "USD"
    sip_status: int | None = None
    reason: str | None = None
    emergency_level: str | None = None
    carrier_id: str | None = None
    edge: str | None = None
    emergency_route: str | None = None  # 911: the targets tried, e.g. "psap:fl-pinellas>national"

    def to_json(self) -> str:
        out = {}
        for k in COLUMNS:  # not asdict(): its deep copy costs more than the rest of the call
            v = getattr(self, k)
            if isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, Decimal):
                v = str(v)
            out[k] = v
        return json.dumps(out, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> CdrEvent:
        raw = json.loads(text)
        for k in ("started_at", "ended_at", "answered_at"):
            if raw.get(k):
                raw[k] = datetime.fromisoformat(raw[k])
        for k in ("rate_per_minute", "amount"):
            if raw.get(k) is not None:
                raw[k] = Decimal(raw[k])
        return cls(**raw)


COLUMNS = tuple(f.name for f in fields(CdrEvent))


class CdrPublisher:
    """Puts each event on the stream; while Redis cannot take it, into the spool
    (services/cdr_spool.py), and later events behind it, so the order holds. `replay()`
    sends the spool back when Redis answers again; `run_replayer()` keeps trying."""

    def __init__(self, client: aioredis.Redis, stream: str, spool: CdrSpool | None = None) -> None:
        self._r = RedisBatcher(client)
        self._client = client
        self.stream = stream
        self.spool = spool
        if spool is not None and spool.adopt_orphans():
            metrics.cdr_spool_events.set(spool.waiting)

    async def publish(self, event: CdrEvent) -> None:
        line = event.to_json()
        if self.spool is not None and self.spool.active:
            await self._to_spool(line)
            return
        try:
            await self._r.execute("XADD", self.stream, "*", "e", line)
        except (RedisError, OSError) as exc:
            if self.spool is None:
                raise
            if not self.spool.active:
                log.warning("cdr_spooling", stream=self.stream, error=repr(exc))
            await self._to_spool(line)
            return
        metrics.cdr_events_published_total.inc()

    async def _to_spool(self, line: str) -> None:
        assert self.spool is not None
        fut = self.spool.append(line)
        metrics.cdr_events_spooled_total.inc()
        metrics.cdr_spool_events.set(self.spool.waiting)
        await fut

    async def replay(self, chunk: int = 1000) -> int:
        """Send every spooled event to the stream, oldest first; returns how many. Raises
        when Redis fails meanwhile (what was sent stays sent, the rest stays spooled)."""
        if self.spool is None:
            return 0
        sent = 0
        while self.spool.active:
            for f in await self.spool.ready_files():
                while True:
                    lines, offset = read_lines(f, chunk)
                    if lines:
                        async with self._client.pipeline(transaction=False) as p:
                            for line in lines:
                                p.xadd(self.stream, {"e": line})
                            await p.execute()
                    f.offset = offset
                    f.events -= len(lines)
                    sent += len(lines)
                    metrics.cdr_events_replayed_total.inc(len(lines))
                    metrics.cdr_spool_events.set(self.spool.waiting)
                    if not lines:
                        break
                self.spool.done(f)
                log.info("cdr_spool_replayed", file=str(f.path), stream=self.stream)
        metrics.cdr_spool_events.set(0)
        return sent

    async def run_replayer(self, every: float = 1.0) -> None:
        """Replay whenever something is spooled and Redis answers; never gives up."""
        assert self.spool is not None
        while True:
            try:
                self.spool.adopt_orphans()  # a process that died meanwhile (another worker)
                if self.spool.active:
                    await self.replay()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cdr_replay_retry", error=repr(exc))
            await asyncio.sleep(every)


def _month(d: datetime) -> date:
    return date(d.year, d.month, 1)


class CdrWriter:
    """One consumer of the group; run several for throughput or availability."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: aioredis.Redis,
        stream: str,
        *,
        batch_max: int = 10_000,
        consumer: str | None = None,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self._pool = pool
        self._r = client
        self.stream = stream
        self.batch_max = batch_max
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self._months: set[date] = set()
        self._ahead_done: date | None = None
        self._stopping = asyncio.Event()

    async def ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        await self.ensure_group()
        # Our own pending entries first (a restart after a crash), then new ones.
        await self._drain_pending()
        next_upkeep = 0.0
        retry_own = False
        while not self._stopping.is_set():
            try:
                if retry_own:
                    # A batch failed (Postgres away): it is still ours, pending; write it
                    # again now rather than wait claim_idle_ms for XAUTOCLAIM.
                    await self._drain_pending()
                    retry_own = False
                now = time.monotonic()
                if now >= next_upkeep:
                    await self._upkeep()
                    next_upkeep = now + 1.0
                await self._claim_abandoned()
                resp = await self._r.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=self.batch_max, block=500
                )
                for _stream, entries in resp or []:
                    if entries:
                        await self.write(entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    log.warning("cdr_writer_retry", error=repr(exc), exc_info=True)
                    await asyncio.sleep(1)
                    continue
                # Redis lost the stream and its group (restarted without persistence):
                # start them again; what was on it is gone, which its AOF must prevent.
                log.error("cdr_group_lost", stream=self.stream)
                await self.ensure_group()
            except Exception as exc:
                retry_own = True
                # Whatever failed (Postgres or Redis away, a pool timeout, a bad batch), the
                # entries stay pending and are retried: the writer must never die quietly.
                log.warning("cdr_writer_retry", error=repr(exc), exc_info=True)
                await asyncio.sleep(1)

    def stop(self) -> None:
        self._stopping.set()

    async def _upkeep(self) -> None:
        """Once a second: the stream's backlog for the metrics; daily: next months'
        partitions (DDL there, not in the first batch of a month)."""
        async with self._r.pipeline(transaction=False) as p:
            p.xlen(self.stream)
            p.xrange(self.stream, count=1)
            length, first = await p.execute()
        metrics.cdr_stream_entries.set(length)
        age = 0.0
        if first:
            ms = int(first[0][0].split(b"-")[0])
            age = max(0.0, time.time() - ms / 1000)
        metrics.cdr_stream_oldest_seconds.set(age)
        today = datetime.now(UTC).date()
        if self._ahead_done != today:
            async with self._pool.acquire() as conn:
                await cdr_partitions.ensure_ahead(conn, today)
            self._ahead_done = today

    async def drain(self) -> None:
        """Write what is still on the stream (a node stopping after its last calls): first
        what this consumer read and did not acknowledge, then what nobody read yet."""
        await self._drain_pending()
        while True:
            resp = await self._r.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=self.batch_max
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self.write(entries)

    async def _drain_pending(self) -> None:
        while True:
            resp = await self._r.xreadgroup(
                GROUP, self.consumer, {self.stream: "0"}, count=self.batch_max
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self.write(entries)

    async def _claim_abandoned(self) -> None:
        """XAUTOCLAIM entries a dead writer read but never acknowledged."""
        _next, entries, *_ = await self._r.xautoclaim(
            self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch_max
        )
        if entries:
            await self.write(entries)

    async def write(self, entries: list[tuple[bytes, dict]]) -> int:
        """Store a batch; returns rows inserted. Acknowledges only after the commit."""
        t0 = time.perf_counter()
        events: list[CdrEvent] = []
        bad: list[bytes] = []
        for n, (entry_id, data) in enumerate(entries):
            if n and n % 500 == 0:
                await asyncio.sleep(0)  # a big batch must not hold up SIP on the same loop
            payload = data.get(b"e") or data.get("e")
            try:
                events.append(CdrEvent.from_json(payload))
            except (TypeError, ValueError, KeyError) as exc:
                # A malformed event can never be stored; keep it visible, don't block the stream.
                log.error("cdr_event_malformed", entry=entry_id, error=str(exc), payload=payload)
                bad.append(entry_id)
        inserted = 0
        if events:
            inserted = await self._store(events)
        ids = [e for e, _ in entries]
        async with self._r.pipeline(transaction=False) as p:
            p.xack(self.stream, GROUP, *ids)
            p.xdel(self.stream, *[i for i in ids if i not in bad])
            await p.execute()
        metrics.cdr_rows_written_total.inc(inserted)
        metrics.cdr_duplicates_total.inc(len(events) - inserted)
        metrics.cdr_batch_seconds.observe(time.perf_counter() - t0)
        if events:
            oldest = min(e.ended_at for e in events)
            metrics.cdr_lag_seconds.set((datetime.now(UTC) - oldest).total_seconds())
        return inserted

    async def _store(self, events: list[CdrEvent]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            for month in {_month(e.started_at) for e in events} - self._months:
                await conn.execute("SELECT cdrs_ensure_partition($1)", month)
                self._months.add(month)
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS cdr_stage "
                "(LIKE cdrs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table(
                "cdr_stage",
                records=[tuple(getattr(e, c) for c in COLUMNS) for e in events],
                columns=COLUMNS,
            )
            cols = ", ".join(COLUMNS)
            status = await conn.execute(
                f"INSERT INTO cdrs ({cols}) SELECT DISTINCT ON (call_id, leg, started_at) {cols} "
                "FROM cdr_stage ON CONFLICT DO NOTHING"
            )
            return int(status.rsplit(" ", 1)[-1])


async def run_writer_forever(writer: CdrWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await writer.run()
