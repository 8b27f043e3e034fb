"""A digit on the wire or in a URL is 0-9. Python's str.isdigit() also says yes to
superscripts ('¹') and other scripts' digits ('٣'); int('¹') then raises, so a check with
isdigit() alone let one character from a peer raise out of the SIP layer. Each place that
reads a number from text checks isascii() too; these cases pin them (found by the property
tests of the e911 address and Sentinel URL parsers, which hit the same trap)."""

from __future__ import annotations

import pytest

from e911_router.address import AddressError, normalize
from gateway.edge import _session_expires
from gateway.media.sdp import audio_destination
from gateway.sip.headers import SipError, parse_via
from gateway.sip.message import parse_message
from gateway.sip.transactions import response_address
from rater.numbers import Kind, analyse
from rater.numbers import normalize as e164
from services.redisconn import RedisUrlError, parse_sentinel_url

ODD_DIGITS = ["¹", "²³", "٣", "５060"]


@pytest.mark.parametrize("odd", ODD_DIGITS)
def test_rport_of_odd_digits_is_no_port(odd) -> None:
    # The Via parser already refuses them (not a token); a Via built in code may hold one.
    with pytest.raises(SipError):
        parse_via(f"SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx;rport={odd}")
    via = parse_via("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx;rport=1")
    via.params["rport"] = odd
    assert via.rport is None
    # The response goes back to the request's source, as for an rport nobody filled in.
    assert response_address(via, ("198.51.100.7", 40000)) == ("198.51.100.7", 40000)


@pytest.mark.parametrize("odd", ODD_DIGITS)
def test_session_expires_of_odd_digits_is_absent(odd) -> None:
    msg = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        + f"Session-Expires: {odd};refresher=uac\r\n".encode()
        + b"Content-Length: 0\r\n\r\n"
    )
    assert _session_expires(msg) is None


@pytest.mark.parametrize("odd", ODD_DIGITS)
def test_sdp_port_of_odd_digits_is_no_port(odd) -> None:
    body = f"v=0\r\nc=IN IP4 192.0.2.5\r\nm=audio {odd} RTP/AVP 0\r\n".encode()
    dest = audio_destination(body)
    assert dest is None or dest[1] == 0


@pytest.mark.parametrize("number", ["+1٢١٢5551234", "¹2125551234", "+1２１２5551234", "٩١١"])
def test_numbers_of_odd_digits_are_not_numbers(number) -> None:
    assert e164(number) is None
    assert analyse(number).kind is Kind.INVALID


@pytest.mark.parametrize("url", ["redis+sentinel://h:¹/m", "redis+sentinel://h:26379/m/¹"])
def test_sentinel_url_of_odd_digits_is_refused_clearly(url) -> None:
    with pytest.raises(RedisUrlError, match="not"):
        parse_sentinel_url(url)


def test_an_address_with_a_label_twice_is_refused_naming_it() -> None:
    with pytest.raises(AddressError, match="two OccupancyIdentifiers"):
        normalize(line="0 FL 0")
