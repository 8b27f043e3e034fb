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
    """Who the edge is on the wire: the host and ports it puts in Via and Record-Route."""

    host: str
    port: int
    tls_port: int | None = None
    aliases: tuple[int, ...] = ()  # the shared port of several workers (SO_REUSEPORT)

    def is_me(self, uri: Uri) -> bool:
        if uri.host != self.host:
            return False
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        return port in (self.port, self.tls_port) or port in self.aliases

    def port_for(self, transport: str) -> int:
        return self.tls_port if transport == "TLS" and self.tls_port else self.port

    def record_route(self, transport: str) -> str:
        """Our Record-Route URI as seen from a peer on `transport` (RFC 3261 §16.6 step 4)."""
        param = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{self.host}:{self.port_for(transport)}{param};lr>"

    def via(self, transport: str, branch: str) -> str:
        return f"SIP/2.0/{transport} {self.host}:{self.port_for(transport)};branch={branch}"


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
    vias = req.headers.get_all("Via")
    if len(vias) < 2 and not any(local.host in v for v in vias):
        return False  # the common case: a request straight from a PBX or carrier
    own = MAGIC + _digest(*_loop_key(req))
    for value in vias:
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
    """§16.4: Route entries that are us are removed (loose routing). There may be two when
    we Record-Routed twice on a transport change (RFC 5658)."""
    while routes := req.headers.get_all("Route"):
        try:
            top = parse_name_addr(routes[0]).uri
        except SipError:
            return
        if top.scheme not in ("sip", "sips") or not local.is_me(top):
            return
        req.headers.pop_first("Route")


def next_hop(req: Request) -> Uri:
    """§16.6 step 6/7: the top Route when there is one (loose router), else the Request-URI."""
    routes = req.headers.get_all("Route")
    if routes:
        return parse_name_addr(routes[0]).uri
    return parse_uri(req.uri)


def transport_for(uri: Uri, size: int = 0) -> str:
    """§18.1.1 and RFC 3263 in their simplest form: the URI's transport parameter, TLS for
    sips, else UDP — and TCP for a request too large for a datagram (over 1300 bytes)."""
    if uri.scheme == "sips":
        return "TLS"
    param = (uri.params.get("transport") or "").upper()
    if param in ("TCP", "TLS"):
        return param
    if size > 1300 and param != "UDP":
        return "TCP"
    return "UDP"


def prepare_forward(
    req: Request,
    local: Local,
    *,
    branch: str,
    transport: str = "UDP",
    request_uri: str | None = None,
    record_route: tuple[str, ...] = (),
) -> Request:
    """A copy of `req` ready to send on: new R-URI, Max-Forwards − 1, our Via on top, our
    Record-Route entries when we stay in the dialog path (§16.6)."""
    headers = req.headers.copy()
    mf = headers.get("Max-Forwards")
    headers.set("Max-Forwards", str(int(mf) - 1) if mf is not None else "70")
    for rr in reversed(record_route):
        headers.insert("Record-Route", rr)
    headers.insert("Via", local.via(transport, branch))
    return Request(req.method, request_uri or req.uri, headers, req.body)


def record_routes(local: Local, inbound: str, outbound: str) -> tuple[str, ...]:
    """RFC 5658: on a transport change, Record-Route twice — the entry the callee sees
    first (outbound side) on top, then the one the caller uses (inbound side)."""
    if inbound == outbound:
        return (local.record_route(inbound),)
    return (local.record_route(outbound), local.record_route(inbound))


def strip_own_via(resp: Response, local: Local) -> Response | None:
    """§16.7 step 3: remove our Via. None when the top Via is not ours (the response was not
    for us: drop it, never forward it — RFC 4475 bcast) or no Via remains below it."""
    try:
        top = resp.top_via
    except SipError:
        return None
    if top is None or top.host != local.host:
        return None
    if (top.port or 5060) not in (local.port, local.tls_port, *local.aliases):
        return None
    # The parsed response is ours alone: edit it in place rather than copy its headers.
    resp.headers.pop_first("Via")
    if not resp.headers.get("Via"):
        return None
    return resp


def host_port(uri: Uri) -> tuple[str, int]:
    return uri.host, uri.port or (5061 if uri.scheme == "sips" else 5060)
