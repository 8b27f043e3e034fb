"""Monthly partitions of `cdrs`: created ahead of time, detached for archive.

Partitions are made `AHEAD` months in advance (by the migration, then by every CDR
writer at start and daily) so the first call of a month never waits for DDL; the writer
still creates a missing month itself (a call dated far off). Old months are detached,
not dropped: the table is renamed `archive_cdrs_YYYY_MM`, out of `cdrs`, ready for
`pg_dump -t` and a DROP when the archive is safe. The rename frees the partition's name:
an event of that month arriving later still gets a (new) partition instead of blocking
the stream.
"""

from __future__ import annotations

import re
from datetime import date

import asyncpg

AHEAD = 3
_NAME = re.compile(r"^cdrs_(\d{4})_(\d{2})$")


class PartitionError(ValueError):
    pass


def parse_month(text: str) -> date:
    """'YYYY-MM' → the first day of that month; a clear error otherwise."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PartitionError(f"month must be YYYY-MM, got {text!r}")
    return date(int(m.group(1)), int(m.group(2)), 1)


def add_months(d: date, n: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + n, 12)
    return date(y, m + 1, 1)


async def ensure_ahead(conn: asyncpg.Connection, today: date, months: int = AHEAD) -> None:
    first = date(today.year, today.month, 1)
    for n in range(months + 1):
        await conn.execute("SELECT cdrs_ensure_partition($1)", add_months(first, n))


async def attached(conn: asyncpg.Connection) -> list[tuple[str, date]]:
    """The month partitions of `cdrs`, oldest first."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'cdrs'::regclass"
    )
    out = []
    for r in rows:
        m = _NAME.match(r["relname"])
        if m:
            out.append((r["relname"], date(int(m.group(1)), int(m.group(2)), 1)))
    return sorted(out, key=lambda t: t[1])


async def detach_before(conn: asyncpg.Connection, before: date) -> list[str]:
    """Detach every month partition that ends on or before `before` (a month's first day);
    returns the archive tables' names. Their rows leave `cdrs` and its API; the tables stay."""
    done = []
    for name, month in await attached(conn):
        if month < before:
            # Plain DETACH (not CONCURRENTLY): it may run in a transaction, and an old
            # month takes no writes to wait for.
            async with conn.transaction():
                await conn.execute(f'ALTER TABLE cdrs DETACH PARTITION "{name}"')
                await conn.execute(f'ALTER TABLE "{name}" RENAME TO "archive_{name}"')
            done.append(f"archive_{name}")
    return done
