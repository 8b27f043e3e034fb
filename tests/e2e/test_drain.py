"""Issue 3: graceful drain. On SIGTERM new INVITEs get 503 with Retry-After while the calls
already up run to their end; then the process exits."""

from __future__ import annotations

import asyncio
import signal

from tests.e2e.conftest import CARRIER_PORT, example
from tests.e2e.test_dialogs import start_uac
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.sipp import Uas, run_uac, write_injection


async def test_sigterm_drains(pg, start_node, tmp_path) -> None:
    node = await start_node(example(trunks=5))
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)
    inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")] * 2)
    up = start_uac(tmp_path / "up", f"127.0.0.1:{node.sip_port}", inf, 2, duration_ms=3000)
    try:
        for _ in range(50):
            if "sipcc_active_calls 2.0" in node.metrics():
                break
            await asyncio.sleep(0.1)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        late = run_uac(tmp_path / "late", f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1,
                       limit=1, duration_ms=100, timeout=10)  # fmt: skip
        assert late.counts["4_503_recv"] == 1  # refused while draining
        assert up.wait(30) == 0, up.stderr.read().decode()  # the calls up finished normally
        assert node.proc.wait(20) == 0
    finally:
        carrier.stop()
    rows = await cdrs(pg, 2)
    assert [r["disposition"] for r in rows] == ["answered"] * 2
    assert all(r["duration_ms"] >= 2900 for r in rows)
    assert '"node_stopping"' in node.log()
