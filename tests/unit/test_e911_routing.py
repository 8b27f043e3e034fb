"""The 911 routing decision (E1-E5, E7) and the PIDF-LO it sends (RFC 4119/5139/5491)."""

from __future__ import annotations

from dataclasses import replace
from xml.etree import ElementTree as ET

import pytest

from e911_router.address import normalize
from e911_router.coverage import E911Data, Psap, Registered
from e911_router.pidf import pidf_lo, with_location
from e911_router.routing import Target, route

CLEARWATER = normalize(line="600 Cleveland St Suite 200, Clearwater, FL 33755")
TAMPA = normalize(line="201 N Franklin St Floor 3, Tampa, FL 33602")
FORT_MYERS = normalize(line="2000 Main St, Fort Myers, FL 33901")
CARRIER = Target("carrier", "sip:127.0.0.3:5060", "loopback-carrier")


def data(**psap_changes) -> E911Data:
    d = E911Data(national_call_center="sip:127.0.0.6:5060")
    d.psaps["pinellas"] = replace(Psap("pinellas", "Pinellas 911", "e911", "sip:127.0.0.4:5060"),
                                  **psap_changes)  # fmt: skip
    d.psaps["hillsborough"] = Psap("hillsborough", "Hillsborough 911", "basic", "sip:127.0.0.5:5060")
    d.areas[("county", "12103")] = "pinellas"
    d.areas[("county", "12057")] = "hillsborough"
    for tn, a in (("+17275550100", CLEARWATER), ("+17275550105", TAMPA), ("+17275550108", FORT_MYERS)):
        d.addresses[tn] = Registered(tn, a)
    d.addresses["+17275550109"] = Registered("+17275550109", CLEARWATER, move_pending=True)
    return d


def owner(tn: str) -> str | None:
    return "acme" if tn.startswith("+1727555010") else "other"


def kinds(r) -> list[str]:
    return [t.label for t in r.targets]


@pytest.mark.rule("E1")
def test_levels_by_the_psap_serving_the_address() -> None:
    d = data()
    e = route(d, "+17275550100", "acme", owner, CARRIER)
    assert (e.level, kinds(e), e.callback) == ("e911", ["psap:pinellas", "national", "carrier"], "+17275550100")
    assert e.sends_location and e.address == CLEARWATER
    b = route(d, "+17275550105", "acme", owner, CARRIER)
    assert (b.level, kinds(b)) == ("basic", ["psap:hillsborough", "national", "carrier"])
    assert not b.sends_location
    n = route(d, "+17275550108", "acme", owner, CARRIER)
    assert (n.level, n.rule, kinds(n)) == ("national", "E1", ["national", "carrier"])


@pytest.mark.rule("E3")
def test_a_psap_that_becomes_e911_capable_upgrades_its_callers() -> None:
    before = route(data(capability="basic"), "+17275550100", "acme", owner, CARRIER)
    after = route(data(), "+17275550100", "acme", owner, CARRIER)
    assert (before.level, after.level) == ("basic", "e911")


@pytest.mark.rule("E4")
@pytest.mark.rule("E5")
def test_national_call_center_cases() -> None:
    d = data()
    assert route(d, "+17275550109", "acme", owner).rule == "E5"
    assert route(d, "+17275550101", "acme", owner).rule == "E4"  # no address registered
    assert route(data(route_uri=None), "+17275550100", "acme", owner).rule == "E4"
    for tn, customer in ((None, "acme"), ("+12125550000", "acme"), ("+17275550100", "other")):
        r = route(d, tn, customer, owner, CARRIER)
        assert (r.level, r.rule, r.callback) == ("national", "E2", None)


@pytest.mark.rule("E7")
def test_without_a_national_call_center_the_carrier_takes_it() -> None:
    d = data()
    d.national_call_center = None
    r = route(d, None, "acme", owner, CARRIER)
    assert (r.level, kinds(r)) == ("carrier", ["carrier"])


@pytest.mark.rule("E1")
def test_pidf_lo_carries_the_civic_address() -> None:
    doc = ET.fromstring(pidf_lo("+17275550105", TAMPA))
    ca = "{urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr}"
    civic = {el.tag.removeprefix(ca): el.text for el in doc.iter() if el.tag.startswith(ca)}
    assert civic == {"civicAddress": None, "country": "US", "A1": "FL", "A2": "HILLSBOROUGH",
                     "A3": "TAMPA", "PRD": "N", "RD": "FRANKLIN", "STS": "ST", "HNO": "201",
                     "FLR": "3", "PC": "33602"}  # fmt: skip
    assert doc.get("entity") == "pres:+17275550105@sipcc"
    ctype, body, geo = with_location("application/sdp", b"v=0\r\n", "+17275550105", TAMPA, "edge", "c1")
    boundary = ctype.split("boundary=")[1]
    assert body.count(f"--{boundary}".encode()) == 3 and body.endswith(f"--{boundary}--\r\n".encode())
    assert f"Content-ID: <{geo[5:-1]}>".encode() in body and b"v=0\r\n" in body
