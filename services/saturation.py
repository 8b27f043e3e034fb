"""Trunk-group saturation (rule A1) for ops, in a bounded number of Prometheus series.

A carrier has thousands of trunk groups; one gauge series per trunk group per edge would
cost Prometheus more than the rest of sipcc's metrics together, and most of those series
would sit at zero. Instead each gateway samples the shared Redis slot counts now and then
and exports two things: how many trunk groups are in each utilization band (five series),
and the utilization of the busiest few by name (at most `top` series; a trunk group that
drops out of the top has its series removed, so the set never grows). Every gateway sees
the same Redis, so dashboards take `max` across instances, never `sum`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from rater.admission import SlotStore
from services import logs, metrics
from services.inventory import Inventory

log = logs.get("saturation")

BANDS = ("idle", "lt50", "lt80", "lt100", "full")
# Reading thousands of counters at once would queue every edge's admissions behind them.
_CHUNK = 500


def band(in_use: int, trunks: int) -> str:
    if in_use <= 0:
        return "idle"
    if trunks <= 0 or in_use >= trunks:
        return "full"
    ratio = in_use / trunks
    return "lt50" if ratio < 0.5 else "lt80" if ratio < 0.8 else "lt100"


def summarise(
    usage: Iterable[tuple[str, int, int]], top: int
) -> tuple[dict[str, int], list[tuple[str, float]]]:
    """(trunk group, slots in use, trunks) → counts per band, and the `top` busiest trunk
    groups that have any call up (highest share first, then most calls, then id)."""
    bands = dict.fromkeys(BANDS, 0)
    busy: list[tuple[float, int, str]] = []
    for tg, in_use, trunks in usage:
        bands[band(in_use, trunks)] += 1
        if in_use > 0:
            ratio = min(in_use / trunks, 1.0) if trunks > 0 else 1.0
            busy.append((ratio, in_use, tg))
    busy.sort(key=lambda b: (-b[0], -b[1], b[2]))
    return bands, [(tg, ratio) for ratio, _, tg in busy[:top]]


class SaturationSampler:
    def __init__(self, slots: SlotStore, inventory: Callable[[], Inventory], top: int) -> None:
        self.slots = slots
        self.inventory = inventory
        self.top = top
        self._named: set[str] = set()

    async def sample(self) -> None:
        groups = list(self.inventory().trunk_groups.values())
        usage: list[tuple[str, int, int]] = []
        for i in range(0, len(groups), _CHUNK):
            chunk = groups[i : i + _CHUNK]
            counts = await asyncio.gather(*(self.slots.in_use(tg.id) for tg in chunk))
            usage.extend((tg.id, n, tg.trunks) for tg, n in zip(chunk, counts, strict=True))
        bands, busiest = summarise(usage, self.top)
        for name, n in bands.items():
            metrics.trunk_groups_by_utilization.labels(band=name).set(n)
        named = {tg for tg, _ in busiest}
        for tg in self._named - named:
            metrics.trunk_group_utilization.remove(tg)
        for tg, ratio in busiest:
            metrics.trunk_group_utilization.labels(trunk_group=tg).set(ratio)
        self._named = named

    async def run(self, every: float) -> None:
        for name in BANDS:  # the series exist from the start, for dashboards and alerts
            metrics.trunk_groups_by_utilization.labels(band=name).set(0)
        while True:
            try:
                await self.sample()
            except Exception as exc:  # Redis away: the dependency alert says so
                log.warning("saturation_sample_failed", error=repr(exc))
            await asyncio.sleep(every)
