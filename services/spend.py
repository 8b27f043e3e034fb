"""Spend velocity for the toll-fraud alert, in a bounded number of Prometheus series.

A hijacked PBX shows first as money: a customer that rates a few dollars an hour suddenly
rates hundreds. Every edge adds each rated call to per-minute buckets in Redis
(rater/credit.py, `add_usage`); this sampler sums the last hour's buckets and exports the
biggest spenders by name (at most `top` series; a customer leaving the top has its series
removed, as services/saturation.py does for trunk groups). All gateways read the same
Redis, so dashboards and the alert take `max` across instances, never `sum`.
"""

from __future__ import annotations

import asyncio

from rater.credit import CreditGuard
from services import logs, metrics

log = logs.get("spend")


class SpendSampler:
    def __init__(self, credit: CreditGuard, top: int) -> None:
        self.credit = credit
        self.top = top
        self._named: set[str] = set()

    async def sample(self) -> None:
        spenders = await self.credit.top_spenders(self.top) if self.top else []
        named = {c for c, _ in spenders}
        for customer in self._named - named:
            metrics.customer_spend_last_hour.remove(customer)
        for customer, amount in spenders:
            metrics.customer_spend_last_hour.labels(customer=customer).set(float(amount))
        self._named = named

    async def run(self, every: float) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # Redis away: the dependency alert says so
                log.warning("spend_sample_failed", error=repr(exc))
            await asyncio.sleep(every)
