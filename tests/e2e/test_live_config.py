"""Issue 11, Done-when 2: provisioning changes made through the API reach a running node's
call path at once, without a restart and without dropping a call (real node, real SIPp).

- A customer suspended through the API: its next call is refused (A9) while a 911 call from
  it still reaches the PSAP (E7).
- A trunk group lowered from 3 channels to 1 while 3 calls are up: the 3 calls finish
  normally, a new call is refused (A1, naming the new limit) while 3, and then 1, remain,
  and admitted once none does.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.e2e.test_e911 import call_911, cdrs, e911_doc, peers, ports  # noqa: F401 (fixtures)
from tests.support.sipp import run_uac, write_injection

NEW_YORK = "+12125551234"


def call(node, tmp_path, name: str, ani: str, duration_ms: int = 100):
    inf = write_injection(tmp_path / f"{name}.csv", [(NEW_YORK, ani)])
    return run_uac(tmp_path / name, f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1, limit=1,
                   duration_ms=duration_ms, timeout=60)  # fmt: skip


async def change(node, path: str, patch: dict) -> httpx.Response:
    """PATCH a provisioning entry the way a clerk does: read it, send its ETag back."""
    async with httpx.AsyncClient(base_url=node.http, headers=node.api_headers, timeout=10) as c:
        got = await c.get(path)
        r = await c.patch(path, json=patch, headers={"If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text
    return r


async def until(predicate, what: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def change_lag_within_one_second(node) -> int:
    """How many changes this node applied (its own measure: audit time → snapshot in use),
    asserting that every one took at most a second."""
    m = node.metrics()
    count = float(re.search(r"^sipcc_inventory_change_lag_seconds_count (\S+)$", m, re.M).group(1))
    within = float(re.search(r'^sipcc_inventory_change_lag_seconds_bucket\{le="1\.0"\} (\S+)$', m,
                             re.M).group(1))  # fmt: skip
    assert within == count, m
    return int(count)


async def by_ani(pg, n: int) -> dict:
    return {r["ani"]: r for r in await cdrs(pg, n)}


@pytest.mark.rule("A9")
@pytest.mark.rule("E7")
async def test_suspended_through_the_api_refuses_the_next_call_but_not_911(
    pg, start_node, carrier, peers, ports, tmp_path  # noqa: F811
) -> None:
    psap = peers("e911")
    node = await start_node(e911_doc(ports, trunks=3))
    pid = node.proc.pid
    before = call(node, tmp_path, "before", "+17275550101")
    assert before.counts.get("5_200_recv") == 1, before.output + node.log()

    await change(node, "/v1/customers/acme", {"status": "suspended", "status_reason": "unpaid invoice"})
    refused = call(node, tmp_path, "refused", "+17275550102")  # the very next call
    assert refused.counts.get("5_200_recv", 0) == 0
    r = call_911(node, tmp_path, "+17275550100", "e911")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    assert len(psap.invites()) >= 1

    rows = await by_ani(pg, 3)
    assert rows["+17275550101"]["disposition"] == "answered"
    assert rows["+17275550102"]["disposition"] == "rejected"
    assert rows["+17275550102"]["reason"].startswith("A9: customer suspended")
    assert rows["+17275550100"]["dnis"] == "911" and rows["+17275550100"]["disposition"] == "answered"

    await change(node, "/v1/customers/acme", {"status": "active"})
    again = call(node, tmp_path, "again", "+17275550103")
    assert again.counts.get("5_200_recv") == 1, again.output + node.log()
    assert node.proc.pid == pid and node.proc.poll() is None  # no restart
    assert change_lag_within_one_second(node) >= 2


@pytest.mark.rule("A1")
async def test_capacity_lowered_during_calls(pg, start_node, carrier, redis_client, redis_prefix,
                                             tmp_path) -> None:  # fmt: skip
    from tests.e2e.conftest import example

    node = await start_node(example(trunks=3))
    pid = node.proc.pid
    key = f"{redis_prefix}slots:acme-main"

    async def up(n: int) -> bool:
        return await redis_client.zcard(key) == n

    # Three calls that end one after another: 4 s, 8 s and 14 s after they are answered.
    running = [asyncio.create_task(asyncio.to_thread(call, node, tmp_path, f"long{i}", f"+1727555010{i}", ms))
               for i, ms in enumerate((4000, 8000, 14000))]  # fmt: skip
    await until(lambda: up(3), "3 calls up")

    r = await change(node, "/v1/trunk-groups/acme-main", {"trunks": 1})
    assert r.json()["trunks"] == 1
    over = call(node, tmp_path, "over3", "+17275550105")  # sent right after the API answered
    assert over.counts.get("4_503_recv") == 1, over.output + node.log()

    await until(lambda: up(1), "one call left")
    still = call(node, tmp_path, "over1", "+17275550106")  # 1 up, limit 1: still refused
    assert still.counts.get("4_503_recv") == 1, still.output + node.log()

    await until(lambda: up(0), "every call ended")
    admitted = call(node, tmp_path, "under", "+17275550107")
    assert admitted.counts.get("5_200_recv") == 1, admitted.output + node.log()

    for task in running:  # the calls up when the limit fell ended normally, by their BYE
        result = await task
        assert result.returncode == 0 and result.counts.get("5_200_recv") == 1, result.output

    rows = await by_ani(pg, 6)
    for ani in ("+17275550100", "+17275550101", "+17275550102", "+17275550107"):
        assert rows[ani]["disposition"] == "answered", dict(rows[ani])
    for ani in ("+17275550105", "+17275550106"):
        assert rows[ani]["disposition"] == "rejected" and rows[ani]["sip_status"] == 503
        assert rows[ani]["reason"] == "A1: all 1 trunks of acme-main are in use"
    assert rows["+17275550102"]["ended_at"] > rows["+17275550106"]["started_at"]
    assert node.proc.pid == pid and node.proc.poll() is None  # no restart
    assert change_lag_within_one_second(node) >= 1
