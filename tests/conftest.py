"""Shared fixtures: a Postgres database and a Redis key prefix of the test run's own.

Everything talks to the real servers on loopback (SIPCC_TEST_POSTGRES / SIPCC_TEST_REDIS
to point elsewhere); the database and the keys are created here and dropped after.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest
import redis as redis_sync

from services import db, redisconn

PG_ADMIN = os.environ.get("SIPCC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SIPCC_TEST_REDIS", "redis://127.0.0.1:6379/0")
TABLES = ("cdrs", "registered_addresses", "numbers", "trunk_groups", "customers", "rate_plans",
          "carriers")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rule(id): the SPEC.md rule a test proves")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    name = f"sipcc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dsn = db.with_database(PG_ADMIN, name)

    async def create() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        await db.migrate(dsn)

    async def drop() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield dsn
    asyncio.run(drop())


@pytest.fixture
async def pg(pg_dsn: str, redis_prefix: str):
    """A connection to the run's database, emptied before the test — and the run's Redis
    keys with it: a slot lease or dialog an earlier test's killed node left behind (they
    live until their TTL) must not take a trunk of this test's calls."""
    client = redis_sync.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    prefix = f"sipcc-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis_sync.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def redis_client():
    client = redisconn.connect(REDIS_URL)
    yield client
    await client.aclose()
