"""Postgres: connection pools and the schema migrator.

Migrations are versioned SQL files in services/migrations, applied in order by
`sipcc db migrate` inside one transaction each, under an advisory lock so two nodes
starting at once do not race. We use asyncpg with plain SQL files rather than Alembic:
the schema uses Postgres features (declarative partitioning, plpgsql) that read best as
SQL, and the project has no ORM for Alembic to diff against. A checksum per file catches
an applied migration that was edited afterwards.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

MIGRATION_LOCK = 0x51_9CC_0001


class MigrationError(RuntimeError):
    pass


def migrations() -> list[tuple[str, str]]:
    files = resources.files("services") / "migrations"
    found = sorted(
        (f.name, f.read_text(encoding="utf-8")) for f in files.iterdir() if f.name.endswith(".sql")
    )
    return found


async def migrate(dsn: str) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["name"]: r["checksum"]
            for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")
        }
        for name, sql in migrations():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(
                        f"migration {name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    name,
                    checksum,
                )
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await conn.close()
    return applied_now


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it does not exist (connecting through 'postgres')."""
    name = urlsplit(dsn).path.lstrip("/") or "postgres"
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(with_database(dsn, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


async def reachable(dsn: str, timeout: float = 2.0) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except asyncpg.InvalidCatalogNameError:
        return True
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True
