"""The rater's decision on an in-memory inventory (no servers)."""

import ipaddress
from decimal import Decimal

import pytest

from rater.decision import CallFacts, decide
from services.inventory import Carrier, Customer, Inventory, Number, RatePlan, TrunkGroup


def inventory(status: str = "active") -> Inventory:
    inv = Inventory()
    inv.carriers["c"] = Carrier("c", "carrier", "sip:127.0.0.3:5060")
    inv.rate_plans["p"] = RatePlan("p", "plan", "USD", Decimal("0.01200"), Decimal("0.01800"),
                                   Decimal("0.00500"), Decimal("0.30000"))  # fmt: skip
    inv.customers["acme"] = Customer("acme", "Acme", status, "p", None)
    inv.trunk_groups["tg"] = TrunkGroup("tg", "acme", 2, (ipaddress.ip_network("127.0.0.2/32"),),
                                        ("pai", "rpid", "from"), "c")  # fmt: skip
    for n in range(100, 110):
        tn = f"+172755501{n - 100:02d}"
        inv.numbers[tn] = Number(tn, "acme", "tg", "assigned")
    return inv.index()


def call(dnis: str, ani: str | None = "+17275550100") -> CallFacts:
    return CallFacts(dnis=dnis, ani=ani, trunk_group_id="tg")


@pytest.mark.rule("R3")
@pytest.mark.parametrize(
    ("dnis", "ani", "jurisdiction", "rate"),
    [
        ("+17275551234", "+17275550100", "intrastate", "0.01800"),  # FL → FL
        ("+13055551234", "7275550101", "intrastate", "0.01800"),  # FL → FL (Miami)
        ("+12125551234", "+17275550100", "interstate", "0.01200"),  # FL → NY
        ("+15035551234", "+17275550100", "interstate", "0.01200"),  # FL → OR
    ],
)
def test_intra_vs_interstate(dnis: str, ani: str, jurisdiction: str, rate: str) -> None:
    d = decide(inventory(), call(dnis, ani))
    assert d.action == "forward"
    assert d.jurisdiction == jurisdiction
    assert d.rate_per_minute == Decimal(rate)
    assert d.billing_increments == (6, 6)


@pytest.mark.rule("R5")
@pytest.mark.parametrize("ani", [None, "anonymous", "123", "+1727555"])
def test_invalid_ani_rates_intrastate(ani: str | None) -> None:
    d = decide(inventory(), call("+12125551234", ani))
    assert d.jurisdiction == "intrastate"
    assert d.ani_used is None
    assert d.rate_per_minute == Decimal("0.01800")


@pytest.mark.rule("R7")
@pytest.mark.rule("R2")
def test_alaska_rate_and_increments() -> None:
    d = decide(inventory(), call("+19075551234"))
    assert d.jurisdiction == "interstate"
    assert d.rate_per_minute == Decimal("0.30000")
    assert d.billing_increments == (30, 6)  # R2: AK follows the International increments
    assert d.quote(31_000) == (36, Decimal("0.18000"))


@pytest.mark.rule("R2")
@pytest.mark.parametrize("dnis", ["+18085551234", "+17875551234", "+13405551234"])
def test_non_continental_increments(dnis: str) -> None:
    assert decide(inventory(), call(dnis)).billing_increments == (30, 6)


@pytest.mark.rule("R1")
def test_quote_6_vs_6001_ms() -> None:
    d = decide(inventory(), call("+12125551234"))
    assert d.quote(6000) == (6, Decimal("0.00120"))
    assert d.quote(6001) == (12, Decimal("0.00240"))
    assert d.quote(0) == (0, Decimal("0.00000"))


@pytest.mark.rule("A2")
@pytest.mark.parametrize("dnis", ["+19005551234", "2129765555", "10102881234567"])
def test_blocked_destinations(dnis: str) -> None:
    d = decide(inventory(), call(dnis))
    assert (d.action, d.sip_status, d.rule) == ("reject", 403, "A2")


@pytest.mark.rule("A3")
def test_toll_free_needs_owned_ani() -> None:
    assert decide(inventory(), call("+18005551234", "+17275550100")).action == "forward"
    d = decide(inventory(), call("+18005551234", "+12125550000"))
    assert (d.action, d.rule) == ("reject", "A3")
    d = decide(inventory(), call("+18005551234", None))
    assert (d.action, d.rule) == ("reject", "A3")


@pytest.mark.rule("A9")
@pytest.mark.parametrize("status", ["suspended", "cancelled"])
def test_suspended_customer_refused(status: str) -> None:
    d = decide(inventory(status), call("+12125551234"))
    assert (d.action, d.sip_status, d.rule) == ("reject", 403, "A9")


@pytest.mark.rule("E7")
@pytest.mark.parametrize("status", ["active", "suspended"])
@pytest.mark.parametrize("ani", ["+17275550100", None, "garbage"])
def test_911_is_never_refused(status: str, ani: str | None) -> None:
    d = decide(inventory(status), call("911", ani))
    assert d.action == "emergency"


@pytest.mark.rule("A8")
def test_unknown_trunk_refused() -> None:
    d = decide(inventory(), CallFacts(dnis="+12125551234", trunk_group_id="nope"))
    assert (d.action, d.rule) == ("reject", "A8")


def test_every_decision_survives_the_dialog_store_json() -> None:
    """The edge persists decisions as JSON (gateway/dialogs.py converts only the rate):
    every field a decision can carry must round-trip through json as it does."""
    import json

    from gateway.dialogs import _DECISION_FIELDS, decision_from

    inv = inventory()
    inv.numbers["+18005550100"] = Number("+18005550100", "acme", "tg", "assigned")
    decisions = [
        decide(inv, call("+12125551234")),
        decide(inv, call("911")),
        decide(inv, call("+19005551234")),
        decide(inv, CallFacts(dnis="+18005550100", ani="+12125551234;oli=27",
                              direction="inbound")),
    ]
    for d in decisions:
        rec = {f: getattr(d, f) for f in _DECISION_FIELDS}
        if rec["rate_per_minute"] is not None:
            rec["rate_per_minute"] = str(rec["rate_per_minute"])
        back = decision_from(json.loads(json.dumps(rec)))
        assert back == d
        assert back.quote(61_000) == d.quote(61_000)
    assert decisions[-1].quote(60_000) == (60, Decimal("0.62900"))  # R9 + R12


def test_naive_and_zoned_times_are_the_same_utc_day() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    inv = inventory()
    naive = decide(inv, CallFacts(dnis="+12125551234", ani="+17275550100", trunk_group_id="tg",
                                  at=datetime(2026, 1, 1, 3, 0)))  # fmt: skip
    est = timezone(timedelta(hours=-5))
    zoned = decide(inv, CallFacts(dnis="+12125551234", ani="+17275550100", trunk_group_id="tg",
                                  at=datetime(2025, 12, 31, 22, 0, tzinfo=est)))  # fmt: skip
    assert naive == zoned
    assert datetime(2025, 12, 31, 22, 0, tzinfo=est).astimezone(UTC).day == 1


@pytest.mark.rule("R9")
def test_inbound_finds_the_customer_by_its_number() -> None:
    inv = inventory()
    d = decide(inv, CallFacts(dnis="7275550105", ani="+12125551234", direction="inbound"))
    assert (d.action, d.customer_id, d.trunk_group_id, d.jurisdiction) == (
        "forward", "acme", "tg", "inbound")
    assert d.rate_per_minute == Decimal("0.00000")


def test_default_plan_carries_the_agreement_figures() -> None:
    plan = inventory().rate_plans["p"]
    assert plan.toll_free_inbound_per_minute == Decimal("0.02900")  # R9
    assert plan.payphone_surcharge == Decimal("0.60000")  # R12
    assert plan.alaska_per_minute == Decimal("0.30000")  # R7
    assert {k: str(v) for k, v in plan.offshore_toll_free_per_minute.items()} == {
        "AK": "0.45000", "CA": "0.08000", "MP": "0.30000", "GU": "0.15000", "HI": "0.05000",
        "PR": "0.19000", "VI": "0.18000"}  # R10  # fmt: skip
    assert (plan.domestic_increments, plan.international_increments, plan.mexico_increments) == (
        (6, 6), (30, 6), (60, 60))  # R1  # fmt: skip


class _Node:
    def __init__(self, inv: Inventory) -> None:
        self.inventory = inv

    async def check_dependencies(self) -> dict:
        return {"postgres": "ok", "redis": "ok"}


def _client():
    from fastapi.testclient import TestClient

    from services.api import create_app
    from services.auth import MemoryKeys

    inv = inventory()
    inv.numbers["+18005550100"] = Number("+18005550100", "acme", "tg", "assigned")
    keys = MemoryKeys()
    key = keys.add("test", frozenset({"rating"}))
    return TestClient(create_app(_Node(inv), keys), headers={"Authorization": f"Bearer {key}"})


def test_http_rate_and_quote_shapes() -> None:
    client = _client()
    r = client.post("/v1/rate", json={"trunk_id": "tg", "ani": "+17275550100",
                                      "dnis": "+12125551234"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "forward" and body["jurisdiction"] == "interstate"
    assert body["rate_per_minute"] == "0.01200" and body["billing_increments"] == [6, 6]
    assert body["trunk_id"] == "tg" and body["currency"] == "USD" and body["rating_rule"] == "R7"
    q = client.post("/v1/quote", json={"trunk_id": "tg", "ani": "+17275550100",
                                       "dnis": "+12125551234", "duration_seconds": 61})  # fmt: skip
    assert (q.json()["billed_seconds"], q.json()["amount"]) == (66, "0.01320")  # README's example
    tf = client.post("/v1/quote", json={"customer_id": "acme", "ani": "+17875551234",
                                        "oli": "27", "dnis": "+18005550100",
                                        "direction": "inbound", "duration_seconds": "60"})  # fmt: skip
    assert (tf.json()["amount"], tf.json()["per_call_charge"]) == ("0.79000", "0.60000")
    refused = client.post("/v1/rate", json={"trunk_id": "tg", "dnis": "19005551234"}).json()
    assert (refused["action"], refused["sip_status"], refused["rule"]) == ("reject", 403, "A2")


def test_http_bad_input() -> None:
    client = _client()
    r = client.post("/v1/rate", json={"dnis": "+12125551234"})
    assert r.status_code == 422 and "give trunk_id or customer_id" in r.text
    r = client.post("/v1/rate", json={"trunk_id": "tg", "dnis": "+1", "colour": "red"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]
    r = client.post("/v1/quote", json={"trunk_id": "tg", "dnis": "+12125551234",
                                       "duration_seconds": -1})  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "duration_seconds"]
    r = client.post("/v1/rate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.post("/v1/rate", json={"trunk_id": "nope", "dnis": "911"}).status_code == 404
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/quote"]["post"]["requestBody"]["content"]["application/json"]
    assert "duration_seconds" in body["schema"]["properties"]
    ok = spec["paths"]["/v1/rate"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/RateOut")
