"""A next hop the edge cannot reach over TCP: RFC 3261 §18.1.1 (a request sent over TCP only
for its size is retried over UDP) and §17.1.4/§16.9 (a transport error is a 503 at once,
not a 408 after Timer B's 32 s)."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import CARRIER_PORT, example
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.node import free_port
from tests.support.sipp import Uas, run_uac, write_injection


async def test_large_invite_to_a_udp_only_gateway_goes_over_udp(pg, start_node, tmp_path) -> None:
    node = await start_node(example(trunks=5))
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)  # UDP only: TCP connections are refused
    try:
        inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")] * 2)
        result = run_uac(tmp_path / "uac", f"127.0.0.1:{node.sip_port}", inf, calls=2, rate=5,
                         limit=2, duration_ms=100, scenario="uac_large_sdp.xml", timeout=60)  # fmt: skip
    finally:
        carrier.stop()
    assert result.returncode == 0, result.output + node.log()
    assert result.counts.get("5_200_recv") == 2, result.counts
    assert node.log().count('"udp_fallback"') == 2
    rows = await cdrs(pg, 2)
    assert [r["disposition"] for r in rows] == ["answered", "answered"]


async def test_gateway_refusing_tcp_gets_the_caller_a_503_at_once(pg, start_node, tmp_path) -> None:
    doc = example(trunks=5)
    # The URI asks for TCP (no UDP fallback) and nothing listens there.
    dead = free_port("127.0.0.3")
    doc["carriers"][0]["gateway"] = f"sip:127.0.0.3:{dead};transport=tcp"
    node = await start_node(doc)
    inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")])
    loop = asyncio.get_running_loop()
    started = loop.time()
    # SIPp gives up on the call after 10 s: a 408 would come only after Timer B (32 s).
    result = await asyncio.to_thread(
        run_uac, tmp_path / "uac", f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1, limit=1,
        duration_ms=100, timeout=60, extra=("-recv_timeout", "10000"),
    )  # fmt: skip
    assert result.counts.get("4_503_recv") == 1, (result.counts, loop.time() - started, node.log())
    rows = await cdrs(pg, 1)
    assert rows[0]["sip_status"] == 503 and rows[0]["disposition"] == "failed"
