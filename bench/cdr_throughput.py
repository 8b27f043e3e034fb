"""CDR pipeline throughput: events published → rows committed, and the lag per row.

Publishers (processes of this script) put `--events` CDR events on a Redis stream through
the real `CdrPublisher` (what the edge calls at the end of each call), as fast as they can
or at `--rate` events/s; `--writers` real `sipcc cdr-writer` processes store them. Two
figures, each over the whole run:

- throughput: events / (last row committed − first event published), counted by polling
  `count(*)` (so the end is known to within the poll interval, 0.1 s);
- lag: per row, `recorded_at` (the writer's transaction start) − `ended_at` (set when the
  event was built, just before it was published); p50/p99/max over every row.

`--preload` publishes everything first, writers stopped, and then times the writers
alone draining the backlog: the writer's own ceiling, without publishers on the CPU.

    .venv/bin/python bench/cdr_throughput.py [--events 300000] [--writers 2]
        [--publishers 2] [--batch 10000] [--rate 0] [--preload]

It creates its own database (dropped after) and stream key on the Postgres and Redis on
loopback (SIPCC_TEST_POSTGRES, SIPCC_TEST_REDIS to point elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services import db, redisconn  # noqa: E402
from services.cdr import CdrEvent, CdrPublisher  # noqa: E402

PG_ADMIN = os.environ.get("SIPCC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SIPCC_TEST_REDIS", "redis://127.0.0.1:6379/0")


def make_event(tag: str, i: int) -> CdrEvent:
    now = datetime.now(UTC)
    return CdrEvent(
        call_id=f"{tag}-{i}", leg="a", direction="outbound", dnis="+12125551234",
        started_at=now, answered_at=now, ended_at=now, disposition="answered",
        customer_id=f"cust-{i % 500}", trunk_id=f"trunk-{i % 2000}", ani="+17275550100",
        ani_source="from", jurisdiction="interstate", duration_ms=61_000, billed_seconds=66,
        rate_per_minute=Decimal("0.01200"), amount=Decimal("0.01320"), sip_status=200,
        carrier_id="carrier-1", edge="bench:5060",
    )  # fmt: skip


async def publish(stream: str, tag: str, first: int, count: int, rate: float) -> None:
    client = redisconn.connect(REDIS_URL)
    pub = CdrPublisher(client, stream)
    burst = 500
    t0 = time.perf_counter()
    for start in range(first, first + count, burst):
        n = min(burst, first + count - start)
        await asyncio.gather(*(pub.publish(make_event(tag, i)) for i in range(start, start + n)))
        if rate:  # open loop: each burst leaves when it is due
            due = t0 + (start - first + n) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    await client.aclose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reap(p: subprocess.Popen) -> float:
    """Wait for a child; its CPU seconds (user + system)."""
    _pid, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


async def redis_cpu() -> float:
    client = redisconn.connect(REDIS_URL)
    info = await client.info("cpu")
    await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_writers(n: int, dsn: str, prefix: str, batch: int, logdir: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        env = {**os.environ, "SIPCC_DATABASE_URL": dsn, "SIPCC_REDIS_URL": REDIS_URL,
               "SIPCC_REDIS_PREFIX": prefix, "SIPCC_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
               "SIPCC_CDR_BATCH_MAX": str(batch), "SIPCC_LOG_LEVEL": "warning"}  # fmt: skip
        log = open(logdir / f"writer{i}.log", "wb")  # lives as long as the process
        procs.append(subprocess.Popen([sys.executable, "-m", "services.cli", "cdr-writer"],
                                      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    return procs


def start_publishers(args, stream: str, tag: str) -> list[subprocess.Popen]:
    per = args.events // args.publishers
    rate = args.rate / args.publishers if args.rate else 0
    return [
        subprocess.Popen([sys.executable, __file__, "--publish-only", stream, tag, str(p * per),
                          str(per if p < args.publishers - 1 else args.events - p * per), str(rate)])
        for p in range(args.publishers)
    ]  # fmt: skip


async def wait_rows(conn: asyncpg.Connection, n: int, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if await conn.fetchval("SELECT count(*) FROM cdrs") >= n:
            return time.time()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not all {n} rows stored in {timeout} s")


async def run(args) -> dict:
    tag = uuid.uuid4().hex[:8]
    name = f"sipcc_bench_cdr_{tag}"
    dsn = db.with_database(PG_ADMIN, name)
    prefix = f"sipcc-bench-{tag}:"
    stream = prefix + "cdr-events"
    logdir = Path(tempfile.mkdtemp(prefix=f"sipcc-bench-cdr-{tag}-"))
    await db.ensure_database(dsn)
    await db.migrate(dsn)
    conn = await asyncpg.connect(dsn)
    writers: list[subprocess.Popen] = []
    try:
        cpu = {"publishers": 0.0}
        if args.preload:
            t_pub = time.time()
            for p in start_publishers(args, stream, tag):
                cpu["publishers"] += reap(p)
            published_in = time.time() - t_pub
            redis0 = await redis_cpu()
            t0 = time.time()
            writers = start_writers(args.writers, dsn, prefix, args.batch, logdir)
            # Writers' start-up (imports, connections) is not writing: time from the first row.
            while not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM cdrs)"):
                await asyncio.sleep(0.02)
            t0 = time.time()
            writers_cpu0 = sum(cpu_seconds(w.pid) for w in writers)  # start-up left out
        else:
            writers = start_writers(args.writers, dsn, prefix, args.batch, logdir)
            await asyncio.sleep(3)  # started and waiting on the stream
            redis0 = await redis_cpu()
            writers_cpu0 = sum(cpu_seconds(w.pid) for w in writers)  # start-up left out
            t0 = time.time()
            pubs = start_publishers(args, stream, tag)
        t_end = await wait_rows(conn, args.events, timeout=600)
        cpu["redis"] = await redis_cpu() - redis0  # the shared server: others' share too
        cpu["writers"] = sum(cpu_seconds(w.pid) for w in writers) - writers_cpu0
        backends = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
        )
        cpu["postgres_backends"] = sum(cpu_seconds(r["pid"]) for r in backends)
        if not args.preload:
            for p in pubs:
                cpu["publishers"] += reap(p)
            published_in = None
        lag = await conn.fetchrow(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY l) AS p50, "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max, "
            "count(*) AS n, count(DISTINCT call_id) AS distinct_calls FROM "
            "(SELECT extract(epoch FROM recorded_at - ended_at) AS l, call_id FROM cdrs) x"
        )
    finally:
        for w in writers:
            w.terminate()
        for w in writers:
            w.wait(30)
        await conn.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        client = redisconn.connect(REDIS_URL)
        await client.delete(stream)
        await client.aclose()
    shutil.rmtree(logdir)  # the writers' logs matter only when a run fails
    seconds = t_end - t0
    return {
        "mode": "preload (writers drain a backlog)" if args.preload else "concurrent",
        "events": args.events, "writers": args.writers, "publishers": args.publishers,
        "batch": args.batch, "offered_rate": args.rate or "max",
        "seconds": round(seconds, 2), "cdrs_per_s": round(args.events / seconds),
        "published_in_s": round(published_in, 2) if published_in else None,
        "lag_p50_s": float(lag["p50"]), "lag_p99_s": float(lag["p99"]),
        "lag_max_s": float(lag["max"]), "rows": lag["n"], "distinct_calls": lag["distinct_calls"],
        "load_before": args.load_before,
        # CPU seconds per part over the run, and per 1,000 events (Redis is the shared
        # server: other users' commands count too).
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_1000_events": {k: round(1e6 * v / args.events, 1) for k, v in cpu.items()},
    }  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publish-only":
        stream, tag, first, count, rate = sys.argv[2:7]
        uvloop.run(publish(stream, tag, int(first), int(count), float(rate)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=0, help="offered events/s in total; 0: max")
    ap.add_argument("--preload", action="store_true")
    args = ap.parse_args()
    args.load_before = round(os.getloadavg()[0], 2)
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
