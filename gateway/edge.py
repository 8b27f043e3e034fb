"""The SIP edge: asyncio transport around the sans-I/O core.

Datagrams are parsed (gateway.sip.message), fed to the TransactionManager, and its outputs
executed here: bytes to send, requests and responses for the proxy logic below, timers.
The proxy logic keeps one Call per INVITE dialog, asks the routing policy for each new
INVITE, relays responses, routes in-dialog requests (Record-Route puts us in the path),
and ends every call exactly once — releasing its trunk slot and publishing its CDR.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from gateway import emergency, proxy, readback
from gateway.calls import Call, disposition_for, wall_now
from gateway.dialogs import DialogStore, NoDialogStore, decision_from, to_record
from gateway.guard import Guard
from gateway.overload import Overload
from gateway.proxy import Local
from gateway.routing import Outcome, Router, dialled_user, target_for
from gateway.sip.headers import parse_name_addr, parse_uri, parse_via
from gateway.sip.message import Headers, Request, Response, SipError, build_response
from gateway.sip.transactions import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionManager,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    response_address,
)
from gateway.sip.transactions import State as TxState
from gateway.transports import Transports
from rater.caps import lease_key
from rater.numbers import analyse
from services import logs, metrics
from services.cdr import CdrEvent
from services.ratelimit import KeyedBuckets

log = logs.get("edge")

KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
     "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"}
)  # fmt: skip
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY"

# Bound metric children: labels() per message is a dict lookup and a lock we need not pay.
_REQUESTS = {m: metrics.sip_requests_total.labels(method=m) for m in (*KNOWN_METHODS, "other")}
_SENT: dict[int, object] = {}


def _sent(status: int) -> None:
    child = _SENT.get(status)
    if child is None:
        child = _SENT[status] = metrics.sip_responses_sent_total.labels(status=str(status))
    child.inc()  # type: ignore[attr-defined]


class Edge:
    def __init__(
        self,
        router: Router,
        local: Local,
        publish: Callable[[CdrEvent], Awaitable[None]],
        *,
        name: str = "edge",
        max_call_seconds: float = 4 * 3600,
        ring_timeout_seconds: float = 180,
        slot_refresh_seconds: float = 30,
        dialogs: DialogStore | NoDialogStore | None = None,
        e911_failover_seconds: float = 4,
        overload: Overload | None = None,
    ) -> None:
        self.router = router
        self.local = local
        self.name = name
        self._publish = publish
        self.max_call_seconds = max_call_seconds
        self.ring_timeout_seconds = ring_timeout_seconds
        self.slot_refresh_seconds = slot_refresh_seconds
        # A 911 attempt silent this long (no provisional) moves to the next target (E4).
        self.e911_failover_seconds = e911_failover_seconds
        self.dialogs = dialogs or NoDialogStore()
        self.overload = overload
        self.guard: Guard | None = None  # flood/scan protection (gateway/guard.py), set by the node
        self.tm = TransactionManager()
        self.calls: dict[str, Call] = {}
        self._by_server_tx: dict[str, Call] = {}
        self._by_client_tx: dict[str, Call] = {}
        # In-dialog requests forwarded statefully: client tx → the server tx to answer on.
        self._relay: dict[str, str] = {}
        # In-dialog INVITE/UPDATE in flight: a 2xx refreshes the session (RFC 4028).
        self._refreshes: dict[str, Call] = {}
        self.transports: Transports | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task] = set()
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task | None = None
        self.readback: readback.ReadBack | None = None  # 933 answered here (set by start)
        # 911 attempts given up by a failover, by branch: a late 2xx is ACKed and hung up.
        self._abandoned: dict[str, _Abandoned] = {}
        # A scanner's INVITEs from unknown sources: logged at most ~1/s, the rest counted.
        self._unknown_log = KeyedBuckets(rate=1, burst=5, max_keys=1)
        self._unknown_unlogged = 0

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, host: str, port: int, *, tcp: bool = True,
                    tls: ssl.SSLContext | None = None, tls_port: int | None = None,
                    client_tls: ssl.SSLContext | None = None, reuse_port: bool = False,
                    own_port: int | None = None) -> None:  # fmt: skip
        """Listen on `port`; a worker among several (reuse_port) also owns `own_port`, which
        is in its Via and Record-Route so responses and in-dialog requests come back to it."""
        self._loop = asyncio.get_running_loop()
        self.readback = readback.ReadBack(self, host)
        self.transports = Transports(self.on_message, self.on_rejected, client_tls=client_tls,
                                     unreachable=self._on_unreachable)  # fmt: skip
        if own_port is not None:
            # First, so it is the socket we send from: replies to our source reach us too.
            await self.transports.listen_udp(host, own_port)
            if tcp:
                await self.transports.listen_stream(host, own_port, "TCP")
        await self.transports.listen_udp(host, port, reuse_port=reuse_port)
        if tcp:
            await self.transports.listen_stream(host, port, "TCP", reuse_port=reuse_port)
        if tls is not None and tls_port:
            await self.transports.listen_stream(host, tls_port, "TLS", tls=tls, reuse_port=reuse_port)
        self._refresher = self._spawn(self._refresh_slots())
        await self.recover()
        log.info("sip_listening", host=host, port=port, tcp=tcp, tls_port=tls_port if tls else None)

    async def stop(self, drain_seconds: float = 0) -> None:
        """Refuse new calls (503), let running ones finish for up to drain_seconds."""
        self._draining = True
        deadline = asyncio.get_running_loop().time() + drain_seconds
        while self.calls and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        for call in list(self.calls.values()):
            await self._finish(call, "truncated", None, "edge stopped")
        if self._refresher is not None:
            self._refresher.cancel()
        # Calls that ended just now are still publishing their CDRs: let them.
        pending = [t for t in self._tasks if t is not self._refresher]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self.transports is not None:
            self.transports.close()
        if self._timer:
            self._timer.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("edge_task_failed", error=repr(task.exception()))

    # ---- wire in ---------------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def on_message(self, msg: Request | Response, addr: tuple[str, int], transport: str) -> None:
        if self.guard is not None and self.guard.check(addr[0], msg, self.now()):
            return  # banned or scanning: silence
        if isinstance(msg, Request):
            _REQUESTS.get(msg.method, _REQUESTS["other"]).inc()
        self._run(self.tm.receive(msg, addr, transport, self.now()))

    def on_rejected(self, data: bytes, addr: tuple[str, int], transport: str, exc: SipError) -> None:
        """A message the parser refused. A request we can still address gets the error
        status statelessly (400, 505 …, RFC 4475); a broken response is dropped."""
        log.info("sip_parse_error", source=f"{addr[0]}:{addr[1]}", transport=transport,
                 error=exc.reason)  # fmt: skip
        req = exc.partial
        if not isinstance(req, Request) or req.method == "ACK":
            return
        if self.guard is not None and self.guard.check(addr[0], req, self.now()):
            return
        try:
            resp = build_response(req, exc.status, None, to_tag=_tag(req),
                                  headers=[("Warning", f'399 {self.local.host} "{_printable(exc.reason)}"')])  # fmt: skip
            dest = addr
            if transport == "UDP":
                with contextlib.suppress(SipError):  # an unreadable Via: answer the source
                    dest = response_address(req.top_via, addr)
            wire = resp.to_bytes()
        except (SipError, ValueError):
            return  # not even a Via to answer to: silence
        _sent(exc.status)
        self._send(wire, dest, transport)

    # ---- transaction outputs ---------------------------------------------------------

    def _run(self, outputs) -> None:
        for out in outputs:
            if isinstance(out, Transmit):
                self._send(out.data, out.addr, out.transport)
            elif isinstance(out, RequestReceived):
                self._on_request(out.tx, out.request, out.addr, out.transport)
            elif isinstance(out, ResponseReceived):
                self._on_response(out.tx, out.response)
            elif isinstance(out, CancelReceived):
                self._on_cancel(out.tx, out.invite_tx, out.request)
            elif isinstance(out, TransactionTimeout):
                self._on_timeout(out.tx, out.kind, out.cause)
            elif isinstance(out, StrayResponse):
                self._forward_stray(out.response)
            elif isinstance(out, TransactionTerminated):
                self._by_server_tx.pop(out.tx, None)
                self._by_client_tx.pop(out.tx, None)
                self._relay.pop(out.tx, None)
                self._refreshes.pop(out.tx, None)
        self._arm()

    def _send(self, data: bytes, addr: tuple[str, int], transport: str = "UDP") -> None:
        if self.guard is not None and self.guard.banned(addr[0], self.now()):
            return  # no retransmissions to a banned source either (nor to a spoofed victim)
        if self.transports is not None:
            self.transports.send(data, addr, transport)

    def _arm(self) -> None:
        deadline = self.tm.next_deadline()
        if deadline is None:
            if self._timer:
                self._timer.cancel()
                self._timer, self._timer_at = None, None
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self._run(self.tm.tick(self.now()))

    def _respond(self, tx: str, req: Request, status: int, reason: str | None = None,
                 headers: list[tuple[str, str]] | None = None, to_tag: str | None = None,
                 body: bytes = b"") -> Response:  # fmt: skip
        resp = build_response(req, status, reason, to_tag=to_tag or _tag(req), headers=headers or [])
        resp.body = body
        _sent(status)
        self._run(self.tm.send_response(tx, resp, self.now()))
        return resp

    # ---- requests --------------------------------------------------------------------

    def _on_request(self, tx: str | None, req: Request, addr: tuple[str, int], transport: str) -> None:
        if tx is None:  # ACK for a 2xx: end to end, forwarded statelessly (§16.6, §17)
            self._forward_ack(req)
            return
        if req.method not in KNOWN_METHODS:
            self._respond(tx, req, 501, headers=[("Allow", ALLOW)])
            return
        problem = proxy.validate(req, self.local)
        if problem is not None:
            status, reason, extra = problem
            self._respond(tx, req, status, reason, extra)
            return
        if req.to_tag:
            self._forward_in_dialog(tx, req)
        elif req.method == "INVITE":
            self._new_call(tx, req, addr, transport)
        elif req.method == "OPTIONS":
            # Keep-alive pings from PBXs and carriers are answered here (§11).
            self._respond(tx, req, 200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif req.method == "REGISTER":
            # A trunking edge has no registrar: trunks are identified by IP (A8).
            self._respond(tx, req, 405, headers=[("Allow", ALLOW)])
        else:
            self._respond(tx, req, 403, "Forbidden")

    def _new_call(self, tx: str, req: Request, addr: tuple[str, int], transport: str) -> None:
        call_id = req.call_id or ""
        if self._draining:
            self._respond(tx, req, 503, "Service Unavailable", [("Retry-After", "30")])
            return
        if call_id in self.calls:
            # Same Call-ID, new transaction, no To tag: a fork looping back or a broken UA.
            self._respond(tx, req, 482, "Loop Detected")
            return
        ov = self.overload
        if ov is not None and not analyse(dialled_user(req)).is_emergency:  # E7: never shed 911
            cause = ov.admit(self.now())
            if cause is not None:
                metrics.overload_rejections_total.labels(cause=cause).inc()
                self._respond(tx, req, 503, "Service Unavailable",
                              [("Retry-After", str(ov.policy.retry_after_seconds))])  # fmt: skip
                return
        self._respond(tx, req, 100, "Trying")
        call = Call(call_id=call_id, server_tx=tx, invite=req, source=addr, transport=transport,
                    started_wall=wall_now(), started_mono=self.now())  # fmt: skip
        call.caller_tag = req.from_tag
        call.caller_from = req.headers.get("From")
        call.caller_cseq = req.cseq[0] if req.cseq else 1
        contact = req.headers.get("Contact")
        if contact:
            with contextlib.suppress(SipError):
                call.caller_target = str(parse_name_addr(contact).uri)
        self.calls[call_id] = call
        self._by_server_tx[tx] = call
        metrics.active_calls.inc()
        if self.overload is not None:
            self.overload.pending += 1
        self._spawn(self._route(call))

    async def _route(self, call: Call) -> None:
        t0 = self.now()
        try:
            try:
                outcome = await self.router.route_invite(call.invite, call.source[0], call.call_id)
            finally:
                if self.overload is not None:
                    self.overload.pending -= 1
        except Exception as exc:
            # Admission store unreachable: fail closed for ordinary calls (911 takes no slot
            # and never gets here with an error).
            log.error("routing_failed", call_id=call.call_id, error=repr(exc))
            metrics.admission_rejections_total.labels(cause="unavailable").inc()
            outcome = Outcome(None, None, 503, "admission unavailable", "A1")
        call.outcome = outcome
        if call.ended:  # ended while we waited (edge stopping)
            await self._release(call)
            return
        if not outcome.forward:
            warn = f'399 {self.local.host} "{outcome.rule}: {outcome.reason}"'
            reason = f'SIP;cause={outcome.status};text="{outcome.rule}: {outcome.reason}"'
            headers = [("Reason", reason), ("Warning", warn)] if outcome.rule != "A8" else []
            headers += list(outcome.headers)
            call.final_status = outcome.status
            self._respond(call.server_tx, call.invite, outcome.status, None, headers)
            # A digest challenge is a step of the call setup, not an attempt: no CDR. Nor
            # is an INVITE from a source no trunk owns (A8): scanners would grow the cdrs
            # table without bound; it is counted (admission_rejections_total) and logged.
            unknown = outcome.rule == "A8" and outcome.trunk is None
            if unknown and outcome.status != 407:
                self._log_unknown_source(call)
            await self._finish(call, "rejected", outcome.status, f"{outcome.rule}: {outcome.reason}",
                               record=outcome.status != 407 and not unknown)  # fmt: skip
            return
        if call.cancelled:
            call.final_status = 487
            self._respond(call.server_tx, call.invite, 487, "Request Terminated")
            await self._finish(call, "cancelled", 487, "cancelled before forwarding")
            return
        if self.readback is not None and readback.is_933(call):
            self.readback.start(call)  # the address read-back: answered here, not forwarded
            return
        self._forward_invite(call)
        metrics.invite_to_forward_seconds.observe(self.now() - t0)
        assert self._loop is not None
        call.timers.append(self._loop.call_later(self.ring_timeout_seconds, self._ring_timeout, call))
        self._persist(call)

    def _log_unknown_source(self, call: Call) -> None:
        if not self._unknown_log.take(None, self.now()):
            self._unknown_unlogged += 1
            return
        log.info("unknown_source_refused", source=call.source[0], rule="A8",
                 user_agent=_printable(call.invite.headers.get("User-Agent") or ""),
                 dnis=_printable(dialled_user(call.invite)),
                 not_logged_since_last=self._unknown_unlogged)  # fmt: skip
        self._unknown_unlogged = 0

    def _forward_invite(self, call: Call) -> None:
        """Send the INVITE on to the outcome's current target: a new client transaction
        with a branch of its own, so a 911 failover is a new attempt, not a retransmission."""
        outcome = call.outcome
        assert outcome is not None and outcome.addr is not None and outcome.request_uri is not None
        req = call.invite
        size = len(req.body) + 800
        target = outcome.e911.targets[outcome.attempt] if outcome.e911 is not None else None
        if target is not None and emergency.carries_location(outcome.e911, target):
            size += emergency.LOCATION_BYTES  # a PIDF-LO makes it a TCP-sized request (§18.1.1)
        out_transport = "UDP" if call.udp_fallback else proxy.transport_for(
            parse_uri(outcome.request_uri), size)  # fmt: skip
        incoming = req.branch if not outcome.attempt else f"{req.branch}.{outcome.attempt}"
        if call.udp_fallback:
            incoming += ".udp"  # a new attempt: a branch of its own
        fwd = proxy.prepare_forward(
            req, self.local, request_uri=outcome.request_uri, transport=out_transport,
            record_route=proxy.record_routes(self.local, call.transport, out_transport),
            branch=proxy.next_branch(req, incoming),
        )  # fmt: skip
        fwd.headers.remove("Route")
        if target is not None:
            emergency.prepare(fwd, outcome.e911, target, self.local.host)  # type: ignore[arg-type]
        if call.client_tx:
            self._by_client_tx.pop(call.client_tx, None)  # a failed attempt answers no more
        call.forwarded = fwd
        call.out_transport = out_transport
        call.state = "proceeding"
        call.provisional = False
        ctx, outs = self.tm.send_request(fwd, outcome.addr, out_transport, self.now())
        call.client_tx = ctx
        self._by_client_tx[ctx] = call
        self._run(outs)
        if outcome.e911 is not None and outcome.attempt + 1 < len(outcome.e911.targets):
            assert self._loop is not None
            call.timers.append(self._loop.call_later(
                self.e911_failover_seconds, self._e911_silent, call, ctx))  # fmt: skip

    def _e911_failover(self, call: Call, cause: str) -> bool:
        """Rules E4, E7: a 911 attempt failed (a final error, or silence past the short
        emergency timer): on to the next target. False when there is none left."""
        o = call.outcome
        if o is None or o.e911 is None or call.ended or call.cancelled or call.answered_mono:
            return False
        if o.attempt + 1 >= len(o.e911.targets):
            return False
        failed = o.e911.targets[o.attempt]
        self._abandon(call)
        o.attempt += 1
        nxt = o.e911.targets[o.attempt]
        o.request_uri, o.addr = target_for(nxt.uri, "911")
        o.emergency_level = "national" if nxt.kind == "national" else nxt.kind
        metrics.e911_failovers_total.labels(cause=cause).inc()
        log.warning("e911_failover", call_id=call.call_id, failed=failed.label, cause=cause,
                    next=nxt.label)  # fmt: skip
        call.cancel_sent = False
        call.udp_fallback = False  # the next target gets its own choice of transport
        self._forward_invite(call)
        return True

    def _e911_silent(self, call: Call, tx: str) -> None:
        if call.client_tx == tx and not call.provisional and call.answered_mono is None:
            self._e911_failover(call, "timeout")

    def _abandon(self, call: Call) -> None:
        """The current 911 attempt is given up for the next target. One that has answered
        provisionally is CANCELled (§9.1; before a provisional, §9.1 allows no CANCEL: one
        goes when the first 1xx comes). Its 2xx, however late, is ACKed and hung up (§13.2.2.4,
        §15), so no PSAP is left holding half a dialog; the caller keeps the branch it has."""
        fwd, o = call.forwarded, call.outcome
        if fwd is None or o is None or o.addr is None or not fwd.branch:
            return
        a = self._abandoned[fwd.branch] = _Abandoned(fwd, o.addr, call.out_transport)
        assert self._loop is not None
        # A PSAP may ring until our ring timeout and still answer at the last moment.
        self._loop.call_later(self.ring_timeout_seconds + 64 * self.tm.t1,
                              self._abandoned.pop, fwd.branch, None)  # fmt: skip
        if call.client_tx and self.tm.client_state(call.client_tx) == TxState.PROCEEDING:
            a.cancelled = True
            self._cancel(fwd, a.addr, a.transport)

    def _on_abandoned(self, resp: Response) -> bool:
        """A response on an abandoned 911 attempt (True), or not one (False)."""
        try:
            a = self._abandoned.get(resp.branch or "")
            cseq = resp.cseq
        except SipError:
            return False
        if a is None:
            return False
        if cseq is None or cseq[1] != "INVITE" or resp.status >= 300:
            return True  # the CANCEL's 200; a non-2xx final is ACKed by its transaction
        if resp.status < 200:
            if not a.cancelled:
                a.cancelled = True
                self._cancel(a.invite, a.addr, a.transport)
            return True
        try:
            self._end_abandoned(a, resp)
        except SipError as exc:
            log.warning("e911_late_answer_unusable", error=exc.reason)
        return True

    def _end_abandoned(self, a: _Abandoned, resp: Response) -> None:
        inv, h = a.invite, a.invite.headers
        to = resp.headers.get("To") or ""
        contact = resp.headers.get("Contact")
        target = str(parse_name_addr(contact).uri) if contact else inv.uri
        # The route set is the 2xx's Record-Route reversed (§12.1.2), less our own entry.
        routes = [r for r in reversed(resp.headers.get_all("Record-Route"))
                  if not self.local.is_me(parse_name_addr(r).uri)]  # fmt: skip
        first = a.to_tag is None
        a.to_tag = parse_name_addr(to).params.get("tag") if first else a.to_tag
        for method, cseq in (("ACK", inv.cseq[0]), ("BYE", inv.cseq[0] + 1)):
            if method == "BYE" and not first:
                break  # a retransmitted 2xx: ACK it again, the BYE is on its way
            probe = Request(method, target, Headers([("Route", r) for r in routes]))
            hop = proxy.next_hop(probe)
            transport = proxy.transport_for(hop, 800)
            branch = proxy.branch_for(method.lower(), inv.branch or "", to)
            req = Request(method, target, Headers([
                ("Via", self.local.via(transport, branch)),
                *(("Route", r) for r in routes), ("Max-Forwards", "70"),
                ("From", h.get("From") or ""), ("To", to), ("Call-ID", inv.call_id or ""),
                ("CSeq", f"{cseq} {method}"),
            ]))  # fmt: skip
            if method == "ACK":
                self._send(req.to_bytes(), proxy.host_port(hop), transport)
                continue
            req.headers.add("Reason", 'SIP;cause=200;text="Call completed elsewhere"')
            log.warning("e911_late_answer_hung_up", call_id=inv.call_id, target=target)
            _ctx, outs = self.tm.send_request(req, proxy.host_port(hop), transport, self.now())
            self._run(outs)

    def _forward_in_dialog(self, tx: str, req: Request) -> None:
        call = self.calls.get(req.call_id or "")
        if call is None:
            # Only dialogs this edge set up are routed: forwarding any Route-d request from
            # anyone would make the edge an open relay (toll fraud).
            self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            return
        if self.readback is not None and self.readback.on_request(tx, req, call):
            return
        if call is not None and req.cseq and req.method not in ("ACK", "CANCEL"):
            if req.from_tag == call.caller_tag:
                call.caller_cseq = max(call.caller_cseq, req.cseq[0])
            else:
                call.callee_cseq = max(call.callee_cseq, req.cseq[0])
        proxy.pop_own_route(req, self.local)
        request_uri = None
        if not req.headers.get_all("Route"):
            try:
                target = parse_uri(req.uri)
            except SipError:
                self._respond(tx, req, 400, "Bad Request-URI")
                return
            if self.local.is_me(target):
                # A UA that ignored our Record-Route sent it to us: the dialog knows the peer.
                peer = self._peer_target(call, req)
                if peer is None:
                    self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
                    return
                request_uri = peer
        try:
            hop = proxy.next_hop(Request(req.method, request_uri or req.uri, req.headers))
        except SipError:
            self._respond(tx, req, 400, "Bad Route")
            return
        out_transport = proxy.transport_for(hop, len(req.body) + 800)
        fwd = proxy.prepare_forward(req, self.local, request_uri=request_uri, transport=out_transport,
                                    branch=proxy.next_branch(req, req.branch))  # fmt: skip
        ctx, outs = self.tm.send_request(fwd, proxy.host_port(hop), out_transport, self.now())
        self._relay[ctx] = tx
        if call is not None and req.method in ("INVITE", "UPDATE"):
            self._refreshes[ctx] = call
        self._run(outs)
        if req.method == "BYE" and call is not None and not call.ended:
            call.ended_mono = self.now()
            self._spawn(self._finish(call, "answered" if call.answered_mono else "cancelled",
                                     call.final_status, "BYE"))  # fmt: skip

    def _peer_target(self, call: Call | None, req: Request) -> str | None:
        if call is None:
            return None
        from_caller = req.from_tag == call.caller_tag
        return call.callee_target if from_caller else call.caller_target

    def _forward_ack(self, req: Request) -> None:
        call = self.calls.get(req.call_id or "")
        if call is None:
            return  # an ACK for no dialog of ours: absorbed, never relayed
        call.acked = True
        if self.readback is not None and self.readback.on_ack(call):
            return
        proxy.pop_own_route(req, self.local)
        request_uri = None
        try:
            if not req.headers.get_all("Route") and self.local.is_me(parse_uri(req.uri)):
                request_uri = self._peer_target(call, req)
                if request_uri is None:
                    return  # an ACK for nothing we know: absorb it (§16.7 would drop too)
            hop = proxy.next_hop(Request(req.method, request_uri or req.uri, req.headers))
        except SipError:
            return
        out_transport = proxy.transport_for(hop, len(req.body) + 800)
        branch = proxy.branch_for("ack", req.branch or "", req.call_id or "")
        fwd = proxy.prepare_forward(req, self.local, request_uri=request_uri, branch=branch,
                                    transport=out_transport)  # fmt: skip
        self._send(fwd.to_bytes(), proxy.host_port(hop), out_transport)

    def _on_cancel(self, tx: str, invite_tx: str | None, req: Request) -> None:
        call = self._by_server_tx.get(invite_tx) if invite_tx else None
        if call is None:
            self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            return
        self._respond(tx, req, 200, "OK")
        call.cancelled = True
        if self.readback is not None and self.readback.on_cancel(call):
            return
        if call.client_tx and call.provisional:
            self._send_cancel(call)
        # Otherwise: routing still running (handled when it returns), or no provisional yet
        # (§9.1: CANCEL only after a provisional; sent when the first 1xx arrives).

    def _send_cancel(self, call: Call) -> None:
        if call.cancel_sent or call.forwarded is None or call.outcome is None:
            return
        call.cancel_sent = True
        assert call.outcome.addr is not None
        self._cancel(call.forwarded, call.outcome.addr, call.out_transport)

    def _cancel(self, inv: Request, addr: tuple[str, int], transport: str) -> None:
        """§9.1: CANCEL the INVITE `inv` we sent to `addr` (same Via branch, Route, CSeq)."""
        h = inv.headers
        headers = [("Via", h.get_all("Via")[0])]
        headers += [("Route", r) for r in h.get_all("Route")]
        headers += [("Max-Forwards", "70"), ("From", h.get("From") or ""), ("To", h.get("To") or ""),
                    ("Call-ID", h.get("Call-ID") or ""), ("CSeq", f"{inv.cseq[0]} CANCEL")]  # fmt: skip
        cancel = Request("CANCEL", inv.uri, Headers(headers))
        _ctx, outs = self.tm.send_request(cancel, addr, transport, self.now())
        self._run(outs)

    # ---- responses -------------------------------------------------------------------

    def _on_response(self, tx: str, resp: Response) -> None:
        relay_to = self._relay.get(tx)
        if relay_to is not None:
            refreshed = self._refreshes.get(tx)
            if refreshed is not None and 200 <= resp.status < 300 and not refreshed.ended:
                self._arm_expiry(refreshed, resp)
            back = proxy.strip_own_via(resp, self.local)
            if back is not None:
                self._run(self.tm.send_response(relay_to, back, self.now()))
            return
        call = self._by_client_tx.get(tx)
        if call is None:
            self._on_abandoned(resp)
            return
        cseq = resp.cseq
        if cseq and cseq[1] == "CANCEL":
            return  # the CANCEL's own 200: nothing to relay (§16.10)
        back = proxy.strip_own_via(resp, self.local)
        if back is None:
            return
        status = resp.status
        if status < 200:
            if status > 100:
                call.provisional = True
                if call.cancelled:
                    self._send_cancel(call)
                self._run(self.tm.send_response(call.server_tx, back, self.now()))
            return
        if status < 300:
            if call.answered_mono is None:
                call.answered_mono = self.now()
                call.state = "answered"
                call.final_status = status
                contact = resp.headers.get("Contact")
                if contact:
                    with contextlib.suppress(SipError):
                        call.callee_target = str(parse_name_addr(contact).uri)
                call.callee_to = resp.headers.get("To")
                self._arm_expiry(call, resp)
                self._persist(call)
                assert self._loop is not None
                self._loop.call_later(64 * self.tm.t1, self._check_ack, call)
            self._run(self.tm.send_response(call.server_tx, back, self.now()))
            return
        if call.outcome is not None and call.outcome.e911 is not None and not call.cancelled:
            # The caller never sees a PSAP's failure while a target is left (E4, E7).
            if self._e911_failover(call, str(status)):
                return
        call.final_status = status
        self._run(self.tm.send_response(call.server_tx, back, self.now()))
        if call.answered_mono is None:
            self._spawn(self._finish(call, disposition_for(status, call.cancelled), status, None))

    def _forward_stray(self, resp: Response) -> None:
        """§16.7 / §16.11: a response with no transaction (a late 2xx retransmission) goes
        statelessly to the next Via."""
        if self._on_abandoned(resp):
            return  # never to the caller: it has the branch it kept
        back = proxy.strip_own_via(resp, self.local)
        if back is None or back.status < 200 or back.status >= 300:
            return
        try:
            via = parse_via(back.headers.get_all("Via")[0])
        except (SipError, IndexError):
            return
        transport = via.transport.upper()
        if transport == "UDP":
            self._send(back.to_bytes(), response_address(via, (via.host, via.port or 5060)), "UDP")
        else:
            # §18.2.2: over a stream, to the connection from `received`, on the sent-by port.
            host = via.params.get("received") or via.host
            port = int(via.params.get("rport") or via.port or (5061 if transport == "TLS" else 5060))
            self._send(back.to_bytes(), (host, port), transport)

    def _on_unreachable(self, addr: tuple[str, int], transport: str) -> None:
        self._run(self.tm.transport_error(addr, transport, self.now()))

    def _on_timeout(self, tx: str, kind: str, cause: str = "timeout") -> None:
        if kind != "client":
            return
        relay_to = self._relay.pop(tx, None)
        if relay_to is not None:
            return  # an in-dialog request timed out; the server tx's own timers end it
        call = self._by_client_tx.get(tx)
        if call is None or call.ended or call.answered_mono is not None:
            return
        if cause == "transport":
            if self._udp_fallback(call):
                return
            # §16.9: a transport error counts as a 503 from that branch.
            if self._e911_failover(call, "503"):
                return
            call.final_status = 503
            self._respond(call.server_tx, call.invite, 503, "Service Unavailable")
            self._spawn(self._finish(call, "failed", 503, "next hop unreachable"))
            return
        if self._e911_failover(call, "408"):
            return
        call.final_status = 408
        self._respond(call.server_tx, call.invite, 408, "Request Timeout")
        self._spawn(self._finish(call, "no_answer", 408, "no response from the next hop"))

    def _udp_fallback(self, call: Call) -> bool:
        """§18.1.1: a request sent over TCP only for its size, to a next hop that refuses
        TCP, is retried over UDP."""
        o = call.outcome
        if call.udp_fallback or call.out_transport != "TCP" or o is None or o.request_uri is None:
            return False
        if parse_uri(o.request_uri).params.get("transport"):
            return False  # the URI asked for TCP: no fallback
        call.udp_fallback = True
        log.info("udp_fallback", call_id=call.call_id, target=o.request_uri)
        self._forward_invite(call)
        return True

    def _ring_timeout(self, call: Call) -> None:
        """Timer C (§16.6 step 11): a branch that rings too long is cancelled."""
        if call.answered_mono is None and not call.ended:
            call.provisional = True
            self._send_cancel(call)

    def _arm_expiry(self, call: Call, resp: Response | None) -> None:
        """The session ends at its RFC 4028 expiry unless refreshed, and never later than
        the configured maximum call duration."""
        se = _session_expires(resp) if resp is not None else None
        if se is None:
            se = _session_expires(call.invite)
        if se is not None:
            call.session_expires = se
        limit = self.max_call_seconds - (self.now() - (call.answered_mono or self.now()))
        if call.session_expires:
            # RFC 4028 §10: the refresher sends its refresh before this; the grace lets a
            # late refresh or the UAs' own BYE come first.
            limit = min(limit, call.session_expires + min(32.0, call.session_expires / 3))
        for handle in call.timers:
            handle.cancel()
        assert self._loop is not None
        call.timers = [self._loop.call_later(max(0.0, limit), self._expire, call)]

    def _expire(self, call: Call) -> None:
        """A dialog whose BYE never came: hang up both sides, free the slot, bill it."""
        if call.ended:
            return
        call.ended_mono = self.now()
        self._hang_up(call)
        reason = "session expired" if call.session_expires else "maximum call duration"
        self._spawn(self._finish(call, "timeout", call.final_status, reason))

    def _check_ack(self, call: Call) -> None:
        """§13.3.1.4: a 2xx never ACKed within 64*T1 — the session is over; hang up both
        sides so neither keeps a half-open call (and its bill) running."""
        if call.ended or call.acked:
            return
        call.ended_mono = self.now()
        self._hang_up(call)
        self._spawn(self._finish(call, "timeout", call.final_status, "no ACK for the 2xx"))

    def _hang_up(self, call: Call,
                 reason: str | None = 'SIP;cause=408;text="session expired"') -> None:  # fmt: skip
        """BYE to each side, as the other side would have sent it (RFC 3261 §15)."""
        if not (call.caller_from and call.callee_to and call.outcome and call.outcome.addr):
            return
        sides = []
        if call.callee_target:
            call.caller_cseq += 1
            sides.append((call.callee_target, call.caller_from, call.callee_to, call.caller_cseq,
                          call.outcome.addr, call.out_transport))  # fmt: skip
        if call.caller_target:
            call.callee_cseq += 1
            sides.append((call.caller_target, call.callee_to, call.caller_from, call.callee_cseq,
                          call.source, call.transport))  # fmt: skip
        for target, from_, to, cseq, addr, transport in sides:
            branch = proxy.branch_for("bye", call.call_id, target, str(cseq))
            bye = Request("BYE", target, Headers([
                ("Via", self.local.via(transport, branch)), ("Max-Forwards", "70"),
                ("From", from_), ("To", to), ("Call-ID", call.call_id), ("CSeq", f"{cseq} BYE"),
            ]))  # fmt: skip
            if reason:
                bye.headers.add("Reason", reason)
            with contextlib.suppress(Exception):
                _ctx, outs = self.tm.send_request(bye, addr, transport, self.now())
                self._run(outs)

    def _persist(self, call: Call) -> None:
        if call.ended or not self.dialogs.persistent:
            return
        record = to_record(call, self.now(), wall_now())
        self._spawn(self._store(self.dialogs.save(call.call_id, record)))

    async def _store(self, op) -> None:
        try:
            await op
        except Exception as exc:  # losing restart-safety is bad, failing the call is worse
            log.warning("dialog_store_failed", error=repr(exc))

    async def recover(self) -> None:
        """After a restart: follow the answered calls again, close the ringing ones."""
        try:
            records = await self.dialogs.load()
        except Exception as exc:
            log.error("dialog_recovery_failed", error=repr(exc))
            return
        inv = self.router._inventory()
        now, wall = self.now(), wall_now()
        for rec in records:
            call = _call_from_record(rec, inv, now, wall)
            self.calls[call.call_id] = call
            metrics.active_calls.inc()
            if call.outcome and call.outcome.slot_held:
                metrics.slots_in_use.inc()
            if call.answered_mono is not None:
                self._arm_expiry(call, None)
                log.info("dialog_recovered", call_id=call.call_id)
            else:
                await self._finish(call, "truncated", None, "edge restarted while ringing")

    # ---- the end of a call -----------------------------------------------------------

    async def _finish(self, call: Call, disposition: str, status: int | None, reason: str | None,
                      *, record: bool = True) -> None:  # fmt: skip
        if call.ended:
            return
        call.state = "ended"
        if call.ended_mono is None:
            call.ended_mono = self.now()
        for handle in call.timers:
            handle.cancel()
        self.calls.pop(call.call_id, None)
        self._by_server_tx.pop(call.server_tx, None)
        if call.client_tx:
            self._by_client_tx.pop(call.client_tx, None)
        metrics.active_calls.dec()
        self._spawn(self._store(self.dialogs.remove(call.call_id)))
        if not record:
            return
        metrics.calls_total.labels(disposition=disposition).inc()
        if call.answered_mono is not None:  # ACD for ops (docs/METRICS.md)
            metrics.call_duration_seconds.observe(call.duration_ms() / 1000)
        o = call.outcome
        if o is not None and o.e911 is not None:
            target = o.e911.targets[o.attempt].kind if o.e911.targets else "none"
            metrics.e911_calls_total.labels(level=o.emergency_level or "none", route=target).inc()
        try:
            await self._release(call)
        except Exception as exc:  # Redis away: the lease expires by itself within its TTL
            log.warning("slot_release_failed", call_id=call.call_id, error=repr(exc))
        event = call.cdr(disposition, reason, self.name)
        try:
            await self._publish(event)
        except Exception as exc:  # the call is over either way; the event must not vanish
            log.error("cdr_publish_failed", error=repr(exc), cdr=event.to_json())
        credit = self.router.credit
        if credit is not None and event.amount and event.customer_id:
            try:  # rule A6: the customer's unbilled usage, reconciled from Postgres later
                await credit.add_usage(event.customer_id, event.amount, at=event.started_at)
            except Exception as exc:
                log.warning("credit_usage_failed", error=repr(exc))

    async def _release(self, call: Call) -> None:
        o: Outcome | None = call.outcome
        if o is None:
            return
        try:
            if o.slot_held and o.trunk is not None:
                o.slot_held = False
                metrics.slots_in_use.dec()
                await self.router.slots.release(o.trunk.id, call.call_id)
        finally:
            await self.router.release_customer(o, call.call_id)

    async def _refresh_slots(self) -> None:
        while True:
            await asyncio.sleep(self.slot_refresh_seconds)
            leases = [
                (c.outcome.trunk.id, c.call_id)
                for c in self.calls.values()
                if c.outcome and c.outcome.slot_held and c.outcome.trunk
            ]
            leases += [
                (lease_key(c.outcome.trunk.customer_id), c.call_id)
                for c in self.calls.values()
                if c.outcome and c.outcome.customer_lease and c.outcome.trunk
            ]
            try:
                await self.router.slots.refresh(leases)
            except Exception as exc:
                log.warning("slot_refresh_failed", error=repr(exc))


@dataclass(slots=True)
class _Abandoned:
    """A 911 attempt left behind by a failover: the INVITE as sent, and where."""

    invite: Request
    addr: tuple[str, int]
    transport: str
    cancelled: bool = False
    to_tag: str | None = None  # the tag of the dialog its late 2xx made (hung up once)


def _session_expires(msg: Request | Response) -> float | None:
    value = msg.headers.get("Session-Expires")
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return float(head) if head.isascii() and head.isdigit() and int(head) > 0 else None


def _call_from_record(rec: dict, inv, now: float, wall: datetime) -> Call:
    started = datetime.fromisoformat(rec["started_wall"])
    saved = datetime.fromisoformat(rec["saved_wall"])
    call = Call(call_id=rec["call_id"], server_tx=rec["server_tx"],
                invite=Request("INVITE", "sip:recovered", Headers()),
                source=tuple(rec["source"]), started_wall=started,
                started_mono=now - (wall - started).total_seconds())  # fmt: skip
    for f in ("transport", "out_transport", "caller_tag", "caller_target", "callee_target",
              "caller_from", "callee_to", "caller_cseq", "callee_cseq", "session_expires",
              "final_status", "cancelled", "acked"):  # fmt: skip
        setattr(call, f, rec[f])
    if rec.get("answered_ago") is not None:
        # Time the edge was down counts: answered that long before it was saved.
        call.answered_mono = now - (wall - saved).total_seconds() - rec["answered_ago"]
        call.state = "answered"
    else:
        call.state = "proceeding"
    o = rec.get("outcome")
    if o is not None:
        call.outcome = Outcome(
            decision=decision_from(o["decision"]),
            trunk=inv.trunk_groups.get(o["trunk"]) if o["trunk"] else None,
            request_uri=o["request_uri"], addr=tuple(o["addr"]) if o["addr"] else None,
            slot_held=o["slot_held"], emergency_level=o["emergency_level"],
            customer_lease=o.get("customer_lease", False),  # records from before 0010
        )  # fmt: skip
    return call


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)[:200]


def _tag(req: Request) -> str:
    """Our To tag for responses we originate: stable per request (retransmissions agree)."""
    try:
        parts = (req.call_id or "", req.from_tag or "", req.branch or "")
    except SipError:  # a header too broken to read: the raw top Via still identifies it
        parts = (req.headers.get("Call-ID") or "", (req.headers.get_all("Via") or [""])[0], "")
    return proxy.branch_for("tag", *parts)[7:19]
