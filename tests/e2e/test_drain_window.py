"""SIPCC_DRAIN_SECONDS (docs/OPERATIONS.md: upgrade without dropping calls): the drain
window is the operator's. Within it, calls up end normally; past it, they are closed
(`truncated`). Production sets it to the longest call worth waiting for."""

from __future__ import annotations

import asyncio
import signal

from tests.e2e.conftest import example
from tests.e2e.test_dialogs import start_uac
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.sipp import write_injection


async def test_calls_longer_than_the_drain_window_are_closed(pg, start_node, carrier, tmp_path) -> None:
    node = await start_node(example(trunks=5), SIPCC_DRAIN_SECONDS="1")
    inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")])
    up = start_uac(tmp_path / "up", f"127.0.0.1:{node.sip_port}", inf, 1, duration_ms=20000)
    try:
        for _ in range(100):
            if "sipcc_active_calls 1.0" in node.metrics():
                break
            await asyncio.sleep(0.1)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(15) == 0  # long before the 20 s call would have ended
    finally:
        up.kill()
        up.wait()
    (row,) = await cdrs(pg, 1)
    assert row["disposition"] == "truncated"
    assert '"drain_seconds": 1.0' in node.log()
