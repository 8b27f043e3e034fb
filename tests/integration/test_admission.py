"""Trunk slots in the real Redis (rule A1): atomic, released once, self-healing."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rater.admission import LocalSlots, RedisSlots


@pytest.fixture
def slots(redis_client, redis_prefix) -> RedisSlots:
    return RedisSlots(redis_client, redis_prefix + uuid.uuid4().hex[:6] + ":", ttl_seconds=30)


@pytest.mark.rule("A1")
async def test_limit_and_release_exactly_once(slots: RedisSlots) -> None:
    assert await slots.acquire("tg", "call-1", 2)
    assert await slots.acquire("tg", "call-2", 2)
    assert not await slots.acquire("tg", "call-3", 2)
    assert await slots.in_use("tg") == 2
    assert await slots.release("tg", "call-1") is True
    assert await slots.release("tg", "call-1") is False  # a second release frees nothing
    assert await slots.in_use("tg") == 1
    assert await slots.acquire("tg", "call-3", 2)
    assert not await slots.acquire("tg", "call-4", 2)


@pytest.mark.rule("A1")
async def test_acquire_is_idempotent_per_call(slots: RedisSlots) -> None:
    assert await slots.acquire("tg", "call-1", 1)
    assert await slots.acquire("tg", "call-1", 1)  # an INVITE retransmission re-asks
    assert await slots.in_use("tg") == 1


@pytest.mark.rule("A1")
async def test_zero_trunks_admit_nothing(slots: RedisSlots) -> None:
    assert not await slots.acquire("tg", "call-1", 0)


@pytest.mark.rule("A1")
async def test_concurrent_acquisitions_never_exceed_the_limit(slots: RedisSlots) -> None:
    results = await asyncio.gather(*(slots.acquire("tg", f"c{i}", 10) for i in range(200)))
    assert sum(results) == 10
    assert await slots.in_use("tg") == 10
    admitted = [f"c{i}" for i, ok in enumerate(results) if ok]
    released = await asyncio.gather(*(slots.release("tg", c) for c in admitted * 2))
    assert sum(released) == 10
    assert await slots.in_use("tg") == 0


@pytest.mark.rule("A1")
async def test_unrefreshed_lease_expires(redis_client, redis_prefix) -> None:
    short = RedisSlots(redis_client, redis_prefix + "ttl:", ttl_seconds=0.3)
    assert await short.acquire("tg", "crashed", 1)
    assert not await short.acquire("tg", "next", 1)
    await asyncio.sleep(0.4)
    assert await short.acquire("tg", "next", 1)  # the crashed holder's slot freed itself


@pytest.mark.rule("A1")
async def test_refresh_keeps_a_live_call(redis_client, redis_prefix) -> None:
    short = RedisSlots(redis_client, redis_prefix + "refresh:", ttl_seconds=0.4)
    assert await short.acquire("tg", "live", 1)
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert await short.refresh([("tg", "live")]) == 1
    assert not await short.acquire("tg", "other", 1)
    assert await short.refresh([("tg", "gone")]) == 0  # refresh never creates a lease


@pytest.mark.rule("A1")
async def test_local_slots_behave_the_same() -> None:
    now = [0.0]
    local = LocalSlots(ttl_seconds=10, clock=lambda: now[0])
    assert await local.acquire("tg", "a", 1)
    assert not await local.acquire("tg", "b", 1)
    assert await local.release("tg", "a") and not await local.release("tg", "a")
    assert await local.acquire("tg", "b", 1)
    now[0] = 11
    assert await local.acquire("tg", "c", 1)  # b's lease expired
