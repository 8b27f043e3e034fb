"""Admission against the real Redis from several processes: trunk slots (A1) never
oversubscribed and self-healing after a SIGKILL; the credit counter (A6) exact under
concurrency and reconciled from Postgres."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from rater.admission import RedisSlots
from rater.credit import CreditGuard
from rater.decision import CallFacts, decide
from services import inventory, provision, redisconn
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
TRUNKS = 10
PROCESSES = 4
CALLS_PER_PROCESS = 50  # 200 calls in all


def _contender(url: str, prefix: str, index: int, barrier, results) -> None:
    """One edge process: its own event loop and Redis client, 50 calls started at once,
    each retrying until it gets a slot, holding it briefly, then releasing it."""

    async def main() -> None:
        client = redisconn.connect(url)
        slots = RedisSlots(client, prefix, ttl_seconds=30)
        rng = random.Random(index)
        await client.ping()  # connected before the start, so the start is simultaneous
        await asyncio.to_thread(barrier.wait)

        async def call(n: int) -> tuple[int, int]:
            call_id = f"p{index}-c{n}"
            while True:
                if await slots.acquire("tg", call_id, TRUNKS):
                    break
                await asyncio.sleep(rng.uniform(0.001, 0.005))
            await asyncio.sleep(rng.uniform(0.005, 0.02))  # the call is up
            released = await slots.release("tg", call_id)
            again = await slots.release("tg", call_id)  # a duplicate BYE frees nothing
            return int(released), int(again)

        outcome = await asyncio.gather(*(call(n) for n in range(CALLS_PER_PROCESS)))
        await client.aclose()
        results.put((index, sum(r for r, _ in outcome), sum(a for _, a in outcome)))

    asyncio.run(main())


def _holder(url: str, prefix: str, ready, refresh_every: float) -> None:
    """An edge that takes every slot and keeps its leases alive until it is killed."""

    async def main() -> None:
        client = redisconn.connect(url)
        slots = RedisSlots(client, prefix, ttl_seconds=1)
        leases = [("tg", f"held-{n}") for n in range(TRUNKS)]
        for tg, call_id in leases:
            assert await slots.acquire(tg, call_id, TRUNKS)
        ready.set()
        while True:
            await asyncio.sleep(refresh_every)
            await slots.refresh(leases)

    asyncio.run(main())


@pytest.mark.rule("A1")
@pytest.mark.timeout(120)
async def test_200_calls_from_4_processes_never_exceed_10_slots(redis_client, redis_prefix) -> None:
    prefix = f"{redis_prefix}conc-{uuid.uuid4().hex[:6]}:"
    key = RedisSlots(redis_client, prefix, 30).key("tg")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(REDIS_URL, prefix, i, barrier, results))
             for i in range(PROCESSES)]  # fmt: skip
    for p in procs:
        p.start()
    await asyncio.to_thread(barrier.wait, 60)
    samples: list[int] = []
    deadline = time.monotonic() + 90
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        samples.append(await redis_client.zcard(key))
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    outcome = [results.get(timeout=5) for _ in procs]
    assert len(samples) > 100  # the sampler really watched the run
    assert max(samples) <= TRUNKS, max(samples)
    assert max(samples) == TRUNKS  # and the trunk group was really full at times
    assert sum(o[1] for o in outcome) == PROCESSES * CALLS_PER_PROCESS  # each released once
    assert sum(o[2] for o in outcome) == 0  # second releases freed nothing
    assert await redis_client.zcard(key) == 0
    assert await RedisSlots(redis_client, prefix, 30).in_use("tg") == 0


@pytest.mark.rule("A1")
@pytest.mark.timeout(60)
async def test_sigkilled_holder_frees_its_slots_within_the_ttl(redis_client, redis_prefix) -> None:
    prefix = f"{redis_prefix}kill-{uuid.uuid4().hex[:6]}:"
    slots = RedisSlots(redis_client, prefix, ttl_seconds=1)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_holder, args=(REDIS_URL, prefix, ready, 0.25))
    holder.start()
    try:
        assert await asyncio.to_thread(ready.wait, 30)
        # Alive and refreshing, it keeps the trunks past the TTL.
        await asyncio.sleep(1.5)
        assert await slots.in_use("tg") == TRUNKS
        assert not await slots.acquire("tg", "newcomer", TRUNKS)
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.join(5)
        assert holder.exitcode == -signal.SIGKILL
        while not await slots.acquire("tg", "newcomer", TRUNKS):
            assert time.monotonic() - killed < 1.0 + 0.5, "slots still held after the TTL"
            await asyncio.sleep(0.02)
        freed_after = time.monotonic() - killed
        assert freed_after <= 1.5
        # The dead leases are gone, not negative: the set holds exactly the newcomer.
        assert await redis_client.zcard(slots.key("tg")) == 1
        assert await slots.in_use("tg") == 1
        assert await slots.release("tg", "newcomer") and await slots.in_use("tg") == 0
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join(5)


# --- A6: credit limit ---


@pytest.fixture
async def provisioned(pg):
    await provision.apply(pg, provision.load_file(ROOT / "examples" / "provision.yaml"))
    return await inventory.load(pg)


@pytest.mark.rule("A6")
async def test_credit_counter_is_exact_under_concurrency(redis_client, redis_prefix, provisioned) -> None:
    guard = CreditGuard.redis(redis_client, f"{redis_prefix}credit-{uuid.uuid4().hex[:6]}:",
                              lambda: provisioned)  # fmt: skip
    amounts = [Decimal("0.00120"), Decimal("0.33000"), Decimal("0.62900"), Decimal("0.00001")]
    await asyncio.gather(*(guard.add_usage("acme", amounts[i % 4]) for i in range(400)))
    assert await guard.usage("acme") == sum(amounts) * 100  # 96.05100, not a float near it
    assert await guard.allows("acme")  # limit 500.00000
    with pytest.raises(ValueError):
        await guard.add_usage("acme", Decimal("0.000001"))


@pytest.mark.rule("A6")
async def test_credit_reconciles_from_cdrs_and_blocks_over_the_limit(
    pg, redis_client, redis_prefix, provisioned
) -> None:
    inv = provisioned
    guard = CreditGuard.redis(redis_client, f"{redis_prefix}credit-{uuid.uuid4().hex[:6]}:",
                              lambda: inv)  # fmt: skip
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await guard.add_usage("acme", Decimal("3.00000"))  # drifted: Postgres says otherwise
    rows = [("r1", start + timedelta(hours=1), Decimal("400.00000")),
            ("r2", now - timedelta(seconds=1), Decimal("100.00001")),
            ("old", start - timedelta(days=1), Decimal("999.00000"))]  # last period's  # fmt: skip
    for call_id, started, amount in rows:
        await pg.execute("SELECT cdrs_ensure_partition($1::date)", started.date())
        await pg.execute(
            """INSERT INTO cdrs (call_id, customer_id, direction, dnis, started_at, ended_at,
                                 amount, disposition)
               VALUES ($1, 'acme', 'outbound', '+12125551234', $2, $2, $3, 'answered')""",
            call_id, started, amount,
        )  # fmt: skip
    totals = await guard.reconcile(pg)
    assert totals == {"acme": Decimal("500.00001")}
    assert await guard.usage("acme") == Decimal("500.00001")
    assert not await guard.allows("acme")
    d = decide(inv, CallFacts(dnis="+12125551234", ani="+17275550100", trunk_group_id="acme-main"))
    refused = await guard.admit(d)
    assert (refused.action, refused.sip_status, refused.rule) == ("reject", 403, "A6")
    assert "500.00001" in (refused.reason or "") and "500.00000" in (refused.reason or "")
    sos = decide(inv, CallFacts(dnis="911", ani="+17275550100", trunk_group_id="acme-main"))
    assert (await guard.admit(sos)).action == "emergency"  # E7
    # Usage added after the reconcile counts on top of it.
    await guard.add_usage("acme", Decimal("0.00120"))
    assert await guard.usage("acme") == Decimal("500.00121")
    # The previous period's counter is its own.
    assert await guard.reconcile(pg, ["acme"], at=start - timedelta(days=1)) == {
        "acme": Decimal("999.00000")}
