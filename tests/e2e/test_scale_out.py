"""Scale-out (issue 9, Done when 2): two gateway processes share one Redis and one Postgres;
calls sent to both at once never put more than a trunk group's N trunks up in total (rule
A1). The rest are refused 503 naming A1. While the calls are up, both gateways' slot gauges
and the shared Redis slot set are sampled, and the carrier (a SIPp UAS) reports its calls in
progress every second: none ever exceeds 3."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import pytest
import redis as redis_sync

from tests.conftest import REDIS_URL
from tests.e2e.conftest import CARRIER_PORT, apply, example
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.node import NodeProcess
from tests.support.sipp import Uas, run_uac, write_injection

TRUNKS, PER_GATEWAY, HOLD_MS = 3, 4, 4000


def _gauge(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{name}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Sampler(threading.Thread):
    """Polls both gateways' /metrics and the shared Redis slot set until stopped."""

    def __init__(self, gateways: list[NodeProcess], redis_client, slot_key: str) -> None:
        super().__init__(daemon=True)
        self.gateways, self.redis, self.key = gateways, redis_client, slot_key
        self.stop = threading.Event()
        self.edge_sums: list[float] = []  # Σ sipcc_trunk_slots_in_use over the gateways
        self.redis_counts: list[int] = []  # members of the trunk group's slot set
        self.utilization: list[float] = []  # sipcc_trunk_group_utilization_ratio, any gateway

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                pages = [http.get(g.http + "/metrics").text for g in self.gateways]
                self.edge_sums.append(sum(_gauge(p, "sipcc_trunk_slots_in_use") for p in pages))
                self.utilization.extend(
                    _gauge(p, "sipcc_trunk_group_utilization_ratio", '{trunk_group="acme-main"}')
                    for p in pages
                )
                self.redis_counts.append(self.redis.zcard(self.key))
                self.stop.wait(0.05)


@pytest.mark.rule("A1")
def carrier_calls_in_progress(workdir) -> list[int]:
    """SIPp's -trace_stat file: one row per period, `CurrentCall` = calls in progress."""
    (stat,) = workdir.glob("uas_*_.csv")
    rows = [line.split(";") for line in stat.read_text().splitlines() if line]
    column = rows[0].index("CurrentCall")
    return [int(r[column]) for r in rows[1:]]


async def test_two_gateways_never_carry_more_than_the_trunks(
    pg, pg_dsn, redis_prefix, tmp_path
) -> None:
    await apply(pg_dsn, example(trunks=TRUNKS))
    # Two `sipcc gateway` processes (each its own SIP port) and the CDR writer, sharing the
    # run's Postgres database and Redis prefix.
    env = {"SIPCC_SATURATION_SAMPLE_SECONDS": "0.1"}
    gateways = [
        NodeProcess(pg_dsn, redis_prefix, tmp_path / f"gw{i}.log", role="gateway", **env)
        for i in range(2)
    ]
    writer = NodeProcess(pg_dsn, redis_prefix, tmp_path / "writer.log", role="cdr-writer")
    sampler = None
    carrier = Uas(tmp_path / "carrier", port=CARRIER_PORT, extra=("-trace_stat", "-fd", "1"))
    try:
        for node in (*gateways, writer):
            node.start()
        sampler = Sampler(gateways, redis_sync.Redis.from_url(REDIS_URL),
                          f"{redis_prefix}slots:acme-main")  # fmt: skip
        sampler.start()

        def place(i: int, gw: NodeProcess):
            inf = write_injection(tmp_path / f"calls{i}.csv", [(NEW_YORK, "+17275550100")] * PER_GATEWAY)
            # All calls at once, each held HOLD_MS after the answer: they overlap.
            return run_uac(tmp_path / f"uac{i}", f"127.0.0.1:{gw.sip_port}", inf,
                           calls=PER_GATEWAY, rate=100, limit=PER_GATEWAY, duration_ms=HOLD_MS,
                           scenario="uac_a1.xml")  # fmt: skip

        results = await asyncio.gather(*(asyncio.to_thread(place, i, g) for i, g in enumerate(gateways)))
        sampler.stop.set()
        sampler.join(10)
        logs = "".join(g.log() for g in gateways)
        for r in results:
            assert r.returncode == 0, r.output + logs  # every 503 named A1 (uac_a1.xml)

        answered = sum(r.counts.get("5_200_recv", 0) for r in results)
        refused = sum(r.counts.get("4_503_recv", 0) for r in results)
        assert (answered, refused) == (TRUNKS, 2 * PER_GATEWAY - TRUNKS)

        # While the calls were up: never more than 3 slots, across both gateways and in Redis,
        # and the limit was actually reached (the samples saw the calls up).
        assert max(sampler.edge_sums) == TRUNKS and max(sampler.redis_counts) == TRUNKS
        assert max(sampler.utilization) == 1.0  # the saturation gauge saw acme-main full

        carrier.stop()
        seen = carrier_calls_in_progress(tmp_path / "carrier")
        assert max(seen) == TRUNKS, seen  # the carrier never had more than 3 calls at once

        rows = await cdrs(pg, 2 * PER_GATEWAY)
        by = sorted((r["disposition"], r["sip_status"]) for r in rows)
        assert by == [("answered", 200)] * TRUNKS + [("rejected", 503)] * (2 * PER_GATEWAY - TRUNKS)
        assert len({r["edge"] for r in rows}) == 2  # both gateways took calls
    finally:
        if sampler is not None:
            sampler.stop.set()
        carrier.stop()
        for node in (*gateways, writer):
            node.stop()
