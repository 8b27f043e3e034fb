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
