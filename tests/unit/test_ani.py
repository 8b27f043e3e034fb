"""Rule A4: the originating ANI and its source, by the trunk's precedence."""

import pytest

from gateway.ani import originating_ani
from gateway.sip.message import parse_message

DEFAULT = ("pai", "rpid", "from")


def invite(*headers: str) -> bytes:
    lines = [
        "INVITE sip:+12125551234@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1",
        "From: <sip:+17275550100@127.0.0.2>;tag=a",
        "To: <sip:+12125551234@127.0.0.1>",
        "Call-ID: ani-1",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        *headers,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


@pytest.mark.rule("A4")
def test_from_when_nothing_else() -> None:
    assert originating_ani(parse_message(invite()), DEFAULT) == ("+17275550100", "from")


@pytest.mark.rule("A4")
def test_pai_wins_by_default() -> None:
    req = parse_message(invite("P-Asserted-Identity: <sip:+17275550105@pbx.example>"))
    assert originating_ani(req, DEFAULT) == ("+17275550105", "pai")


@pytest.mark.rule("A4")
def test_pai_with_sip_and_tel_prefers_tel() -> None:
    # RFC 3325 §9.1: a sip: and a tel: value at once, either order, one header or two.
    one = parse_message(invite('P-Asserted-Identity: "Front desk" <sip:7275550106@pbx>, <tel:+17275550107>'))
    two = parse_message(invite("P-Asserted-Identity: <tel:+17275550107>",
                               "P-Asserted-Identity: <sip:7275550106@pbx>"))  # fmt: skip
    assert originating_ani(one, DEFAULT) == ("+17275550107", "pai")
    assert originating_ani(two, DEFAULT) == ("+17275550107", "pai")


@pytest.mark.rule("A4")
def test_rpid_when_no_pai() -> None:
    req = parse_message(invite('Remote-Party-ID: "Acme" <sip:7275550108@pbx>;party=calling;screen=yes;privacy=off'))
    assert originating_ani(req, DEFAULT) == ("7275550108", "rpid")


@pytest.mark.rule("A4")
def test_rpid_of_the_called_party_is_not_the_caller() -> None:
    req = parse_message(invite("Remote-Party-ID: <sip:2125551234@carrier>;party=called"))
    assert originating_ani(req, DEFAULT) == ("+17275550100", "from")


@pytest.mark.rule("A4")
def test_trunk_precedence_from_first() -> None:
    req = parse_message(invite("P-Asserted-Identity: <sip:+17275550105@pbx>"))
    assert originating_ani(req, ("from", "pai")) == ("+17275550100", "from")
    assert originating_ani(req, ("rpid", "from")) == ("+17275550100", "from")


@pytest.mark.rule("A4")
def test_malformed_pai_falls_through() -> None:
    req = parse_message(invite("P-Asserted-Identity: <sip:+1727@"))
    assert originating_ani(req, DEFAULT) == ("+17275550100", "from")
