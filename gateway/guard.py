"""Flood and scan protection for the SIP edge (Kamailio's pike and secfilter, as a policy).

Theory of operation
-------------------
Every message the edge parses passes `Guard.check(source_ip, msg, now)` first; a cause
means "drop it": the source hears nothing back. Silence, not an error status, because an
answer confirms to a scanner that a SIP server lives here and costs us a send per packet.

- *Trusted sources* — the provisioned PBXs (trunk `source_ips`) and the carrier, PSAP and
  national call center hosts — are never rate-limited or banned: a customer's busy PBX or
  a carrier's burst of BYEs must not lock calls out, and 911 from a trunk is never dropped.
- *Scanner signatures*: a User-Agent (or Server) matching a known scanner (friendly-scanner
  is SIPVicious's, sipcli, sipsak, VaxSIPUserAgent, …) bans its source at once.
- *Flood*: each other source has a token bucket of `rate` messages per second (`burst`
  deep); the message that finds it empty bans the source.
- *Authentication failures*: `auth_failed(source, username)` counts digest failures; after
  `max_auth_failures` from one source in `auth_window` seconds the source is banned, and
  after `max_user_failures` for one username (from anywhere) that username is locked out
  for `lockout_seconds`: `locked(username)` tells the router to refuse it without checking
  (the same 403 as a wrong password, so a guesser learns nothing — and a distributed guesser
  can lock a real trunk's username out for that long: the price of stopping the guessing).
- A ban lasts `ban_seconds`, counted from the last packet seen while banned (a scanner that
  keeps sending stays banned), like pike's.

Memory is bounded: buckets and counters are LRU tables (services/ratelimit.py) and the ban
table holds at most `max_banned` sources (oldest forgotten first). Per edge process: with
several SIP workers each bans on its own (a flood still meets every worker's limit).
Sans-I/O with an injected clock (`now` in seconds): tested without sockets or sleeping.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.sip.message import Request, Response
from services import logs, metrics
from services.ratelimit import KeyedBuckets

log = logs.get("guard")

# User-Agent / Server values of SIP scanners and war-dialers seen on the internet.
SCANNER_AGENTS = (
    "friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipsak", "sundayddr", "iwar",
    "sivus", "vaxsipuseragent", "vaxasip", "smap", "pplsip", "voiper", "sip scanner",
    "cafe", "sipptk", "nmap",
)  # fmt: skip


@dataclass(slots=True)
class GuardPolicy:
    rate: float = 30.0  # messages per second from one untrusted source
    burst: float = 60.0
    ban_seconds: float = 300.0
    scanner_agents: tuple[str, ...] = SCANNER_AGENTS
    max_auth_failures: int = 5  # per source within auth_window → ban
    max_user_failures: int = 20  # per username within auth_window → lockout
    auth_window: float = 300.0
    lockout_seconds: float = 900.0
    max_tracked: int = 100_000
    max_banned: int = 100_000

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.ban_seconds <= 0:
            raise ValueError("guard rate, burst and ban_seconds must be positive")
        if self.max_auth_failures < 1 or self.max_user_failures < 1:
            raise ValueError("guard failure limits must be at least 1")


class Guard:
    VOUCH_SECONDS = 3600.0

    def __init__(self, policy: GuardPolicy, trusted: Callable[[str], bool] = lambda _ip: False) -> None:
        self.policy = policy
        self.trusted = trusted
        self._flood = KeyedBuckets(policy.rate, policy.burst, policy.max_tracked)
        window = policy.auth_window
        # A failure bucket: `max` failures at once, refilled over the window.
        self._src_failures = KeyedBuckets(policy.max_auth_failures / window,
                                          policy.max_auth_failures, policy.max_tracked)  # fmt: skip
        self._user_failures = KeyedBuckets(policy.max_user_failures / window,
                                           policy.max_user_failures, policy.max_tracked)  # fmt: skip
        self._banned: OrderedDict[str, float] = OrderedDict()  # source → banned until
        self._locked: OrderedDict[str, float] = OrderedDict()  # username → locked until
        # Sources that proved a trunk's digest credentials lately: exempt like trusted ones
        # (a digest PBX has no fixed address to list, but may be as busy as one that has).
        self._vouched: OrderedDict[str, float] = OrderedDict()
        agents = "|".join(re.escape(a) for a in policy.scanner_agents if a)
        self._scanner = re.compile(agents, re.I) if agents else None

    # ---- the per-message check ---------------------------------------------------------

    def check(self, source: str, msg: Request | Response, now: float) -> str | None:
        """None: let the message in. Otherwise the cause to drop it (metrics counted)."""
        until = self._banned.get(source)
        if until is not None:
            if now < until:
                self._banned[source] = max(until, now + self.policy.ban_seconds)
                self._banned.move_to_end(source)
                return self._drop("banned")
            del self._banned[source]
        if self._scanner is not None:
            agent = msg.headers.get("User-Agent" if isinstance(msg, Request) else "Server")
            if agent and self._scanner.search(agent) and not self.trusted(source):
                return self._ban(source, now, "scanner", agent=agent[:60])
        if self._flood.take(source, now) or self.trusted(source) or self._vouched_for(source, now):
            return None
        return self._ban(source, now, "flood")

    # ---- authentication failures -------------------------------------------------------

    def auth_failed(self, source: str, username: str | None, now: float) -> None:
        if username and not self._user_failures.take(username, now):
            if username not in self._locked:
                metrics.sip_guard_bans_total.labels(cause="user_lockout").inc()
                log.warning("sip_user_locked_out", username=username[:60], source=source,
                            seconds=self.policy.lockout_seconds)  # fmt: skip
            self._locked[username] = now + self.policy.lockout_seconds
            self._locked.move_to_end(username)
            if len(self._locked) > self.policy.max_banned:
                self._locked.popitem(last=False)
        if not self._src_failures.take(source, now) and not self.trusted(source):
            self._ban(source, now, "auth_failures")

    def auth_ok(self, source: str, now: float) -> None:
        self._vouched[source] = now + self.VOUCH_SECONDS
        self._vouched.move_to_end(source)
        if len(self._vouched) > self.policy.max_tracked:
            self._vouched.popitem(last=False)

    def _vouched_for(self, source: str, now: float) -> bool:
        return self._vouched.get(source, now) > now

    def locked(self, username: str | None, now: float) -> bool:
        until = self._locked.get(username or "")
        if until is None:
            return False
        if now < until:
            return True
        del self._locked[username or ""]
        return False

    def banned(self, source: str, now: float) -> bool:
        return self._banned.get(source, now) > now

    # ---- internals ---------------------------------------------------------------------

    def _ban(self, source: str, now: float, cause: str, **detail) -> str:
        if source not in self._banned:
            metrics.sip_guard_bans_total.labels(cause=cause).inc()
            log.warning("sip_source_banned", source=source, cause=cause,
                        seconds=self.policy.ban_seconds, **detail)  # fmt: skip
        self._banned[source] = now + self.policy.ban_seconds
        self._banned.move_to_end(source)
        if len(self._banned) > self.policy.max_banned:
            self._banned.popitem(last=False)
        metrics.sip_guard_banned_sources.set(len(self._banned))
        return self._drop(cause)

    @staticmethod
    def _drop(cause: str) -> str:
        metrics.sip_guard_drops_total.labels(cause=cause).inc()
        return cause


class TrustedSources:
    """Sources never limited: the trunks' PBXs, and every carrier, PSAP and national call
    center host the inventory routes to (their requests are BYEs and inbound calls).
    Rebuilt when the inventory object changes (a reload swaps it)."""

    def __init__(self, inventory: Callable[[], object]) -> None:
        self._inventory = inventory
        self._for: object = None
        self._hosts: frozenset[str] = frozenset()

    def __call__(self, ip: str) -> bool:
        inv = self._inventory()
        if inv is not self._for:
            self._hosts, self._for = _route_hosts(inv), inv
        return ip in self._hosts or inv.trunk_for_source(ip) is not None  # type: ignore[attr-defined]


def _route_hosts(inv) -> frozenset[str]:
    uris = [c.gateway_uri for c in inv.carriers.values()]
    uris += [p.route_uri for p in inv.e911.psaps.values() if p.route_uri]
    if inv.e911.national_call_center:
        uris.append(inv.e911.national_call_center)
    hosts = set()
    for uri in uris:
        m = _URI_HOST.match(uri)
        if m:
            hosts.add(m.group(1))
    return frozenset(hosts)


_URI_HOST = re.compile(r"sips?:(?:[^@]*@)?\[?([^\]:;>]+)", re.I)
