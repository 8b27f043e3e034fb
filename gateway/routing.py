"""The edge's routing policy: who may call what, and where it goes (Kamailio's script, as code).

Kept apart from the protocol core: the edge hands an INVITE and its source here and gets
back an Outcome — forward to a target, or refuse with a status and a reason that cites the
SPEC rule. Trunk identification (A8), ANI (A4), the rater's decision, and the trunk slot
(A1) happen here in that order; 911 skips the slot (E7). Before the slot, the customer's
toll-fraud caps (rater/caps.py): new calls per second and concurrent calls across all of
its trunk groups — 911 never meets them either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from e911_router.routing import E911Route
from e911_router.routing import route_call as e911_route_call
from gateway.ani import forwarded_from, oli_digits, originating_ani
from gateway.guard import Guard
from gateway.proxy import host_port
from gateway.sip.digest import Credential, DigestAuthenticator, credentials_username
from gateway.sip.headers import parse_name_addr, parse_uri
from gateway.sip.message import Request, SipError
from rater.admission import REDIS_DOWN, FailOpen, SlotStore
from rater.caps import CustomerCaps
from rater.credit import CreditGuard
from rater.decision import CallFacts, Decision, decide
from rater.numbers import normalize
from services import logs, metrics
from services.inventory import Inventory, TrunkGroup

log = logs.get("routing")


@dataclass(slots=True)
class Outcome:
    decision: Decision | None
    trunk: TrunkGroup | None
    status: int = 0  # 0: forward; else the SIP status to answer with
    reason: str = ""
    rule: str | None = None
    request_uri: str | None = None
    addr: tuple[str, int] | None = None
    slot_held: bool = False
    customer_lease: bool = False  # a lease of the customer's concurrent-call cap (caps.py)
    emergency_level: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # extra headers of a refusal (challenges)
    e911: E911Route | None = None  # a 911 call: its level and targets, in order (E1-E7)
    attempt: int = 0  # which of e911.targets the call is on now

    @property
    def forward(self) -> bool:
        return self.status == 0

    @property
    def e911_route_taken(self) -> str | None:
        """The 911 targets tried, in order: 'psap:fl-pinellas>national' (the CDR's route)."""
        if self.e911 is None:
            return None
        return ">".join(t.label for t in self.e911.targets[: self.attempt + 1]) or None


def target_for(gateway_uri: str, user: str) -> tuple[str, tuple[str, int]]:
    """The Request-URI for `user` at a gateway URI, and the address to send it to."""
    gw = parse_uri(gateway_uri)
    port_part = f":{gw.port}" if gw.port else ""
    # The gateway's parameters (transport=tcp above all) stay: they say how to reach it.
    params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in gw.params.items())
    host = f"[{gw.host}]" if ":" in gw.host else gw.host
    return f"{gw.scheme}:{user}@{host}{port_part}{params}", host_port(gw)


def from_tn(req: Request) -> str | None:
    """Rule E2: the calling TN as the From URI's user part has it (E.164), or None."""
    try:
        user = parse_name_addr(req.headers.get("From") or "").uri.user
    except SipError:
        return None
    return normalize(user.split(";", 1)[0]) if user else None


def dialled_user(req: Request) -> str:
    """The dialled number: the Request-URI user part, else the To user part."""
    try:
        uri = parse_uri(req.uri)
        if uri.user:
            return uri.user
        to = req.headers.get("To")
        if to:
            return parse_name_addr(to).uri.user or ""
    except SipError:
        pass
    return ""


class Router:
    def __init__(
        self,
        inventory: Callable[[], Inventory],
        slots: SlotStore,
        auth: DigestAuthenticator | None = None,
        credit: CreditGuard | None = None,
        e911_notifier=None,  # e911_router.notify.Notifier: on-site notification per 911 call
        caps: CustomerCaps | None = None,
        fail_open: FailOpen | None = None,  # None: Redis down → the error (fail-closed)
    ) -> None:
        self._inventory = inventory
        self.slots = slots
        self.caps = caps
        self.fail_open = fail_open
        self.auth = auth
        self.credit = credit
        self.e911_notifier = e911_notifier
        self.guard: Guard | None = None  # counts digest failures (gateway/guard.py); set by the node

    def _authenticate(self, inv: Inventory, req: Request, source_ip: str) -> TrunkGroup | Outcome:
        """Rule A8 by digest (RFC 8760): the trunk whose credentials the INVITE proves, or
        the refusal — 407 with fresh challenges, the same for every number and user."""
        assert self.auth is not None

        def lookup(username: str, realm: str) -> Credential | None:
            tg = inv.trunk_for_user(username)
            if tg is None or tg.digest_realm != realm:
                return None
            return Credential(username, realm, dict(tg.digest_ha1))

        if req.headers.get("Proxy-Authorization"):
            user = credentials_username(req.headers.get("Proxy-Authorization"))
            locked = self.guard is not None and self.guard.locked(user, time.monotonic())
            result = self.auth.verify_request(req, lookup, proxy=True)
            if result.ok and result.username and not locked:
                tg = inv.trunk_for_user(result.username)
                if tg is not None:
                    if self.guard is not None:
                        self.guard.auth_ok(source_ip, time.monotonic())
                    return tg
            if not result.stale or locked:
                # A locked-out username gets the answer of a wrong password: the same 403.
                if self.guard is not None:
                    self.guard.auth_failed(source_ip, user, time.monotonic())
                log.info("digest_refused", reason="locked out" if locked else result.reason,
                         call_id=req.call_id)  # fmt: skip
                metrics.admission_rejections_total.labels(cause="A8").inc()
                return Outcome(None, None, 403, "Forbidden", "A8")
            stale = True
        else:
            stale = False
        challenges = tuple(("Proxy-Authenticate", c) for c in self.auth.challenge(stale=stale))
        return Outcome(None, None, 407, "Proxy Authentication Required", "A8", headers=challenges)

    async def route_invite(self, req: Request, source_ip: str, call_id: str) -> Outcome:
        inv = self._inventory()
        tg = inv.trunk_for_source(source_ip)
        # Challenge only where some trunk authenticates by digest; otherwise an unknown
        # source is simply refused (and scanners are not invited to guess passwords).
        if tg is None and self.auth is not None and inv.has_digest_trunks:
            found = self._authenticate(inv, req, source_ip)
            if isinstance(found, Outcome):
                return found
            tg = found
        if tg is None:
            # Rule A8: same answer whatever the number, so nothing is revealed.
            metrics.admission_rejections_total.labels(cause="A8").inc()
            return Outcome(None, None, 403, "Forbidden", "A8")
        ani, source = originating_ani(req, tg.ani_precedence)
        t0 = time.perf_counter()
        decision = decide(
            inv,
            CallFacts(dnis=dialled_user(req), ani=ani, ani_source=source, trunk_group_id=tg.id,
                      oli=oli_digits(req), forwarded_from=forwarded_from(req),
                      source_ip=source_ip, user_agent=req.headers.get("User-Agent")),
        )  # fmt: skip
        if self.credit is not None:
            try:
                decision = await self.credit.admit(decision)  # rule A6; 911 passes (E7)
            except REDIS_DOWN as exc:
                if self.fail_open is None:
                    raise
                self.fail_open.degraded("credit", exc)  # fail-open: A6 unchecked meanwhile
        out = Outcome(decision, tg)
        if decision.action == "reject":
            metrics.admission_rejections_total.labels(cause=decision.rule or "other").inc()
            out.status, out.reason, out.rule = (
                decision.sip_status or 403,
                decision.reason or "refused",
                decision.rule,
            )
            return out
        carrier = inv.carriers.get(decision.carrier_id or "")
        if decision.action == "emergency":
            # Rule E7: no slot, no credit, no suspension check; the E911 router picks the
            # route by the caller's registered address.
            self._emergency(inv, req, tg, out, call_id)
            metrics.decision_seconds.observe(time.perf_counter() - t0)
            return out
        if carrier is None:
            out.status, out.reason, out.rule = 503, "no route to a carrier", "R3"
            return out
        out.request_uri, out.addr = target_for(carrier.gateway_uri, decision.dnis)
        customer = inv.customers.get(tg.customer_id)
        if self.caps is not None and customer is not None:
            refusal, out.customer_lease = await self.caps.admit(customer, call_id)
            if refusal is not None:
                metrics.admission_rejections_total.labels(cause=refusal.cause).inc()
                # 503 like a full trunk group (A1): "not now"; the cap is named (A7).
                out.status, out.rule, out.reason = 503, "A7", refusal.reason
                if refusal.retry_after is not None:
                    out.headers = (("Retry-After", str(refusal.retry_after)),)
                return out
        acquired = False
        try:
            acquired = await self.slots.acquire(tg.id, call_id, tg.trunks)
        finally:
            if not acquired:  # refused or Redis away: the customer's lease goes back too
                await self.release_customer(out, call_id)
        if not acquired:
            metrics.admission_rejections_total.labels(cause="A1").inc()
            out.status, out.rule = 503, "A1"
            out.reason = f"all {tg.trunks} trunks of {tg.id} are in use"
            return out
        out.slot_held = True
        metrics.slots_in_use.inc()
        metrics.admissions_total.labels(direction="outbound").inc()
        metrics.decision_seconds.observe(time.perf_counter() - t0)
        return out

    async def release_customer(self, out: Outcome, call_id: str) -> None:
        """Give back the customer's concurrent-call lease, once (the edge's end of a call
        and a refusal after the lease both come here)."""
        if out.customer_lease and out.trunk is not None and self.caps is not None:
            out.customer_lease = False
            await self.caps.release(out.trunk.customer_id, call_id)

    def _emergency(self, inv: Inventory, req: Request, tg: TrunkGroup, out: Outcome,
                   call_id: str) -> None:  # fmt: skip
        tn = from_tn(req)
        r = e911_route_call(inv, tn, tg)
        out.e911, out.emergency_level = r, r.level
        log.warning("e911_call", tn=tn, customer=tg.customer_id, level=r.level, rule=r.rule,
                    reason=r.reason, route=[t.label for t in r.targets])  # fmt: skip
        if self.e911_notifier is not None:
            self.e911_notifier.record(call_id, r)
        if not r.targets:
            out.status, out.rule, out.reason = 503, "E7", "no 911 route provisioned"
            return
        out.request_uri, out.addr = target_for(r.targets[0].uri, "911")
