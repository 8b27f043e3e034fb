"""The Request-URI and address a call is sent to, from a gateway URI (gateway/routing.py)."""

from __future__ import annotations

import pytest

from gateway.routing import target_for


@pytest.mark.parametrize(("gateway", "uri", "addr"), [
    ("sip:127.0.0.3:5070", "sip:+12125551234@127.0.0.3:5070", ("127.0.0.3", 5070)),
    # How to reach the gateway is part of its URI: transport=tcp must survive (§18.1.1).
    ("sip:127.0.0.3:5070;transport=tcp", "sip:+12125551234@127.0.0.3:5070;transport=tcp",
     ("127.0.0.3", 5070)),
    ("sip:[2001:db8::1]:5070;lr", "sip:+12125551234@[2001:db8::1]:5070;lr", ("2001:db8::1", 5070)),
    ("sips:gw.example.com", "sips:+12125551234@gw.example.com", ("gw.example.com", 5061)),
])  # fmt: skip
def test_target_keeps_the_gateway_host_port_and_parameters(gateway, uri, addr) -> None:
    assert target_for(gateway, "+12125551234") == (uri, addr)
