"""Issue 10, toll fraud: a customer's concurrent-call cap holds across all of its trunk
groups on a running edge, and 911 still goes (E7). docs/SECURITY.md, "Toll fraud"."""

from __future__ import annotations

import asyncio

import pytest

from rater.caps import lease_key
from tests.e2e.conftest import CARRIER_PORT
from tests.e2e.test_e911 import call_911, cdrs, e911_doc, peers, ports  # noqa: F401 (fixtures)
from tests.support.sipp import Uas, run_uac, write_injection

SECOND_PBX = "127.0.0.8"  # the customer's second site: its own trunk group


@pytest.mark.rule("A7")
@pytest.mark.rule("E7")
async def test_concurrent_cap_across_two_trunk_groups_refuses_the_third_and_911_goes(
    pg, start_node, peers, ports, tmp_path, redis_client, redis_prefix  # noqa: F811
) -> None:
    doc = e911_doc(ports, trunks=5)
    acme = doc["customers"][0]
    acme["max_concurrent_calls"] = 2
    second = dict(acme["trunk_groups"][0], id="acme-branch", source_ips=[SECOND_PBX])
    acme["trunk_groups"].append(second)
    psap = peers("e911")
    carrier = Uas(tmp_path / "carrier", port=CARRIER_PORT)
    node = await start_node(doc)
    leases = f"{redis_prefix}slots:{lease_key('acme')}"
    try:
        inf = write_injection(tmp_path / "calls.csv", [("+12125551234", "+17275550100")] * 2)
        # Two long calls up from the main site (acme-main has 5 trunks: A1 is not the limit).
        first = asyncio.create_task(asyncio.to_thread(
            run_uac, tmp_path / "main", f"127.0.0.1:{node.sip_port}", inf, calls=2, rate=10,
            limit=2, duration_ms=6000, timeout=60))  # fmt: skip
        for _ in range(300):  # until both are up (their leases taken), or the task failed
            if await redis_client.zcard(leases) == 2 or first.done():
                break
            await asyncio.sleep(0.05)
        assert await redis_client.zcard(leases) == 2, node.log()
        # The third, from the other site's trunk group (which has trunks free): refused.
        inf3 = write_injection(tmp_path / "third.csv", [("+12125551235", "+17275550101")])
        third = run_uac(tmp_path / "branch", f"127.0.0.1:{node.sip_port}", inf3, calls=1,
                        rate=1, limit=1, duration_ms=100, ip=SECOND_PBX, timeout=15)  # fmt: skip
        assert third.counts.get("4_503_recv") == 1, third.output + node.log()
        # 911 from the customer with its cap reached goes through (E7).
        r = call_911(node, tmp_path, "+17275550103", "e911-capped")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
        main = await first
    finally:
        carrier.stop()
    assert main.returncode == 0 and main.counts["5_200_recv"] == 2, main.output + node.log()
    assert len(set(psap.invites())) == 1
    rows = await cdrs(pg, 4)
    refused = [r for r in rows if r["disposition"] == "rejected"]
    assert len(refused) == 1 and refused[0]["trunk_id"] == "acme-branch"
    assert refused[0]["sip_status"] == 503
    assert refused[0]["reason"] == "A7: customer acme has its cap of 2 concurrent calls up"
    assert 'sipcc_admission_rejections_total{cause="customer_concurrent"} 1.0' in node.metrics()
    assert await redis_client.zcard(leases) == 0  # every lease given back once
