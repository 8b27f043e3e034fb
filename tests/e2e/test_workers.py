"""Issue 3: several edge processes on one SIP port (SO_REUSEPORT). Calls spread over the
workers, each call's responses and in-dialog requests reach the worker that holds it, and
trunk limits hold across workers (slots in Redis)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.e2e.conftest import CARRIER_PORT, example
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.sipp import Uas, run_uac, write_injection


def answered(http: str) -> float:
    text = httpx.get(http + "/metrics", timeout=5).text
    m = re.search(r'sipcc_calls_total\{disposition="answered"\} ([0-9.]+)', text)
    return float(m.group(1)) if m else 0.0


@pytest.mark.rule("A1")
async def test_two_workers_share_the_port_and_the_limits(pg, start_node, tmp_path) -> None:
    node = await start_node(example(trunks=30), SIPCC_SIP_WORKERS="2")
    worker1 = f"http://127.0.0.1:{node.http_port + 1}"
    for _ in range(100):  # worker 1 up
        try:
            if httpx.get(worker1 + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)
    try:
        inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")] * 30)
        # One socket per call (-t un), so the kernel's hash spreads them over the workers.
        result = run_uac(tmp_path / "uac", f"127.0.0.1:{node.sip_port}", inf, calls=30, rate=30,
                         limit=30, duration_ms=500, extra=("-t", "un", "-max_socket", "512"))  # fmt: skip
        assert result.returncode == 0, result.output + node.log()
        rows = await cdrs(pg, 30)
        assert [r["disposition"] for r in rows] == ["answered"] * 30
        counts = (answered(node.http), answered(worker1))
        assert sum(counts) == 30 and min(counts) > 0, counts  # both workers carried calls
        assert len({r["edge"] for r in rows}) == 2

        # The limit across workers: 3 trunks, 8 simultaneous calls → 3 answered, 5 refused.
        await pg.execute("TRUNCATE cdrs")
        await pg.execute("UPDATE trunk_groups SET trunks = 3 WHERE id = 'acme-main'")
        await pg.execute("NOTIFY sipcc_inventory")
        await asyncio.sleep(0.5)  # each worker reloads its view
        inf = write_injection(tmp_path / "calls8.csv", [(NEW_YORK, "+17275550100")] * 8)
        result = run_uac(tmp_path / "uac8", f"127.0.0.1:{node.sip_port}", inf, calls=8, rate=100,
                         limit=8, duration_ms=2000, extra=("-t", "un", "-max_socket", "512"))  # fmt: skip
        assert result.returncode == 0, result.output + node.log()
        assert result.counts["5_200_recv"] == 3 and result.counts["4_503_recv"] == 5
    finally:
        carrier.stop()
