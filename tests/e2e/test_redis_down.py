"""Issue 10: Redis down (a private redis-server this test kills; never the shared 6379).
Ordinary calls are refused fail-closed (503, trunk slots cannot be counted) — or, with
SIPCC_ADMISSION_ON_REDIS_DOWN=fail-open, admitted on the edge's own counts — and 911 goes
through to the PSAP either way (rule E7). docs/SECURITY.md, "Degraded dependencies"."""

from __future__ import annotations

import pytest

from tests.e2e.test_e911 import call_911, e911_doc, peers, ports  # noqa: F401 (fixtures)
from tests.support.private_services import PrivateRedis
from tests.support.sipp import run_uac, write_injection


@pytest.mark.rule("E7")
@pytest.mark.rule("A1")
async def test_redis_down_refuses_calls_fail_closed_and_911_goes_through(
    pg, start_node, peers, ports, tmp_path  # noqa: F811
) -> None:
    redis = PrivateRedis(tmp_path / "redis", aof=False).start()
    psap = peers("e911")
    try:
        node = await start_node(e911_doc(ports), SIPCC_REDIS_URL=redis.url)
        redis.kill()
        inf = write_injection(tmp_path / "normal.csv", [("+12125551234", "+17275550100")])
        normal = run_uac(tmp_path / "normal", f"127.0.0.1:{node.sip_port}", inf, calls=1,
                         rate=1, limit=1, duration_ms=100, timeout=15)  # fmt: skip
        assert normal.counts.get("4_503_recv") == 1, normal.output + node.log()
        r = call_911(node, tmp_path, "+17275550103", "redis-down")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    finally:
        redis.kill()  # idempotent
    assert len(set(psap.invites())) == 1
    assert 'sipcc_admission_rejections_total{cause="unavailable"} 1.0' in node.metrics()


@pytest.mark.rule("E7")
@pytest.mark.rule("A1")
async def test_redis_down_fail_open_admits_on_the_edge_own_counts_and_911_goes_through(
    pg, start_node, peers, ports, carrier, tmp_path  # noqa: F811
) -> None:
    """SIPCC_ADMISSION_ON_REDIS_DOWN=fail-open: calls go on, this edge alone still holds the
    trunk group to its 2 trunks (3 at once → 2 answered, 1 refused naming A1), each check
    made without Redis is counted and logged, and 911 reaches the PSAP."""
    redis = PrivateRedis(tmp_path / "redis", aof=False).start()
    psap = peers("e911")
    try:
        node = await start_node(e911_doc(ports, trunks=2), SIPCC_REDIS_URL=redis.url,
                                SIPCC_ADMISSION_ON_REDIS_DOWN="fail-open")  # fmt: skip
        redis.kill()
        inf = write_injection(tmp_path / "normal.csv", [("+12125551234", "+17275550100")] * 3)
        normal = run_uac(tmp_path / "normal", f"127.0.0.1:{node.sip_port}", inf, calls=3,
                         rate=20, limit=3, duration_ms=3000, timeout=30)  # fmt: skip
        assert normal.counts.get("5_200_recv") == 2, normal.output + node.log()
        assert normal.counts.get("4_503_recv") == 1, normal.output + node.log()
        r = call_911(node, tmp_path, "+17275550103", "redis-down-open")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    finally:
        redis.kill()  # idempotent
    assert len(set(psap.invites())) == 1
    page = node.metrics()
    assert 'sipcc_admission_degraded_total{part="trunk_slots"} 3.0' in page
    assert 'sipcc_admission_degraded_total{part="credit"} 3.0' in page  # A6 unchecked meanwhile
    assert 'sipcc_admission_rejections_total{cause="A1"} 1.0' in page
    assert 'cause="unavailable"' not in page
    assert '"admission_fail_open"' in node.log_path.read_text()
