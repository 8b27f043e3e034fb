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
from redis.exceptions import ResponseError

from services import logs, metrics
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
    def __init__(self, client: aioredis.Redis, stream: str) -> None:
        self._r = RedisBatcher(client)
        self.stream = stream

    async def publish(self, event: CdrEvent) -> None:
        await self._r.execute("XADD", self.stream, "*", "e", event.to_json())
        metrics.cdr_events_published_total.inc()


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
        while not self._stopping.is_set():
            try:
                await self._claim_abandoned()
                resp = await self._r.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=self.batch_max, block=500
                )
                for _stream, entries in resp or []:
                    if entries:
                        await self.write(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever failed (Postgres or Redis away, a pool timeout, a bad batch), the
                # entries stay pending and are retried: the writer must never die quietly.
                log.warning("cdr_writer_retry", error=repr(exc), exc_info=True)
                await asyncio.sleep(1)

    def stop(self) -> None:
        self._stopping.set()

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
