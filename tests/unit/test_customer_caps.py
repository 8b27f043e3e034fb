"""Per-customer toll-fraud caps (rater/caps.py) and spend velocity (rater/credit.py,
services/spend.py) as pure logic: the in-process counters with an injected clock.
docs/SECURITY.md, "Toll fraud"; rule A7 (traffic that jeopardizes the network)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.admission import LocalSlots
from rater.caps import CustomerCaps, LocalRate, cps_refusal, lease_key
from rater.credit import CreditGuard, biggest, spend_minutes
from services import metrics
from services.inventory import Customer, Inventory
from services.spend import SpendSampler


def customer(cid: str = "acme", *, concurrent: int | None = None, cps: int | None = None):
    return Customer(id=cid, name=cid, status="active", rate_plan_id="std", credit_limit=None,
                    max_concurrent_calls=concurrent, max_calls_per_second=cps)  # fmt: skip


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def caps(clock: Clock) -> CustomerCaps:
    return CustomerCaps(LocalSlots(120, clock=clock), LocalRate(clock=clock))


@pytest.mark.rule("A7")
async def test_concurrent_cap_counts_the_customer_not_the_call_or_trunk_group() -> None:
    c = caps(Clock())
    acme = customer(concurrent=2)
    assert await c.admit(acme, "call-1") == (None, True)
    assert await c.admit(acme, "call-2") == (None, True)
    refusal, held = await c.admit(acme, "call-3")
    assert not held and refusal is not None
    assert refusal.cause == "customer_concurrent" and "cap of 2 concurrent calls" in refusal.reason
    # Another customer has its own cap.
    assert await c.admit(customer("beta", concurrent=1), "call-4") == (None, True)
    # A call that ends gives its lease back, once; then the next call gets it.
    assert await c.release("acme", "call-1") is True
    assert await c.release("acme", "call-1") is False
    assert await c.admit(acme, "call-3") == (None, True)
    assert await c.slots.in_use(lease_key("acme")) == 2


@pytest.mark.rule("A7")
async def test_no_caps_take_no_lease_and_count_nothing() -> None:
    c = caps(Clock())
    for n in range(50):
        assert await c.admit(customer(), f"call-{n}") == (None, False)
    assert await c.slots.in_use(lease_key("acme")) == 0


@pytest.mark.rule("A7")
async def test_calls_per_second_cap_resets_each_second() -> None:
    clock = Clock(1000.2)
    c = caps(clock)
    acme = customer(cps=3)
    got = [(await c.admit(acme, f"a{n}"))[0] for n in range(5)]
    assert got[:3] == [None] * 3
    assert [r.cause for r in got[3:]] == ["customer_cps"] * 2  # type: ignore[union-attr]
    assert got[3].retry_after == 1  # type: ignore[union-attr]
    clock.t = 1001.0  # the next second
    assert (await c.admit(acme, "b0"))[0] is None


@pytest.mark.rule("A7")
async def test_a_call_refused_per_second_takes_no_concurrent_lease() -> None:
    c = caps(Clock())
    acme = customer(concurrent=5, cps=1)
    assert await c.admit(acme, "a") == (None, True)
    refusal, held = await c.admit(acme, "b")
    assert refusal is not None and refusal.cause == "customer_cps" and not held
    assert await c.slots.in_use(lease_key("acme")) == 1


@given(cap=st.integers(1, 50), count=st.integers(1, 100))
def test_cps_refusal_only_above_the_cap(cap: int, count: int) -> None:
    refusal = cps_refusal(customer(cps=cap), count)
    assert (refusal is None) == (count <= cap)


def test_local_rate_memory_stays_bounded() -> None:
    clock = Clock(5.0)
    rate = LocalRate(clock=clock)

    async def run() -> None:
        for n in range(25_000):
            clock.t = 5.0 + n // 1000  # a thousand customers a second
            await rate.tick(f"c{n}")

    asyncio.run(run())
    assert len(rate._counts) <= 10_001


# --- spend velocity ---------------------------------------------------------------------


def test_spend_window_is_the_last_sixty_minutes_newest_first() -> None:
    now = datetime(2026, 3, 1, 0, 30, 59, tzinfo=UTC)
    minutes = spend_minutes(now)
    assert len(minutes) == 60 and len(set(minutes)) == 60
    assert minutes[0] == "202603010030" and minutes[-1] == "202602282331"


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(-5, 10**9)), max_size=20),
       st.integers(0, 10))  # fmt: skip
def test_biggest_are_the_largest_positive_totals_in_order(totals, n) -> None:
    totals = list(dict(totals).items())
    top = biggest(totals, n)
    assert len(top) == min(n, sum(u > 0 for _, u in totals))
    assert [u for _, u in top] == sorted((u for _, u in top), reverse=True)
    rest = [u for c, u in totals if (c, u) not in top and u > 0]
    if top:
        assert all(u <= top[-1][1] for u in rest)
    else:
        assert rest == [] or n == 0


class WallClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_spend_counts_the_last_hour_and_forgets_older_minutes() -> None:
    clock = WallClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    guard = CreditGuard.local(lambda: Inventory(), clock=clock)
    before = metrics.rated_amount_dollars_total._value.get()
    await guard.add_usage("old", Decimal("90.00000"))
    clock.at += timedelta(minutes=30)
    await guard.add_usage("acme", Decimal("1.25000"))
    await guard.add_usage("acme", Decimal("0.00120"))
    await guard.add_usage("beta", Decimal("2.00000"))
    await guard.add_usage("zero", Decimal("0"))
    assert await guard.top_spenders(5) == [
        ("old", Decimal("90.00000")), ("beta", Decimal("2.00000")), ("acme", Decimal("1.25120"))]
    clock.at += timedelta(minutes=31)  # "old" is now 61 minutes ago
    assert await guard.top_spenders(5) == [("beta", Decimal("2.00000")), ("acme", Decimal("1.25120"))]
    assert await guard.top_spenders(1) == [("beta", Decimal("2.00000"))]
    assert metrics.rated_amount_dollars_total._value.get() - before == pytest.approx(93.2512)
    # The month's unbilled usage (A6) is the same add: both are kept.
    assert await guard.usage("acme") == Decimal("1.25120")


async def test_spend_sampler_names_only_the_top_and_removes_who_left_it() -> None:
    clock = WallClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    guard = CreditGuard.local(lambda: Inventory(), clock=clock)
    sampler = SpendSampler(guard, top=2)
    for cid, amount in (("s-a", "5.00000"), ("s-b", "3.00000"), ("s-c", "1.00000")):
        await guard.add_usage(cid, Decimal(amount))
    await sampler.sample()

    def series() -> dict[str, float]:
        return {s.labels["customer"]: s.value
                for m in metrics.customer_spend_last_hour.collect() for s in m.samples
                if s.labels["customer"].startswith("s-")}  # fmt: skip

    assert series() == {"s-a": 5.0, "s-b": 3.0}
    await guard.add_usage("s-c", Decimal("10.00000"))
    await sampler.sample()
    assert series() == {"s-c": 11.0, "s-a": 5.0}
    clock.at += timedelta(hours=2)
    await sampler.sample()
    assert series() == {}
