"""The rater's speed: decisions per second and latency, three ways.

1. in-process, no admission: `decide()` alone on one pinned core, over a call mix with
   reference data loaded (NPA-NXX-X, LCAs, LATAs, a rate deck; synthetic codes and blocks
   scale the tables to NANPA's size so lookups run against realistic dict sizes);
2. in-process with admission against the real Redis: `decide()`, then the trunk slot
   (A1, Lua acquire) and the credit check (A6), the slot released after;
3. over HTTP: `sipcc api` (FastAPI on uvicorn) in a subprocess, against a database this
   bench creates (migrated, provisioned, reference data imported) and drops, driven
   open-loop at a fixed request rate for a bounded time. Latency counts from the moment
   each request was *due*, so a server that falls behind shows it (no coordinated omission).
   The server is pinned to the first core and this client to the last, as a client on
   another host would be (--no-pin shares both); the server's CPU time per request is
   read from /proc, a figure the other core's load barely moves.

    .venv/bin/python bench/rater_bench.py [--seconds 3] [--http-rate 2000] [--http-seconds 10]
        [--concurrency 64] [--repeat 3] [--skip-http] [--skip-redis]

Each measurement is repeated and the best run reported (the machine is shared); every
run's figures are printed too. Needs Postgres and Redis on loopback (SIPCC_TEST_POSTGRES,
SIPCC_TEST_REDIS to point elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rater.admission import RedisSlots  # noqa: E402
from rater.credit import CreditGuard  # noqa: E402
from rater.decision import CallFacts, decide  # noqa: E402
from rater.refdata import ALWAYS, FOREVER, Block, Code  # noqa: E402
from services import auth, db, inventory, provision, redisconn, refdata  # noqa: E402

PG_ADMIN = os.environ.get("SIPCC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SIPCC_TEST_REDIS", "redis://127.0.0.1:6379/0")
EXAMPLES = ROOT / "examples" / "refdata"
REFDATA_FILES = [("npa-nxx", "npa-nxx.csv"), ("thousands", "thousands.csv"), ("lata", "lata.csv"),
                 ("lca", "lca.csv"), ("carriers", "carriers.csv"), ("intl-rates", "intl-rates.csv")]  # fmt: skip
TRUNK = "acme-main"
# A toll-free number for the inbound share of the mix (R9, R12).
TOLL_FREE_YAML = """
customers:
  - id: tf
    name: Toll-free line
    rate_plan: default
    numbers:
      - tn: "+18005550100"
"""
OWN = [f"+1727555010{i}" for i in range(10)]


@dataclass
class Result:
    name: str
    rate: float  # decisions (or requests) per second
    p50_us: float
    p99_us: float
    extra: str = ""

    def line(self) -> str:
        return (f"{self.name:<44} {self.rate:>10,.0f}/s   p50 {self.p50_us:>8.1f} µs   "
                f"p99 {self.p99_us:>8.1f} µs  {self.extra}")  # fmt: skip


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- the call mix ---


def call_mix(n: int, seed: int = 7) -> list[CallFacts]:
    """Mostly domestic outbound (as a SIP trunk's traffic is), with local, toll-free, 411,
    international, inbound toll-free and refused calls mixed in; many distinct numbers."""
    rng = random.Random(seed)
    npas = ["212", "305", "415", "503", "617", "702", "727", "813", "907", "808", "312", "214"]
    out: list[CallFacts] = []
    for _ in range(n):
        ani = rng.choice(OWN)
        r = rng.random()
        if r < 0.70:
            dnis = f"+1{rng.choice(npas)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        elif r < 0.80:
            dnis = f"+1727{rng.choice(['555', '556', '557', '558'])}{rng.randint(0, 9999):04d}"
        elif r < 0.85:
            dnis = f"+1800{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        elif r < 0.90:
            dnis = rng.choice(["+4420", "+447", "+33", "+52155", "+1416"]) + f"{rng.randint(0, 99999999):08d}"
        elif r < 0.93:
            dnis = "411"
        elif r < 0.96:
            caller = f"+1212{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            out.append(CallFacts(dnis="+18005550100", ani=caller, direction="inbound",
                                 customer_id="tf"))  # fmt: skip
            continue
        else:
            dnis = rng.choice(["+19005551234", "2129765555", "10102881234567"])
        out.append(CallFacts(dnis=dnis, ani=ani, trunk_group_id=TRUNK))
    return out


def synthetic_nanp(data: refdata.RefData, codes: int, blocks: int, seed: int = 3) -> None:
    """Fill the snapshot to NANPA's size (about 170k NPA-NXX codes, 500k pooled blocks)."""
    rng = random.Random(seed)
    centers = [f"RC{i:05d}" for i in range(15_000)]
    states = ["NY", "CA", "TX", "FL", "IL", "WA", "OR", "MA", "NV", "GA"]
    while len(data.codes) < codes:
        key = f"{rng.randint(201, 989)}{rng.randint(200, 999)}"
        if key[:3] in ("727", "800", "900") or key in data.codes:
            continue
        data.codes[key] = ((ALWAYS, FOREVER, Code(rng.choice(states), rng.choice(centers), "9999")),)
    keys = list(data.codes)
    while len(data.blocks) < blocks:
        key = rng.choice(keys) + str(rng.randint(0, 9))
        data.blocks[key] = ((ALWAYS, FOREVER, Block(rng.choice(centers), "7229")),)


def bench_inventory(scale: bool) -> inventory.Inventory:
    """The example provisioning and reference data, in memory (as `sipcc api` loads it)."""
    spec = provision.load_file(ROOT / "examples" / "provision.yaml")
    extra = provision.parse(TOLL_FREE_YAML)
    inv = inventory.Inventory()
    for c in spec.carriers:
        inv.carriers[c.id] = inventory.Carrier(c.id, c.name, c.gateway)
    for p in spec.rate_plans:
        row = {"id": p.id, "name": p.name, "currency": p.currency,
               "interstate_per_minute": p.interstate_per_minute,
               "intrastate_per_minute": p.intrastate_per_minute,
               "local_per_minute": p.local_per_minute, "alaska_per_minute": p.alaska_per_minute,
               "tariff": json.dumps({**p.tariff(), "directory_assistance_per_call": "0.50000"})}  # fmt: skip
        inv.rate_plans[p.id] = inventory.plan_from_row(row, [])
    import ipaddress

    for cust in [*spec.customers, *extra.customers]:
        inv.customers[cust.id] = inventory.Customer(cust.id, cust.name, cust.status,
                                                    cust.rate_plan, cust.credit_limit)  # fmt: skip
        for tg in cust.trunk_groups:
            inv.trunk_groups[tg.id] = inventory.TrunkGroup(
                tg.id, cust.id, 1_000_000, tuple(ipaddress.ip_network(n) for n in tg.source_ips),
                tuple(tg.ani_precedence), tg.carrier)  # fmt: skip
        for block in cust.numbers:
            for tn in block.expand():
                inv.numbers[tn] = inventory.Number(tn, cust.id, block.trunk_group, block.origin)
    inv.refdata = refdata.snapshot_of(*(refdata.parse_file(k, EXAMPLES / f) for k, f in REFDATA_FILES))
    if scale:
        synthetic_nanp(inv.refdata, 170_000, 500_000)
    return inv.index()


# --- 1. in-process, no admission ---


def run_in_process(inv, calls: list[CallFacts], seconds: float) -> Result:
    gc.collect()
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for c in calls:
            decide(inv, c)
        n += len(calls)
    rate = n / (time.perf_counter() - t0)
    lat: list[float] = []
    clock = time.perf_counter_ns
    for c in calls[:50_000]:
        t = clock()
        decide(inv, c)
        lat.append((clock() - t) / 1000)
    return Result("in-process, no admission (1 core)", rate, pct(lat, 0.5), pct(lat, 0.99))


# --- 2. in-process with admission against Redis ---


async def run_with_admission(inv, calls: list[CallFacts], seconds: float, concurrency: int) -> Result:
    client = redisconn.connect(REDIS_URL)
    prefix = f"sipcc-bench-{uuid.uuid4().hex[:8]}:"
    slots = RedisSlots(client, prefix, ttl_seconds=120)
    credit = CreditGuard.redis(client, prefix, lambda: inv)
    await credit.add_usage("acme", inv.customers["acme"].credit_limit / 2)  # has a limit: checked
    lat: list[float] = []
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop:
            c = calls[i % len(calls)]
            i += concurrency
            t = time.perf_counter_ns()
            d = decide(inv, c)
            call_id = f"{w}-{i}"
            held = False
            if d.action == "forward":
                d = await credit.admit(d)
                if d.action == "forward" and d.trunk_group_id:
                    held = await slots.acquire(d.trunk_group_id, call_id, 1_000_000)
            lat.append((time.perf_counter_ns() - t) / 1000)
            done += 1
            if held:
                await slots.release(d.trunk_group_id, call_id)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    rate = done / (time.perf_counter() - t0)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    return Result(f"in-process + Redis slot & credit ({concurrency} concurrent)", rate,
                  pct(lat, 0.5), pct(lat, 0.99), "decide + credit + acquire; release after")  # fmt: skip


# --- 3. over HTTP ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def prepare_database(name: str) -> str:
    dsn = db.with_database(PG_ADMIN, name)
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await db.migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await provision.apply(conn, provision.load_file(ROOT / "examples" / "provision.yaml"))
        await provision.apply(conn, provision.parse(TOLL_FREE_YAML))
        for kind, f in REFDATA_FILES:
            await refdata.import_file(conn, kind, EXAMPLES / f)
        # The /v1 routes need a key (docs/SECURITY.md); unlimited rate, checked once per process.
        key = await auth.create_key(conn, "bench", frozenset({"rating"}), auth.MAX_RATE)
        Conn.authorization = f"Authorization: Bearer {key}\r\n".encode()
    finally:
        await conn.close()
    return dsn


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def http_bodies(calls: list[CallFacts]) -> list[bytes]:
    out = []
    for c in calls:
        body: dict = {"dnis": c.dnis, "ani": c.ani, "direction": c.direction}
        if c.direction != "inbound":
            body["trunk_id"] = TRUNK
        if c.customer_id and c.direction == "inbound":
            body["customer_id"] = c.customer_id
        out.append(json.dumps(body).encode())
    return out


class Conn:
    """One keep-alive HTTP/1.1 connection: a request, then its response, then the next.
    A few dozen lines of asyncio instead of a client library, so the load generator costs
    little CPU next to the server on a 2-core machine."""

    authorization = b""  # set by prepare_database

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.r, self.w, self.host = reader, writer, host

    async def post(self, path: str, body: bytes) -> int:
        self.w.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"%sContent-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(),
                                                           self.authorization, len(body), body))  # fmt: skip
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.r.readexactly(length)
        return status


async def drive_http(port: int, bodies: list[bytes], rate: float, seconds: float,
                     connections: int) -> tuple[list[float], list[float], int, int, float]:  # fmt: skip
    """Open loop: request i is due at start + i/rate on the next free connection.
    Returns latencies in µs from dispatch and from due time, errors, requests, seconds."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(Conn(r, w, f"127.0.0.1:{port}"))
    total = int(rate * seconds)
    lat: list[float] = []  # from dispatch: waiting for a free connection counts, the
    late: list[float] = []  # client's own timer overshoot does not; from due time: both
    errors = 0
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    clock = time.perf_counter
    start = clock() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        sent = clock()
        conn = await pool.get()
        try:
            status = await conn.post("/v1/quote" if i % 4 == 0 else "/v1/rate",
                                     bodies[i % len(bodies)] if i % 4 else
                                     bodies[i % len(bodies)][:-1] + b',"duration_seconds":61}')  # fmt: skip
            if status != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            pool.put_nowait(conn)
        now = clock()
        lat.append((now - sent) * 1e6)
        late.append((now - due) * 1e6)

    # The load generator's own garbage collections are not the server's latency: a full
    # collection over tens of thousands of finished requests paused this client 150-350 ms
    # (seen as a p99 of 78 ms with the server's loop never late). Off while driving; and
    # only the requests in flight are kept.
    in_flight: set[asyncio.Task] = set()
    gc.disable()
    try:
        for i in range(total):
            delay = start + i / rate - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        while in_flight:
            await asyncio.gather(*in_flight)
    finally:
        gc.enable()
    wall = clock() - start
    while not pool.empty():
        pool.get_nowait().w.close()
    return lat, late, errors, total, wall


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, in ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_http(calls: list[CallFacts], rate: float, seconds: float, repeat: int,
             connections: int, variant: str = "as-is", pin: bool = True) -> list[Result]:  # fmt: skip
    name = f"sipcc_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = asyncio.run(prepare_database(name))
    port = free_port()
    env = {**os.environ, "SIPCC_DATABASE_URL": dsn, "SIPCC_REDIS_URL": REDIS_URL,
           "SIPCC_HTTP_LISTEN": f"127.0.0.1:{port}", "SIPCC_LOG_LEVEL": "warning",
           "SIPCC_REDIS_PREFIX": f"sipcc-bench-{uuid.uuid4().hex[:6]}:"}  # fmt: skip
    cmd = [sys.executable, "-m", "services.cli", "api"]
    if variant == "asgi-red":
        cmd = [sys.executable, "-c", "import sys; sys.argv = ['sipcc', 'api']; "
               "import bench.rater_bench as b; b.swap_red_middleware(); "
               "from services.cli import app; app()"]  # fmt: skip
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if pin and len(cpus) > 1 else set(cpus)
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE,
                              preexec_fn=lambda: os.sched_setaffinity(0, server_cpus))  # fmt: skip
    if pin and len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    try:
        return uvloop.run(measure_http(port, server, http_bodies(calls[:5000]), rate, seconds,
                                        repeat, connections, variant))  # fmt: skip
    finally:
        os.sched_setaffinity(0, set(cpus))
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(40)
        except subprocess.TimeoutExpired:
            server.kill()
        asyncio.run(drop_database(name))


async def measure_http(port: int, server: subprocess.Popen, bodies: list[bytes], rate: float,
                       seconds: float, repeat: int, connections: int, variant: str,
                       ) -> list[Result]:  # fmt: skip
    await wait_ready(port, server)
    # Warm-up: the server's caches and the connections.
    await drive_http(port, bodies, min(rate, 1000), 1.0, connections)
    results = []
    for k in range(repeat):
        stalls0 = await server_stalls(port)
        cpu0 = server_cpu_seconds(server.pid)
        lat, late, errors, total, wall = await drive_http(port, bodies, rate, seconds,
                                                          connections)  # fmt: skip
        cpu = (server_cpu_seconds(server.pid) - cpu0) / total * 1e6
        stalls = {k: v - stalls0[k] for k, v in (await server_stalls(port)).items()}
        results.append(Result(
            f"HTTP {variant} at {rate:,.0f}/s (run {k + 1})", total / wall,
            pct(lat, 0.5), pct(lat, 0.99),
            f"{total} requests in {wall:.1f} s, {errors} errors, max {max(lat) / 1000:.1f} ms, "
            f"server CPU {cpu:.0f} µs/request, server stalls {stalls['lag']} loop lag and "
            f"{stalls['gc']} GC pauses > 10 ms; "
            f"from due time p50 {pct(late, 0.5):.0f} µs, p99 {pct(late, 0.99):.0f} µs"))  # fmt: skip
    return results


async def server_stalls(port: int) -> dict[str, int]:
    """What in the server itself may hold requests up, counted so far: event-loop lag
    samples and GC pauses over 10 ms (sipcc_event_loop_lag_seconds, sipcc_gc_pause_seconds,
    from its /metrics). The bench reports the difference over each run."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = (await r.read()).decode(errors="replace")
    w.close()
    out = {}
    for key, name in (("lag", "sipcc_event_loop_lag_seconds"), ("gc", "sipcc_gc_pause_seconds")):
        under = total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "_bucket{"):
                value = float(line.rsplit(" ", 1)[1])
                if 'le="0.01"' in line:
                    under += value
                elif 'le="+Inf"' in line:
                    total += value
        out[key] = round(total - under)
    return out


async def wait_ready(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sipcc api exited: {server.stderr.read().decode()[-2000:]}")
        with contextlib.suppress(OSError):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            ok = (await r.read(12)).endswith(b"200")
            w.close()
            if ok:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("sipcc api did not start in 30 s")


def swap_red_middleware() -> None:
    from services import api
    from services.api import RedMiddleware

    original = api.create_app

    def create_app(node):
        app = original(node)
        app.user_middleware.clear()
        app.add_middleware(RedMiddleware)
        return app

    api.create_app = create_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per in-process run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best is reported")
    ap.add_argument("--calls", type=int, default=50_000, help="distinct calls in the mix")
    ap.add_argument("--concurrency", default="1,64",
                    help="coroutines deciding at once, with admission (a comma list)")
    ap.add_argument("--http-rate", type=float, default=2000.0)
    ap.add_argument("--http-seconds", type=float, default=10.0)
    ap.add_argument("--http-connections", type=int, default=32)
    ap.add_argument("--no-scale", action="store_true", help="no synthetic NANPA-size tables")
    ap.add_argument("--cpu", type=int, default=None, help="pin the in-process runs to this core")
    ap.add_argument("--http-variant", choices=("as-is", "asgi-red"), default="as-is",
                    help="asgi-red: the same server with services/api.py's RED middleware "
                    "swapped for the pure-ASGI one below (an experiment, not the product)")
    ap.add_argument("--no-pin", action="store_true",
                    help="HTTP: server and client share every core instead of one each")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args()

    inv = bench_inventory(scale=not args.no_scale)
    calls = call_mix(args.calls)
    kinds: dict[str, int] = {}
    for c in calls:
        d = decide(inv, c)
        key = d.action if d.action != "forward" else d.jurisdiction or "?"
        kinds[key] = kinds.get(key, 0) + 1
    print(f"call mix ({len(calls)} calls): "
          + ", ".join(f"{k} {v * 100 / len(calls):.0f}%" for k, v in sorted(kinds.items())))  # fmt: skip
    print(f"reference data: {len(inv.refdata.codes):,} NPA-NXX, {len(inv.refdata.blocks):,} blocks")
    cpus = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else cpus[-1]
    report: list[Result] = []

    os.sched_setaffinity(0, {cpu})
    runs = [run_in_process(inv, calls, args.seconds) for _ in range(args.repeat)]
    for r in runs:
        print("  " + r.line())
    report.append(max(runs, key=lambda r: r.rate))
    if not args.skip_redis:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            runs = [asyncio.run(run_with_admission(inv, calls, args.seconds, concurrency))
                    for _ in range(args.repeat)]  # fmt: skip
            for r in runs:
                print("  " + r.line())
            report.append(max(runs, key=lambda r: r.rate))
    os.sched_setaffinity(0, set(cpus))
    if not args.skip_http:
        runs = run_http(calls, args.http_rate, args.http_seconds, args.repeat,
                        args.http_connections, args.http_variant, pin=not args.no_pin)
        for r in runs:
            print("  " + r.line())
        report.append(min(runs, key=lambda r: r.p99_us))
    print(f"\nbest of {args.repeat} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, pinned to cpu {cpu}):")  # fmt: skip
    for r in report:
        print(r.line())


if __name__ == "__main__":
    main()
