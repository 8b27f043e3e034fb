"""CDR writer: events from the Redis stream become exactly one row each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from services import metrics
from services.cdr import CdrEvent, CdrPublisher, CdrWriter


def event(i: int, when: datetime) -> CdrEvent:
    return CdrEvent(
        call_id=f"call-{i}", leg="a", direction="outbound", dnis="+12125551234",
        started_at=when, answered_at=when + timedelta(seconds=1),
        ended_at=when + timedelta(seconds=3), disposition="answered", customer_id="acme",
        trunk_id="acme-main", ani="+17275550100", ani_source="from", jurisdiction="interstate",
        duration_ms=2000, billed_seconds=6, rate_per_minute=Decimal("0.01200"),
        amount=Decimal("0.00120"), sip_status=200,
    )  # fmt: skip


@pytest.fixture
async def pool(pg_dsn, pg):
    p = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    yield p
    await p.close()


async def test_round_trip_json() -> None:
    e = event(1, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    assert CdrEvent.from_json(e.to_json()) == e


async def test_replayed_events_make_one_row_each(pool, pg, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}cdr-{uuid.uuid4().hex[:6]}"
    pub = CdrPublisher(redis_client, stream)
    writer = CdrWriter(pool, redis_client, stream, consumer="t1")
    await writer.ensure_group()
    now = datetime.now(UTC)
    # Two months, so the writer creates a partition ahead of the migration's window.
    events = [event(i, now if i % 2 else now + timedelta(days=100)) for i in range(50)]
    for e in events + events[:10]:  # ten replays
        await pub.publish(e)
    entries = (await redis_client.xreadgroup("cdr-writers", "t1", {stream: ">"}, count=1000))[0][1]
    assert await writer.write(entries) == 50
    # The same batch again (a crash between commit and ack): nothing new.
    assert await writer.write(entries) == 0
    assert await pg.fetchval("SELECT count(*) FROM cdrs") == 50
    row = await pg.fetchrow("SELECT * FROM cdrs WHERE call_id = 'call-1'")
    assert row["amount"] == Decimal("0.00120") and row["billed_seconds"] == 6
    assert await redis_client.xlen(stream) == 0  # acknowledged and trimmed


async def test_malformed_event_does_not_block_the_stream(pool, pg, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}cdr-{uuid.uuid4().hex[:6]}"
    writer = CdrWriter(pool, redis_client, stream, consumer="t2")
    await writer.ensure_group()
    await redis_client.xadd(stream, {"e": "{not json"})
    await CdrPublisher(redis_client, stream).publish(event(7, datetime.now(UTC)))
    entries = (await redis_client.xreadgroup("cdr-writers", "t2", {stream: ">"}, count=10))[0][1]
    assert await writer.write(entries) == 1
    assert await pg.fetchval("SELECT count(*) FROM cdrs") == 1


async def test_an_event_postgres_refuses_is_skipped_the_batch_stored(
    pool, pg, redis_client, redis_prefix
) -> None:
    stream = f"{redis_prefix}cdr-{uuid.uuid4().hex[:6]}"
    writer = CdrWriter(pool, redis_client, stream, consumer="t3")
    await writer.ensure_group()
    now = datetime.now(UTC)
    bad = event(2, now)
    bad.direction = "sideways"  # valid JSON, refused by the table's CHECK
    lines = [event(1, now).to_json(), bad.to_json(), event(3, now).to_json()]
    await redis_client.xadd(stream, {"e": "\n".join(lines)})  # one entry, three events
    entries = (await redis_client.xreadgroup("cdr-writers", "t3", {stream: ">"}, count=10))[0][1]
    assert await writer.write(entries) == 2
    assert [r["call_id"] for r in await pg.fetch("SELECT call_id FROM cdrs ORDER BY 1")] == [
        "call-1", "call-3"]  # fmt: skip
    assert await redis_client.xlen(stream) == 0  # nothing left to block the stream


async def test_an_event_of_a_month_without_partition_gets_one(pool, pg, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}cdr-{uuid.uuid4().hex[:6]}"
    pub = CdrPublisher(redis_client, stream)
    writer = CdrWriter(pool, redis_client, stream, consumer="t4")
    await writer.ensure_group()
    far = datetime(2034, 2, 10, tzinfo=UTC)
    await asyncio.gather(pub.publish(event(1, far)), pub.publish(event(2, datetime.now(UTC))))
    entries = (await redis_client.xreadgroup("cdr-writers", "t4", {stream: ">"}, count=10))[0][1]
    assert len(entries) == 1  # one loop turn, one entry
    assert await writer.write(entries) == 2
    assert await pg.fetchval("SELECT to_regclass('cdrs_2034_02') IS NOT NULL")


async def test_batches_hold_at_most_batch_max_rows(pool, pg, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}cdr-{uuid.uuid4().hex[:6]}"
    pub = CdrPublisher(redis_client, stream)
    writer = CdrWriter(pool, redis_client, stream, consumer="t5", batch_max=150)
    await writer.ensure_group()
    now = datetime.now(UTC)
    await asyncio.gather(*(pub.publish(event(i, now)) for i in range(230)))  # 3 full entries
    entries = (await redis_client.xreadgroup("cdr-writers", "t5", {stream: ">"}, count=10))[0][1]
    before = metrics.REGISTRY.get_sample_value("sipcc_cdr_batch_seconds_count")
    assert await writer.write(entries) == 230
    batches = metrics.REGISTRY.get_sample_value("sipcc_cdr_batch_seconds_count") - before
    assert await pg.fetchval("SELECT count(*) FROM cdrs") == 230
    # Entries of 100, 100 and 30 events (an entry is never split): 100 | 100 + 30.
    assert batches == 2 and await redis_client.xlen(stream) == 0
