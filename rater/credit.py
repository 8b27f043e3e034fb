"""Credit limit (rule A6): a customer whose unbilled usage exceeds its approved credit level
gets no new calls — 911 excepted (E7).

Unbilled usage is the sum of the customer's rated calls since the start of the billing
period (the calendar month, UTC). It is kept in Redis as an integer count of 0.00001 USD
(the system's working precision), so increments are exact and atomic across every edge:
`{prefix}credit:{customer}:{YYYY-MM}`. The CDR path adds each rated call's amount
(`add_usage`); `reconcile` resets the counter from Postgres' `cdrs`, the record of truth,
to heal anything lost (a Redis restart, a crash between a call's end and its increment).

Reconcile reads the counter, sums the CDRs, then adds the difference with INCRBY: usage
added while Postgres was being read is kept. Calls published but not yet written by the
CDR writer at that moment are missing until the next reconcile (an undercount of a few
milliseconds of traffic, never a double count).

Spend velocity (docs/SECURITY.md, "Toll fraud"): `add_usage` also adds the amount to a
per-minute sorted set of customers, `{prefix}spend:{YYYYmmddHHMM}` (minute of the rating,
UTC, kept two hours); `top_spenders` sums the last 60 of them for the few customers who
spent most in the last hour (services/spend.py exports them for the alert).

Without Redis (a single dev process), `CreditGuard.local()` keeps the counters in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from rater.decision import Decision
from services import metrics
from services.inventory import Inventory
from services.redisbatch import batcher_for

UNIT = Decimal("0.00001")
_SCALE = 100_000
# A period's counter outlives the period long enough to be read while it is invoiced.
COUNTER_TTL_SECONDS = 70 * 86400


def to_units(amount: Decimal) -> int:
    """Dollars → integer units of 0.00001, exactly (amounts are 5-place Decimals)."""
    scaled = amount * _SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than 5 decimal places")
    return int(scaled)


def from_units(units: int) -> Decimal:
    return (Decimal(units) / _SCALE).quantize(UNIT)


def period_start(at: datetime) -> datetime:
    """The start of the billing period `at` falls in: the first of its month, UTC."""
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def over_limit(usage: Decimal, limit: Decimal | None) -> bool:
    """A6: blocked once usage *exceeds* the approved level; no limit means no block."""
    return limit is not None and usage > limit


SPEND_WINDOW_MINUTES = 60
_SPEND_TTL_SECONDS = 2 * 3600


def spend_minutes(now: datetime, minutes: int = SPEND_WINDOW_MINUTES) -> list[str]:
    """The minute buckets of the sliding window ending at `now`, newest first."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return [f"{now - timedelta(minutes=i):%Y%m%d%H%M}" for i in range(minutes)]


def biggest(totals: Iterable[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """The `n` largest positive totals, largest first (ties by customer id)."""
    return sorted(((c, u) for c, u in totals if u > 0), key=lambda t: (-t[1], t[0]))[:n]


class _RedisCounters:
    def __init__(self, client: aioredis.Redis) -> None:
        self._r = batcher_for(client)

    async def get(self, key: str) -> int:
        value = await self._r.execute("GET", key)
        return int(value) if value is not None else 0

    async def incr(self, key: str, units: int) -> int:
        total, _ = await _gather(
            self._r.execute("INCRBY", key, units),
            self._r.execute("EXPIRE", key, COUNTER_TTL_SECONDS),
        )
        return int(total)

    async def add_spend(self, key: str, customer_id: str, units: int) -> None:
        await _gather(
            self._r.execute("ZINCRBY", key, units, customer_id),
            self._r.execute("EXPIRE", key, _SPEND_TTL_SECONDS),
        )

    async def spend_totals(self, keys: list[str]) -> list[tuple[str, int]]:
        got = await self._r.execute("ZUNION", len(keys), *keys, "WITHSCORES")
        # The server's own reply: [member, score] pairs under RESP3, flat under RESP2.
        pairs = got if got and isinstance(got[0], list) else zip(got[::2], got[1::2], strict=True)
        return [(_text(member), round(float(score))) for member, score in pairs]


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class _LocalCounters:
    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._spend: dict[str, dict[str, int]] = {}

    async def add_spend(self, key: str, customer_id: str, units: int) -> None:
        if key not in self._spend and len(self._spend) >= 2 * SPEND_WINDOW_MINUTES:
            del self._spend[min(self._spend)]  # the oldest minute: memory stays bounded
        minute = self._spend.setdefault(key, {})
        minute[customer_id] = minute.get(customer_id, 0) + units

    async def spend_totals(self, keys: list[str]) -> list[tuple[str, int]]:
        out: dict[str, int] = {}
        for key in keys:
            for cid, units in self._spend.get(key, {}).items():
                out[cid] = out.get(cid, 0) + units
        return list(out.items())

    async def get(self, key: str) -> int:
        return self._values.get(key, 0)

    async def incr(self, key: str, units: int) -> int:
        self._values[key] = self._values.get(key, 0) + units
        return self._values[key]


async def _gather(*futures):
    return [await f for f in futures]


class CreditGuard:
    """The A6 check the edge runs after `decide()` (like the trunk slot), and the usage
    counter the CDR path feeds."""

    def __init__(
        self,
        counters: _RedisCounters | _LocalCounters,
        prefix: str,
        inventory: Callable[[], Inventory],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._c = counters
        self._prefix = prefix
        self._inventory = inventory
        self._clock = clock

    @classmethod
    def redis(
        cls, client: aioredis.Redis, prefix: str, inventory: Callable[[], Inventory], **kw
    ) -> CreditGuard:
        return cls(_RedisCounters(client), prefix, inventory, **kw)

    @classmethod
    def local(cls, inventory: Callable[[], Inventory], **kw) -> CreditGuard:
        return cls(_LocalCounters(), "", inventory, **kw)

    def key(self, customer_id: str, at: datetime | None = None) -> str:
        start = period_start(at or self._clock())
        return f"{self._prefix}credit:{customer_id}:{start:%Y-%m}"

    async def usage(self, customer_id: str, at: datetime | None = None) -> Decimal:
        """Unbilled usage of the period `at` (default: now) falls in."""
        return from_units(await self._c.get(self.key(customer_id, at)))

    async def add_usage(
        self, customer_id: str, amount: Decimal, at: datetime | None = None
    ) -> Decimal:
        """Add a rated call's amount to the period of its start (`at`, default now);
        returns the period's new total. Zero amounts cost no round trip."""
        if not amount:
            return await self.usage(customer_id, at)
        units = to_units(amount)
        metrics.rated_amount_dollars_total.inc(float(amount))
        total, _ = await _gather(
            self._c.incr(self.key(customer_id, at), units),
            # Velocity counts money when it is rated (a long call's whole amount now).
            self._c.add_spend(self.spend_key(self._clock()), customer_id, units),
        )
        return from_units(total)

    def spend_key(self, at: datetime) -> str:
        return f"{self._prefix}spend:{spend_minutes(at, 1)[0]}"

    async def top_spenders(self, n: int, now: datetime | None = None) -> list[tuple[str, Decimal]]:
        """The `n` customers with the most rated in the last hour (USD), most first."""
        keys = [f"{self._prefix}spend:{m}" for m in spend_minutes(now or self._clock())]
        return [(c, from_units(u)) for c, u in biggest(await self._c.spend_totals(keys), n)]

    async def allows(self, customer_id: str | None, at: datetime | None = None) -> bool:
        """A6: may this customer start a call now? Customers without a limit never wait
        on Redis."""
        if customer_id is None:
            return True
        customer = self._inventory().customers.get(customer_id)
        if customer is None or customer.credit_limit is None:
            return True
        return not over_limit(await self.usage(customer_id, at), customer.credit_limit)

    async def admit(self, decision: Decision, at: datetime | None = None) -> Decision:
        """The decision, or its A6 refusal. Only calls `decide()` forwarded are checked:
        911 ("emergency") is exempt (E7) and refusals stay as they were."""
        if decision.action != "forward" or decision.customer_id is None:
            return decision
        customer = self._inventory().customers.get(decision.customer_id)
        if customer is None or customer.credit_limit is None:
            return decision
        usage = await self.usage(decision.customer_id, at)
        if not over_limit(usage, customer.credit_limit):
            return decision
        return dataclasses.replace(
            decision, action="reject", sip_status=403, rule="A6",
            reason=f"unbilled usage {usage} USD exceeds the credit limit "
            f"{customer.credit_limit} USD",
        )  # fmt: skip

    async def reconcile(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        customer_ids: Iterable[str] | None = None,
        at: datetime | None = None,
    ) -> dict[str, Decimal]:
        """Reset the counters of the period `at` falls in (default: now) from Postgres:
        `sum(amount) FROM cdrs WHERE customer_id = … AND started_at >= period start`.
        Every customer in the inventory unless `customer_ids` says which. Returns the
        reconciled totals."""
        start = period_start(at or self._clock())
        ids = list(customer_ids) if customer_ids is not None else list(self._inventory().customers)
        if not ids:
            return {}
        keys = {cid: self.key(cid, start) for cid in ids}
        before = {cid: await self._c.get(k) for cid, k in keys.items()}
        rows = await conn.fetch(
            """SELECT customer_id, coalesce(sum(amount), 0) AS total FROM cdrs
               WHERE customer_id = ANY($1::text[]) AND started_at >= $2
                 AND started_at < $2 + interval '1 month'
               GROUP BY customer_id""",
            ids, start,
        )  # fmt: skip
        truth = {r["customer_id"]: to_units(r["total"]) for r in rows}
        out: dict[str, Decimal] = {}
        for cid, key in keys.items():
            delta = truth.get(cid, 0) - before[cid]
            total = await self._c.incr(key, delta) if delta else await self._c.get(key)
            out[cid] = from_units(total)
        return out
