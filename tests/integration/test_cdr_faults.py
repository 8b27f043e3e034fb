"""Issue 6, fault tests: 2,000 calls' CDR events in flight, a real service fails, and the
end is exactly 2,000 rows with no duplicates.

The writer is a real `sipcc cdr-writer` process; the events go through the real
CdrPublisher (what the edge calls) at a steady pace, so the fault lands mid-stream.
The Postgres and Redis that fail are private instances (tests/support/private_services.py),
never the machine's shared ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services import db, metrics, redisconn
from services.cdr import GROUP, CdrPublisher
from services.cdr_spool import CdrSpool
from tests.integration.test_cdr_writer import event
from tests.support.node import NodeProcess
from tests.support.private_services import private_postgres, private_redis  # noqa: F401

CALLS = 2000


async def publish_steadily(pub: CdrPublisher, seconds: float = 3.0) -> None:
    """2,000 calls ending over `seconds`, in bursts of 20 (one loop turn each)."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    bursts = CALLS // 20
    for b in range(bursts):
        await asyncio.gather(
            *(pub.publish(event(i, start + timedelta(milliseconds=i))) for i in range(b * 20, b * 20 + 20))
        )
        await asyncio.sleep(seconds / bursts)


async def count_rows(dsn: str) -> int | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return await conn.fetchval("SELECT count(*) FROM cdrs")
    finally:
        await conn.close()


async def wait_rows(dsn: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = await count_rows(dsn)
    while (n or 0) < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        n = await count_rows(dsn)
    return n or 0


async def assert_exactly_one_row_per_call(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        total, distinct, lo, hi = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT (call_id, leg)), "
            "min(substr(call_id, 6)::int), max(substr(call_id, 6)::int) FROM cdrs"
        )
    finally:
        await conn.close()
    assert (total, distinct, lo, hi) == (CALLS, CALLS, 0, CALLS - 1)


async def assert_stream_settled(client, stream: str) -> None:
    pending = await client.xpending(stream, GROUP)
    assert pending["pending"] == 0 and await client.xlen(stream) == 0


def writer(dsn: str, prefix: str, stream: str, log_path, redis_url: str | None = None, **env):
    extra = {"SIPCC_REDIS_URL": redis_url} if redis_url else {}
    return NodeProcess(
        dsn, prefix, log_path, role="cdr-writer", SIPCC_CDR_STREAM=stream,
        SIPCC_CDR_BATCH_MAX="100", **extra, **env,
    )  # fmt: skip


@pytest.fixture
async def private_db(private_postgres):  # noqa: F811
    name = f"faults_{uuid.uuid4().hex[:8]}"
    dsn = db.with_database(private_postgres.dsn, name)
    await db.ensure_database(dsn)
    await db.migrate(dsn)
    yield dsn
    private_postgres.start()  # running again whatever the test did (idempotent)
    admin = await asyncpg.connect(private_postgres.dsn)
    with contextlib.suppress(asyncpg.PostgresError):
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_postgres_stopped_for_30_s_mid_stream(
    private_postgres, private_db, redis_client, redis_prefix, tmp_path  # noqa: F811
) -> None:
    stream = f"faults-pg-{uuid.uuid4().hex[:6]}"
    node = writer(private_db, redis_prefix, stream, tmp_path / "writer.log").start()
    try:
        pub = CdrPublisher(redis_client, redis_prefix + stream)
        publishing = asyncio.create_task(publish_steadily(pub))
        assert 0 < await wait_rows(private_db, 300, 30) < CALLS  # mid-stream
        private_postgres.stop("immediate")  # a crash: open transactions die with it
        await publishing  # the edge goes on ending calls meanwhile
        await asyncio.sleep(30)
        assert await count_rows(private_db) is None  # still down all along
        private_postgres.start()
        t0 = time.monotonic()
        assert await wait_rows(private_db, CALLS, 60) == CALLS, node.log()
        print(f"caught up {time.monotonic() - t0:.1f} s after Postgres came back")
        await assert_exactly_one_row_per_call(private_db)
        await assert_stream_settled(redis_client, redis_prefix + stream)
        assert node.proc.poll() is None  # the writer rode it out
    finally:
        node.stop()


async def test_writer_killed_mid_batch_and_restarted(pg, pg_dsn, redis_client, redis_prefix, tmp_path) -> None:
    stream = f"faults-kill-{uuid.uuid4().hex[:6]}"
    # A restarted writer is a new consumer: it claims the dead one's entries after 1 s.
    node = writer(pg_dsn, redis_prefix, stream, tmp_path / "writer.log",
                  SIPCC_CDR_CLAIM_IDLE_SECONDS="1").start()  # fmt: skip
    try:
        pub = CdrPublisher(redis_client, redis_prefix + stream)
        publishing = asyncio.create_task(publish_steadily(pub))
        assert 0 < await wait_rows(pg_dsn, 400, 30) < CALLS
        # Hold the writer inside a batch: a lock that its INSERT waits behind, taken
        # after it read and staged the events and before it could commit or acknowledge.
        blocker = await asyncpg.connect(pg_dsn)
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE cdrs IN SHARE ROW EXCLUSIVE MODE")
        for _ in range(100):
            waiting = await pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query LIKE 'INSERT INTO cdrs%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.1)
        assert waiting == 1
        killed_at = await count_rows(pg_dsn)
        node.kill()  # SIGKILL mid-batch: read, staged, neither committed nor acknowledged
        pending = await redis_client.xpending(redis_prefix + stream, GROUP)
        await lock.rollback()
        await blocker.close()
        assert pending["pending"] > 0
        node.restart()
        await publishing
        assert await wait_rows(pg_dsn, CALLS, 60) == CALLS, node.log()
        assert killed_at < CALLS
        await assert_exactly_one_row_per_call(pg_dsn)
        await assert_stream_settled(redis_client, redis_prefix + stream)
    finally:
        node.stop()


async def test_redis_restarted_while_the_edge_publishes(
    pg, pg_dsn, private_redis, tmp_path  # noqa: F811
) -> None:
    stream = "cdr-events"
    client = redisconn.connect(private_redis.url, timeout=1)
    node = writer(pg_dsn, "", stream, tmp_path / "writer.log", redis_url=private_redis.url).start()
    spooled0 = metrics.cdr_events_spooled_total._value.get()
    replayed0 = metrics.cdr_events_replayed_total._value.get()
    pub = CdrPublisher(client, stream, CdrSpool(tmp_path / "spool", stream))
    replayer = asyncio.create_task(pub.run_replayer(every=0.2))
    try:
        publishing = asyncio.create_task(publish_steadily(pub, seconds=4))
        assert 0 < await wait_rows(pg_dsn, 300, 30) < CALLS
        private_redis.kill()  # a crash while calls keep ending
        await asyncio.sleep(1.5)
        private_redis.start()  # loads its AOF: the stream and the group come back
        await publishing
        assert await wait_rows(pg_dsn, CALLS, 60) == CALLS, node.log()
        await assert_exactly_one_row_per_call(pg_dsn)
        spooled = metrics.cdr_events_spooled_total._value.get() - spooled0
        replayed = metrics.cdr_events_replayed_total._value.get() - replayed0
        assert spooled > 0 and replayed == spooled
        assert not list((tmp_path / "spool").glob("*.spool"))
        await assert_stream_settled(client, stream)
    finally:
        replayer.cancel()
        node.stop()
        await client.aclose()
