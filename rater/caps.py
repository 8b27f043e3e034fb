"""Toll-fraud caps per customer: concurrent calls and new calls per second across all of a
customer's trunk groups, shared by every edge (docs/SECURITY.md, "Toll fraud").

A hijacked PBX pumps calls to expensive destinations over every trunk group its customer
has; the trunk groups' channels (A1) alone would let it use all of them at once. The
concurrent cap is a lease set like a trunk group's slots — the same SlotStore, Lua scripts
and lease refresh (rater/admission.py), under the member key `customer:<id>` — so it is
released exactly once, expires with a crashed edge, and never goes negative. The
per-second cap is a counter per customer per second of Redis server time (every edge
counts in the same window whatever its clock). It is a fixed window: at a second's
boundary up to twice the cap can start within one second, which is fine for its purpose
(stopping a pump of hundreds per second) and costs one round trip.

911 never reaches these checks (E7). Refusals are 503: like a trunk group's full channels
(A1) they say "not now", and a PBX with another route tries it (Decision in
docs/SECURITY.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from hashlib import sha1
from typing import Protocol

import redis.asyncio as aioredis

from rater.admission import REDIS_DOWN, FailOpen, SlotStore
from services.inventory import Customer
from services.redisbatch import batcher_for

# The key of the second is built in the script from the server's clock: all edges agree.
_TICK = """
local now = redis.call('TIME')
local key = KEYS[1] .. ':' .. now[1]
local n = redis.call('INCR', key)
if n == 1 then redis.call('EXPIRE', key, 2) end
return n
"""


class RateCounter(Protocol):
    async def tick(self, customer_id: str) -> int:
        """Count one new call of the customer; the count of the current second."""
        ...


class RedisRate:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._r = batcher_for(client)
        self._prefix = prefix
        self._sha = sha1(_TICK.encode()).hexdigest()

    async def tick(self, customer_id: str) -> int:
        return int(await self._r.eval(_TICK, self._sha, [f"{self._prefix}cps:{customer_id}"], []))


class LocalRate:
    """The same count in this process's memory (no Redis, or Redis down with fail-open)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}

    async def tick(self, customer_id: str) -> int:
        second = int(self._clock())
        if len(self._counts) > 10_000:  # old seconds only: the table stays bounded
            self._counts = {c: v for c, v in self._counts.items() if v[0] == second}
        at, n = self._counts.get(customer_id, (second, 0))
        n = n + 1 if at == second else 1
        self._counts[customer_id] = (second, n)
        return n


class FailOpenRate:
    """Redis' count; while Redis is unreachable, this edge's own (fail-open)."""

    def __init__(self, shared: RateCounter, local: LocalRate, fail_open: FailOpen) -> None:
        self.shared, self.local, self.fail_open = shared, local, fail_open

    async def tick(self, customer_id: str) -> int:
        try:
            return await self.shared.tick(customer_id)
        except REDIS_DOWN as exc:
            self.fail_open.degraded("customer_cps", exc)
        return await self.local.tick(customer_id)


def lease_key(customer_id: str) -> str:
    """The customer's lease set among the trunk groups' (a trunk group id has no ':')."""
    return f"customer:{customer_id}"


@dataclass(frozen=True, slots=True)
class Refusal:
    cause: str  # the metric's label: customer_cps, customer_concurrent
    reason: str
    retry_after: int | None = None


def cps_refusal(customer: Customer, count: int) -> Refusal | None:
    cap = customer.max_calls_per_second
    if cap is None or count <= cap:
        return None
    return Refusal("customer_cps", f"customer {customer.id} is over its cap of {cap} new calls "
                   "per second", retry_after=1)  # fmt: skip


def concurrent_refusal(customer: Customer) -> Refusal:
    return Refusal("customer_concurrent", f"customer {customer.id} has its cap of "
                   f"{customer.max_concurrent_calls} concurrent calls up")  # fmt: skip


class CustomerCaps:
    def __init__(self, slots: SlotStore, rate: RateCounter) -> None:
        self.slots = slots
        self.rate = rate

    async def admit(self, customer: Customer, call_id: str) -> tuple[Refusal | None, bool]:
        """(the refusal or None, whether a concurrent-call lease is now held for the call)."""
        if customer.max_calls_per_second is not None:
            refusal = cps_refusal(customer, await self.rate.tick(customer.id))
            if refusal is not None:
                return refusal, False
        cap = customer.max_concurrent_calls
        if cap is None:
            return None, False
        if not await self.slots.acquire(lease_key(customer.id), call_id, cap):
            return concurrent_refusal(customer), False
        return None, True

    async def release(self, customer_id: str, call_id: str) -> bool:
        return await self.slots.release(lease_key(customer_id), call_id)
