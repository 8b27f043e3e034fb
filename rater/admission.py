"""Trunk slots (rule A1): one concurrent call per trunk, as leases in Redis.

A trunk group's calls are a sorted set `{prefix}slots:{trunk_group}` of call ids scored by
lease expiry (Redis server time, ms). Acquire, refresh and release are Lua scripts, so each
is atomic across every edge sharing the Redis: acquire drops expired leases, then admits
only under the limit; release removes the call's member and says whether it was there, so a
slot is released exactly once however many times the edge tries. A crashed edge's leases
are not refreshed and expire by themselves: counters never stay high, and being a set
they can never go negative.

When Redis cannot be reached, SIPCC_ADMISSION_ON_REDIS_DOWN says what the edge does:
fail-closed (the default: the error reaches the edge, which answers 503) or fail-open
(`FailOpenSlots`: this edge counts leases in its own memory until Redis answers again, so
each edge alone holds a trunk group to its channels — N edges may admit up to N times
them). docs/SECURITY.md, "Degraded dependencies".
"""

from __future__ import annotations

import time
from hashlib import sha1
from typing import Protocol

import redis.asyncio as aioredis

from services import logs, metrics
from services.ratelimit import KeyedBuckets
from services.redisbatch import batcher_for

log = logs.get("admission")

# What "Redis is unreachable" looks like from redis-py (a refused or dropped connection, a
# timeout, no free connection in the pool): not a Lua or data error, which stay errors.
REDIS_DOWN = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)

_ACQUIRE = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
"""

_REFRESH = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local n = 0
for i = 1, #KEYS do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', ms + tonumber(ARGV[1]), ARGV[i + 1]) == 1 then
    n = n + 1
  end
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]) * 2)
end
return n
"""


class SlotStore(Protocol):
    async def acquire(self, trunk_group: str, call_id: str, limit: int) -> bool: ...
    async def release(self, trunk_group: str, call_id: str) -> bool: ...
    async def refresh(self, leases: list[tuple[str, str]]) -> int: ...
    async def in_use(self, trunk_group: str) -> int: ...


class RedisSlots:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl_seconds: float) -> None:
        self._r = batcher_for(client)
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000)
        self._acquire_sha = sha1(_ACQUIRE.encode()).hexdigest()
        self._refresh_sha = sha1(_REFRESH.encode()).hexdigest()

    def key(self, trunk_group: str) -> str:
        return f"{self._prefix}slots:{trunk_group}"

    async def acquire(self, trunk_group: str, call_id: str, limit: int) -> bool:
        if limit <= 0:
            return False
        got = await self._r.eval(
            _ACQUIRE, self._acquire_sha, [self.key(trunk_group)], [call_id, limit, self._ttl_ms]
        )
        return got == 1

    async def release(self, trunk_group: str, call_id: str) -> bool:
        return await self._r.execute("ZREM", self.key(trunk_group), call_id) == 1

    async def refresh(self, leases: list[tuple[str, str]]) -> int:
        if not leases:
            return 0
        keys = [self.key(tg) for tg, _ in leases]
        return await self._r.eval(
            _REFRESH, self._refresh_sha, keys, [self._ttl_ms, *[c for _, c in leases]]
        )

    async def in_use(self, trunk_group: str) -> int:
        now_ms = int(time.time() * 1000)
        return await self._r.execute("ZCOUNT", self.key(trunk_group), now_ms, "+inf")


class LocalSlots:
    """The same leases in this process's memory: only for a single-process node without Redis."""

    def __init__(self, ttl_seconds: float, clock=time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._groups: dict[str, dict[str, float]] = {}

    def _live(self, trunk_group: str) -> dict[str, float]:
        now = self._clock()
        group = self._groups.setdefault(trunk_group, {})
        for call_id in [c for c, exp in group.items() if exp <= now]:
            del group[call_id]
        return group

    async def acquire(self, trunk_group: str, call_id: str, limit: int) -> bool:
        group = self._live(trunk_group)
        if call_id not in group and len(group) >= limit:
            return False
        group[call_id] = self._clock() + self._ttl
        return True

    async def release(self, trunk_group: str, call_id: str) -> bool:
        return self._groups.get(trunk_group, {}).pop(call_id, None) is not None

    async def refresh(self, leases: list[tuple[str, str]]) -> int:
        n = 0
        for tg, call_id in leases:
            group = self._groups.get(tg, {})
            if call_id in group:
                group[call_id] = self._clock() + self._ttl
                n += 1
        return n

    async def in_use(self, trunk_group: str) -> int:
        return len(self._live(trunk_group))


class FailOpen:
    """The record of each admission made without Redis: counted per part, logged at most
    once per part per 10 s (a busy edge would otherwise log every call)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._log = KeyedBuckets(rate=0.1, burst=1, max_keys=16)

    def degraded(self, part: str, exc: BaseException) -> None:
        metrics.admission_degraded_total.labels(part=part).inc()
        if self._log.take(part, self._clock()):
            log.warning("admission_fail_open", part=part, error=repr(exc),
                        note="Redis unreachable: admitted on this edge's own counts")  # fmt: skip


class FailOpenSlots:
    """Leases in Redis; while it is unreachable, in this edge's `LocalSlots`. A lease taken
    locally is released and refreshed locally (it was never in Redis)."""

    def __init__(self, shared: SlotStore, local: LocalSlots, fail_open: FailOpen) -> None:
        self.shared = shared
        self.local = local
        self.fail_open = fail_open
        self._local_leases: set[tuple[str, str]] = set()

    async def acquire(self, trunk_group: str, call_id: str, limit: int) -> bool:
        try:
            return await self.shared.acquire(trunk_group, call_id, limit)
        except REDIS_DOWN as exc:
            part = "customer_calls" if trunk_group.startswith("customer:") else "trunk_slots"
            self.fail_open.degraded(part, exc)
        got = await self.local.acquire(trunk_group, call_id, limit)
        if got:
            self._local_leases.add((trunk_group, call_id))
        return got

    async def release(self, trunk_group: str, call_id: str) -> bool:
        if (trunk_group, call_id) in self._local_leases:
            self._local_leases.discard((trunk_group, call_id))
            return await self.local.release(trunk_group, call_id)
        return await self.shared.release(trunk_group, call_id)

    async def refresh(self, leases: list[tuple[str, str]]) -> int:
        mine = [lease for lease in leases if lease in self._local_leases]
        n = await self.local.refresh(mine)
        return n + await self.shared.refresh([ls for ls in leases if ls not in self._local_leases])

    async def in_use(self, trunk_group: str) -> int:
        return await self.shared.in_use(trunk_group)
