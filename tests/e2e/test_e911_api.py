"""Issue 5 over HTTP: POST /v1/e911/route, registered addresses (moves, E5), PSAPs."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import example


async def route(node, ani: str | None, expect_level: str | None = None) -> dict:
    """The route; with expect_level, waits for the node's inventory reload to show it."""
    for _ in range(100):
        r = httpx.post(node.http + "/v1/e911/route", headers=node.api_headers,
                       json={"ani": ani, "trunk_id": "acme-main"})  # fmt: skip
        assert r.status_code == 200, r.text
        if expect_level is None or r.json()["level"] == expect_level:
            return r.json()
        await asyncio.sleep(0.1)
    return r.json()


@pytest.mark.rule("E5")
@pytest.mark.rule("E6")
async def test_route_and_a_move_through_the_api(pg, start_node) -> None:
    node = await start_node(example())
    r = await route(node, "+17275550100")
    assert (r["level"], r["rule"], r["callback"]) == ("e911", "E3", "+17275550100")
    assert [t["name"] for t in r["targets"]] == ["fl-pinellas", "national", "loopback-carrier"]
    assert r["address"]["one_line"] == "600 CLEVELAND ST STE 200, CLEARWATER, FL 33755"
    assert (await route(node, "+17275550106"))["level"] == "basic"
    assert (await route(node, "+17275550108"))["rule"] == "E1"
    assert (await route(node, "+17275550109"))["rule"] == "E5"
    assert (await route(node, "not a number"))["rule"] == "E2"

    # A move (E5): national call center until confirmed, then the new address's PSAP.
    url = node.http + "/v1/e911/addresses/+17275550100"
    moved = httpx.put(url, headers=node.api_headers,
                      json={"line": "201 n. franklin street, fl 3, tampa fl 33602"})  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["move_pending"] is True
    assert (await route(node, "+17275550100", "national"))["rule"] == "E5"
    assert httpx.post(url + "/confirm", headers=node.api_headers).status_code == 200
    r = await route(node, "+17275550100", "basic")
    assert r["psap"]["id"] == "fl-hillsborough" and r["address"]["floor"] == "3"
    # earlier tests' versions come first
    history = httpx.get(url, headers=node.api_headers).json()["history"][-3:]
    assert [h["city"] for h in history] == ["CLEARWATER", "TAMPA", "TAMPA"]
    assert [h["move_pending"] for h in history] == [False, True, False]

    # Not dispatchable: a clear error, nothing stored changes.
    bad = httpx.put(url, headers=node.api_headers, json={"line": "PO Box 12, Tampa, FL 33602"})
    assert bad.status_code == 422 and "PO box" in bad.json()["detail"]
    assert httpx.get(url, headers=node.api_headers).json()["address"]["city"] == "TAMPA"
    assert httpx.put(node.http + "/v1/e911/addresses/+19995550000", headers=node.api_headers,
                     json={"line": "1 Main St, Tampa, FL 33602"}).status_code in (404, 422)  # fmt: skip
    assert httpx.post(node.http + "/v1/e911/route", headers=node.api_headers,
                      json={"trunk_id": "nope"}).status_code == 404  # fmt: skip

    psaps = httpx.get(node.http + "/v1/e911/psaps", headers=node.api_headers).json()
    assert {(p["id"], p["capability"], tuple(p["serves"]["counties"])) for p in psaps} >= {
        ("fl-pinellas", "e911", ("12103",)), ("fl-hillsborough", "basic", ("12057",))}  # fmt: skip
