"""Per-customer toll-fraud caps against the real Redis from two clients at once (two edges),
and fail-open admission when Redis cannot be reached (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from rater.admission import REDIS_DOWN, FailOpen, FailOpenSlots, LocalSlots, RedisSlots
from rater.caps import CustomerCaps, FailOpenRate, LocalRate, RedisRate, lease_key
from services import metrics, redisconn
from services.inventory import Customer
from tests.conftest import REDIS_URL
from tests.support.node import free_port


def customer(cid: str, *, concurrent: int | None = None, cps: int | None = None) -> Customer:
    return Customer(id=cid, name=cid, status="active", rate_plan_id="std", credit_limit=None,
                    max_concurrent_calls=concurrent, max_calls_per_second=cps)  # fmt: skip


@pytest.fixture
async def two_edges(redis_prefix):
    clients = [redisconn.connect(REDIS_URL) for _ in range(2)]
    prefix = f"{redis_prefix}caps-{uuid.uuid4().hex[:6]}:"
    yield [CustomerCaps(RedisSlots(c, prefix, 30), RedisRate(c, prefix)) for c in clients], prefix
    for c in clients:
        await c.aclose()


@pytest.mark.rule("A7")
async def test_concurrent_cap_holds_across_two_edges_racing(two_edges, redis_client) -> None:
    edges, prefix = two_edges
    acme = customer(f"acme-{uuid.uuid4().hex[:6]}", concurrent=3)
    # 40 calls at once, half on each edge (their trunk groups do not matter: one customer).
    got = await asyncio.gather(*(edges[n % 2].admit(acme, f"call-{n}") for n in range(40)))
    held = [n for n, (refusal, lease) in enumerate(got) if lease]
    assert len(held) == 3
    assert all(r is not None and r.cause == "customer_concurrent" for r, lease in got if not lease)
    key = f"{prefix}slots:{lease_key(acme.id)}"
    assert await redis_client.zcard(key) == 3
    # Released from the other edge than the one that took it: still exactly once.
    first = held[0]
    assert await edges[(first + 1) % 2].release(acme.id, f"call-{first}") is True
    assert await edges[first % 2].release(acme.id, f"call-{first}") is False
    assert await redis_client.zcard(key) == 2
    refusal, lease = await edges[0].admit(acme, "call-late")
    assert refusal is None and lease


@pytest.mark.rule("A7")
async def test_calls_per_second_counted_exactly_across_two_edges(two_edges) -> None:
    edges, _ = two_edges
    cap = 5
    acme = customer(f"acme-{uuid.uuid4().hex[:6]}", cps=cap)
    counts = await asyncio.gather(*(edges[n % 2].rate.tick(acme.id) for n in range(30)))
    # One count per call, none lost: each second's counts are 1..k (a burst may straddle a
    # second), so exactly `cap` calls per second started are admitted.
    seen = Counter(counts)
    assert sum(seen.values()) == 30
    assert all(seen[n] <= seen[n - 1] for n in seen if n > 1)
    windows = seen[1]  # how many seconds the burst touched
    assert 1 <= windows and sum(1 for n in counts if n <= cap) <= cap * windows


async def test_redis_unreachable_fail_open_counts_on_the_edge_then_releases_there() -> None:
    dead = redisconn.connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    try:
        with pytest.raises(REDIS_DOWN):  # fail-closed: the error reaches the edge (503)
            await RedisSlots(dead, "x:", 30).acquire("tg", "c0", 2)
        fail_open = FailOpen()
        slots = FailOpenSlots(RedisSlots(dead, "x:", 30), LocalSlots(30), fail_open)
        caps = CustomerCaps(slots, FailOpenRate(RedisRate(dead, "x:"), LocalRate(), fail_open))
        before = {p: metrics.admission_degraded_total.labels(part=p)._value.get()
                  for p in ("trunk_slots", "customer_calls", "customer_cps")}  # fmt: skip
        acme = customer("acme", concurrent=2, cps=10)
        # This edge alone still holds the trunk group to its channels and the customer to
        # its caps.
        assert [await slots.acquire("tg", f"c{n}", 2) for n in range(3)] == [True, True, False]
        assert [(await caps.admit(acme, f"c{n}"))[1] for n in range(3)] == [True, True, False]
        assert await slots.release("tg", "c0") is True  # released where it was taken
        assert await caps.release("acme", "c0") is True
        assert await slots.refresh([("tg", "c1"), (lease_key("acme"), "c1")]) == 2
        after = {p: metrics.admission_degraded_total.labels(part=p)._value.get() for p in before}
        assert after["trunk_slots"] - before["trunk_slots"] == 3
        assert after["customer_calls"] - before["customer_calls"] == 3
        assert after["customer_cps"] - before["customer_cps"] == 3
    finally:
        await dead.aclose()


async def test_spend_of_the_last_hour_summed_across_two_edges(redis_prefix) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from rater.credit import CreditGuard
    from services.inventory import Inventory

    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    prefix = f"{redis_prefix}spend-{uuid.uuid4().hex[:6]}:"
    clients = [redisconn.connect(REDIS_URL) for _ in range(2)]
    try:
        edges = [CreditGuard.redis(c, prefix, lambda: Inventory(), clock=lambda: now[0])
                 for c in clients]  # fmt: skip
        await edges[0].add_usage("early", Decimal("40.00000"))
        now[0] += timedelta(minutes=20)
        # 100 calls of acme rated at once, half on each edge: none lost.
        await asyncio.gather(*(edges[n % 2].add_usage("acme", Decimal("0.12345"))
                               for n in range(100)))  # fmt: skip
        await edges[1].add_usage("beta", Decimal("3.00000"))
        assert await edges[1].top_spenders(2) == [("early", Decimal("40.00000")),
                                                  ("acme", Decimal("12.34500"))]  # fmt: skip
        assert await edges[0].usage("acme") == Decimal("12.34500")  # A6's counter too
        now[0] += timedelta(minutes=45)  # "early" left the hour
        assert await edges[0].top_spenders(5) == [("acme", Decimal("12.34500")),
                                                  ("beta", Decimal("3.00000"))]  # fmt: skip
        ttl = await clients[0].ttl(edges[0].spend_key(now[0] - timedelta(minutes=45)))
        assert 0 < ttl <= 2 * 3600  # a bucket does not outlive the window long
    finally:
        for c in clients:
            await c.aclose()
