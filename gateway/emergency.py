"""What a 911 INVITE carries to its target (rules E1, E2): callback number and location.

An E911 PSAP gets the caller's TN in P-Asserted-Identity and the registered address by
value (RFC 6442: Geolocation, Geolocation-Routing, multipart body with the SDP and the
PIDF-LO). A basic PSAP gets the call as the PBX sent it. The national call center gets the
callback number when one is known: its agent still asks for the location (E1).
"""

from __future__ import annotations

from e911_router.pidf import with_location
from e911_router.routing import E911Route, Target
from gateway.sip.message import Request

# What a PIDF-LO and its multipart framing add to an INVITE, near enough to pick the
# transport before the body is built.
LOCATION_BYTES = 1400


def carries_location(route: E911Route, target: Target) -> bool:
    return target.kind == "psap" and route.sends_location


def prepare(fwd: Request, route: E911Route, target: Target, host: str) -> None:
    h = fwd.headers
    h.set("Priority", "emergency")
    if route.callback and not (target.kind == "psap" and route.level == "basic"):
        h.set("P-Asserted-Identity", f"<sip:{route.callback}@{host};user=phone>")
    if carries_location(route, target):
        assert route.address is not None and route.callback is not None
        content_type, body, geolocation = with_location(
            h.get("Content-Type"), fwd.body, route.callback, route.address, host, fwd.call_id or ""
        )
        h.set("Content-Type", content_type)
        h.set("Geolocation", geolocation)
        h.set("Geolocation-Routing", "yes")
        fwd.body = body
