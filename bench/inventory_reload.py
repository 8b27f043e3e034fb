"""What one inventory reload costs a node: wall time, and the longest the event loop went
without running anything else while it loaded (what a call arriving then waits for).

Provisions examples/provision.yaml plus N numbers on its trunk group in a database of its
own, then loads the snapshot the way a node does (services.inventory.load through a pool)
while a ticker task measures the loop's longest gap.

    .venv/bin/python bench/inventory_reload.py [--numbers 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from services import db, inventory, provision  # noqa: E402

PG_ADMIN = os.environ.get("SIPCC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


async def longest_gap(stop: asyncio.Event, period: float = 0.001) -> float:
    """The longest time between two runs of this task, in seconds."""
    worst = 0.0
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(period)
        now = time.perf_counter()
        worst = max(worst, now - last - period)
        last = now
    return worst


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--numbers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    name = f"sipcc_bench_inv_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = db.with_database(PG_ADMIN, name)
    try:
        await db.migrate(dsn)
        conn = await asyncpg.connect(dsn)
        doc = provision.parse((ROOT / "examples" / "provision.yaml").read_text())
        await provision.apply(conn, doc)
        customer, group = await conn.fetchrow(
            "SELECT customer_id, id FROM trunk_groups ORDER BY id LIMIT 1"
        )
        await conn.execute(
            "INSERT INTO numbers (tn, customer_id, trunk_group_id) "
            "SELECT '+1813' || lpad(g::text, 7, '0'), $1, $2 FROM generate_series(1, $3) g "
            "ON CONFLICT DO NOTHING",
            customer, group, args.numbers,
        )  # fmt: skip
        total = await conn.fetchval("SELECT count(*) FROM numbers")
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        print(f"{total:,} numbers; {args.repeat} reloads")
        for k in range(args.repeat):
            stop = asyncio.Event()
            ticker = asyncio.create_task(longest_gap(stop))
            await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            inv = await inventory.load(pool)
            wall = time.perf_counter() - t0
            stop.set()
            gap = await ticker
            print(f"  reload {k + 1}: {wall * 1000:7.1f} ms wall, longest event-loop block "
                  f"{gap * 1000:7.1f} ms, {len(inv.numbers):,} numbers in the snapshot")  # fmt: skip
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
