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
from operator import attrgetter

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from services import cdr_partitions, logs, metrics
from services.cdr_spool import CdrSpool, read_lines
from services.redisbatch import batcher_for

log = logs.get("cdr")
GROUP = "cdr-writers"
MAX_PER_ENTRY = 100  # events the publisher puts in one stream entry at most


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
        # Not asdict() (a deep copy) nor getattr per field: one C call reads every field.
        return _ENCODE({
            k: v.isoformat() if type(v) is datetime else str(v) if type(v) is Decimal else v
            for k, v in zip(COLUMNS, _FIELDS(self), strict=True)
        })  # fmt: skip

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
_FIELDS = attrgetter(*COLUMNS)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class CdrPublisher:
    """Puts events on the stream; while Redis cannot take them, into the spool
    (services/cdr_spool.py), and later events behind them, so the order holds. `replay()`
    sends the spool back when Redis answers again; `run_replayer()` keeps trying.

    The events of one loop turn go out as one stream entry (JSON lines joined by newlines,
    which JSON text never holds unescaped): per event, an XADD of its own cost more CPU in
    redis-py and in Redis than the event itself (docs/BENCHMARKS.md). An entry is stored
    or refused whole, so batching changes nothing about exactly-once.
    """

    def __init__(
        self, client: aioredis.Redis, stream: str, spool: CdrSpool | None = None,
        max_per_entry: int = MAX_PER_ENTRY,
    ) -> None:  # fmt: skip
        self._r = batcher_for(client)
        self._client = client
        self.stream = stream
        self.spool = spool
        self.max_per_entry = max_per_entry
        self._queue: list[tuple[str, asyncio.Future]] = []
        self._flushing = False
        if spool is not None and spool.adopt_orphans():
            metrics.cdr_spool_events.set(spool.waiting)

    async def publish(self, event: CdrEvent) -> None:
        line = event.to_json()
        if self.spool is not None and self.spool.active and not self._queue:
            await self._to_spool(line)
            return
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((line, fut))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # every event ended in this loop turn joins the entry
            while self._queue:
                batch = self._queue[: self.max_per_entry]
                del self._queue[: self.max_per_entry]
                await self._send(batch)
        finally:
            self._flushing = False

    async def _send(self, batch: list[tuple[str, asyncio.Future]]) -> None:
        lines = [line for line, _ in batch]
        error: BaseException | None = None
        if self.spool is not None and self.spool.active:
            spooled = True  # earlier events wait in the spool: these go behind them
        else:
            spooled = False
            try:
                await self._r.execute("XADD", self.stream, "*", "e", "\n".join(lines))
                metrics.cdr_events_published_total.inc(len(lines))
            except (RedisError, OSError) as exc:
                if self.spool is None:
                    error = exc
                else:
                    log.warning("cdr_spooling", stream=self.stream, error=repr(exc))
                    spooled = True
        if spooled:
            try:
                await asyncio.gather(*(self._to_spool(line) for line in lines))
            except OSError as exc:  # the disk failed too: the caller logs the event whole
                error = exc
        for _, fut in batch:
            if fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(None)

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
                            for i in range(0, len(lines), self.max_per_entry):
                                part = lines[i : i + self.max_per_entry]
                                p.xadd(self.stream, {"e": "\n".join(part)})
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


_STORED = ", ".join(COLUMNS)
# ON CONFLICT DO NOTHING also skips a key repeated inside the batch (a replay that
# overlaps), so no DISTINCT (a sort) is needed.
_INSERT_FROM_JSON = (
    f"INSERT INTO cdrs ({_STORED}) SELECT {', '.join('r.' + c for c in COLUMNS)} "
    "FROM cdr_stage_json s, json_populate_record(NULL::cdrs, s.j) r ON CONFLICT DO NOTHING"
)


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
        linger: float = 0.05,
    ) -> None:
        self._pool = pool
        self._r = client
        self.stream = stream
        self.batch_max = batch_max
        self._per_entry = float(MAX_PER_ENTRY)  # events per stream entry, recent average
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.linger = linger
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
                    GROUP, self.consumer, {self.stream: ">"}, count=self.read_count, block=500
                )
                for _stream, entries in resp or []:
                    if entries:
                        await self.write(entries)
                        if len(entries) < self.read_count and self.linger:
                            # Keeping up: let the next batch gather for a moment. Each
                            # batch costs the same round trips whatever its size, and a
                            # trickle of tiny batches spends the CPU the edges need.
                            await asyncio.sleep(self.linger)
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

    @property
    def read_count(self) -> int:
        """Entries to read at once. XREADGROUP counts entries, and an entry holds 1 to
        MAX_PER_ENTRY events: aim at one batch of events per read, so several writers
        share a backlog evenly, and cap it (batch_max / 4 entries) so a read's memory
        stays bounded when full entries follow a run of small ones."""
        return max(1, min(self.batch_max // 4, int(self.batch_max / self._per_entry)))

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
                GROUP, self.consumer, {self.stream: ">"}, count=self.read_count
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self.write(entries)

    async def _drain_pending(self) -> None:
        while True:
            resp = await self._r.xreadgroup(
                GROUP, self.consumer, {self.stream: "0"}, count=self.read_count
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self.write(entries)

    async def _claim_abandoned(self) -> None:
        """XAUTOCLAIM entries a dead writer read but never acknowledged."""
        _next, entries, *_ = await self._r.xautoclaim(
            self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.read_count
        )
        if entries:
            await self.write(entries)

    async def write(self, entries: list[tuple[bytes, dict]]) -> int:
        """Store entries in batches of at most batch_max rows; returns rows inserted. Each
        batch's entries are acknowledged only after its commit.

        The events go to Postgres as the JSON they are (COPY into a one-column staging
        table, then json_populate_record): Postgres parses them in C, in its own process,
        where parsing them here cost more CPU than everything else the writer does
        (docs/BENCHMARKS.md). A batch Postgres refuses (a malformed event) is stored again
        one event at a time, so the bad one is logged and skipped, never blocking the rest.
        """
        inserted = events = 0
        ids: list = []
        payloads: list[str] = []
        for entry_id, data in entries:
            payload = data.get(b"e") or data.get("e")
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8", "replace")
            lines = payload.split("\n") if payload else []  # an entry may carry several
            if not lines:
                log.error("cdr_event_malformed", entry=entry_id, error="no 'e' field", data=data)
            if payloads and len(payloads) + len(lines) > self.batch_max:
                inserted += await self._write_batch(ids, payloads)
                ids, payloads = [], []
            ids.append(entry_id)
            payloads.extend(lines)
            events += len(lines)
        if ids:
            inserted += await self._write_batch(ids, payloads)
        if entries:
            self._per_entry = max(1.0, (self._per_entry + events / len(entries)) / 2)
        return inserted

    async def _write_batch(self, ids: list, payloads: list[str]) -> int:
        t0 = time.perf_counter()
        inserted = 0
        if payloads:
            try:
                inserted = await self._store_json(payloads)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                log.warning("cdr_batch_refused", error=str(exc), events=len(payloads))
                inserted = await self._store_each(payloads)
        async with self._r.pipeline(transaction=False) as p:
            p.xack(self.stream, GROUP, *ids)
            p.xdel(self.stream, *ids)
            await p.execute()
        metrics.cdr_rows_written_total.inc(inserted)
        metrics.cdr_duplicates_total.inc(len(payloads) - inserted)
        metrics.cdr_batch_seconds.observe(time.perf_counter() - t0)
        # Stream ids are the time Redis took the event (ms): the oldest one's wait.
        oldest_ms = min(int(i.split(b"-")[0] if isinstance(i, bytes) else i.split("-")[0]) for i in ids)
        metrics.cdr_lag_seconds.set(max(0.0, time.time() - oldest_ms / 1000))
        return inserted

    async def _store_json(self, payloads: list[str]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS cdr_stage_json (j json) ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table(
                "cdr_stage_json", records=[(p,) for p in payloads], columns=("j",)
            )
            try:
                async with conn.transaction():  # a savepoint: a missing month is retried
                    status = await conn.execute(_INSERT_FROM_JSON)
            except asyncpg.CheckViolationError as exc:
                if "no partition" not in str(exc):
                    raise
                # A month nobody made ahead (a call dated far off): make it, once.
                await conn.execute(
                    "SELECT cdrs_ensure_partition(m) FROM (SELECT DISTINCT "
                    "date_trunc('month', (j->>'started_at')::timestamptz)::date AS m "
                    "FROM cdr_stage_json) x"
                )
                status = await conn.execute(_INSERT_FROM_JSON)
            return int(status.rsplit(" ", 1)[-1])

    async def _store_each(self, payloads: list[str]) -> int:
        """The slow path for a refused batch: each event alone; the bad ones logged."""
        inserted = 0
        for payload in payloads:
            try:
                event = CdrEvent.from_json(payload)
                inserted += await self._store([event])
            except (TypeError, ValueError, KeyError, asyncpg.DataError,
                    asyncpg.IntegrityConstraintViolationError) as exc:  # fmt: skip
                # It can never be stored; the log keeps it whole for a person to mend.
                log.error("cdr_event_malformed", error=str(exc), payload=payload)
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
