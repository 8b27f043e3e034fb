"""The stateful proxy's message rules (RFC 3261 §16), without I/O.

What changes on a request as it passes the edge — Max-Forwards, our Via, Record-Route,
loose routing of Route — and on a response coming back — our Via removed. The edge
(gateway/edge.py) decides *when*; the routing policy (gateway/routing.py) decides *where*.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.sip.headers import Uri, parse_name_addr, parse_uri, parse_via
from gateway.sip.message import Request, Response, SipError

MAGIC = "z9hG4bK"
# Schemes a carrier edge routes; anything else is 416 (§8.2.2.1, RFC 4475 unkscm).
ROUTABLE_SCHEMES = frozenset({"sip", "sips", "tel"})
# Option tags this proxy understands in Proxy-Require (§16.3 step 4). None yet.
SUPPORTED_PROXY_REQUIRE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Local:
    """Who the edge is on the wire: the host/port it puts in Via and Record-Route."""

    host: str
    port: int
    transport: str = "UDP"

    def is_me(self, uri: Uri) -> bool:
        return uri.host == self.host and (uri.port or 5060) == self.port

    @property
    def record_route(self) -> str:
        return f"<sip:{self.host}:{self.port};lr>"


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def branch_for(*parts: str) -> str:
    """A deterministic branch: the same inputs (a retransmission) give the same branch, so a
    stateless forward (ACK for 2xx) and its retransmissions match downstream."""
    return MAGIC + _digest(*parts)


def validate(req: Request, local: Local) -> tuple[int, str, list[tuple[str, str]]] | None:
    """§16.3 request validation: the error response (status, reason, extra headers) or None."""
    try:
        uri = parse_uri(req.uri)
    except SipError as exc:
        return exc.status, exc.reason, []
    if uri.scheme not in ROUTABLE_SCHEMES:
        return 416, "Unsupported URI Scheme", []
    mf = req.headers.get("Max-Forwards")
    if mf is not None and int(mf) == 0 and req.method != "ACK":
        return 483, "Too Many Hops", []
    unknown = [
        tag
        for value in req.headers.get_all("Proxy-Require")
        for tag in [value.strip()]
        if tag and tag not in SUPPORTED_PROXY_REQUIRE
    ]
    if unknown:
        return 420, "Bad Extension", [("Unsupported", ", ".join(unknown))]
    if is_loop(req, local):
        return 482, "Loop Detected", []
    return None


def is_loop(req: Request, local: Local) -> bool:
    """§16.3 step 4: our own sent-by in a Via with the branch we would compute again."""
    own = MAGIC + _digest(*_loop_key(req))
    for value in req.headers.get_all("Via"):
        try:
            via = parse_via(value)
        except SipError:
            continue
        if via.host == local.host and (via.port or 5060) == local.port and (via.branch or "").startswith(own):
            return True
    return False


def _loop_key(req: Request) -> tuple[str, ...]:
    cseq = req.cseq or (0, req.method)
    return (
        "loop",
        req.uri,
        req.call_id or "",
        req.from_tag or "",
        req.to_tag or "",
        str(cseq[0]),
        ",".join(req.headers.get_all("Route")),
        ",".join(req.headers.get_all("Proxy-Require")),
    )


def next_branch(req: Request, incoming_branch: str | None) -> str:
    """The branch of our Via on a forwarded request. Encodes the loop key (§16.6 step 8),
    so the same request coming back to us is recognised as a loop."""
    return MAGIC + _digest(*_loop_key(req)) + _digest(incoming_branch or "", req.method)


def pop_own_route(req: Request, local: Local) -> None:
    """§16.4: a request whose top Route is us has it removed (loose routing)."""
    routes = req.headers.get_all("Route")
    if not routes:
        return
    try:
        top = parse_name_addr(routes[0]).uri
    except SipError:
        return
    if top.scheme in ("sip", "sips") and local.is_me(top):
        req.headers.pop_first("Route")


def next_hop(req: Request) -> Uri:
    """§16.6 step 6/7: the top Route when there is one (loose router), else the Request-URI."""
    routes = req.headers.get_all("Route")
    if routes:
        return parse_name_addr(routes[0]).uri
    return parse_uri(req.uri)


def prepare_forward(
    req: Request,
    local: Local,
    *,
    request_uri: str | None = None,
    record_route: bool = False,
    branch: str,
) -> Request:
    """A copy of `req` ready to send on: new R-URI, Max-Forwards − 1, our Via on top,
    Record-Route when we stay in the dialog path (§16.6)."""
    headers = req.headers.copy()
    mf = headers.get("Max-Forwards")
    headers.set("Max-Forwards", str(int(mf) - 1) if mf is not None else "70")
    if record_route:
        headers.insert("Record-Route", local.record_route)
    headers.insert("Via", f"SIP/2.0/{local.transport} {local.host}:{local.port};branch={branch}")
    return Request(req.method, request_uri or req.uri, headers, req.body)


def strip_own_via(resp: Response) -> Response | None:
    """§16.7 step 3: remove our Via; None when no Via remains (the response was for us)."""
    headers = resp.headers.copy()
    headers.pop_first("Via")
    if not headers.get_all("Via"):
        return None
    return Response(resp.status, resp.reason, headers, resp.body)


def host_port(uri: Uri) -> tuple[str, int]:
    return uri.host, uri.port or (5061 if uri.scheme == "sips" else 5060)
