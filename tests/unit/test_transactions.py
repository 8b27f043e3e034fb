"""The SIP transaction layer (RFC 3261 §17 + RFC 6026) against a fake clock.

Time is a float passed in; each transaction here starts at t=0 unless said otherwise, so the
timer values of RFC 3261 Table 4 (T1=0.5, T2=4, T4=5) appear literally in the assertions.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.sip.headers import parse_via
from gateway.sip.message import Headers, Request, Response, build_response, parse_message
from gateway.sip.transactions import (
    CLIENT_INVITE,
    CLIENT_NON_INVITE,
    SERVER_INVITE,
    SERVER_NON_INVITE,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    State,
    StrayResponse,
    TransactionError,
    TransactionManager,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    response_address,
)

T1, T2, T4 = 0.5, 4.0, 5.0
UPSTREAM = ("192.0.2.10", 5060)  # where requests come from (matches their Via sent-by)
NEXT_HOP = ("198.51.100.7", 5060)  # where the proxy sends its requests
FROM = "Alice <sip:alice@atlanta.example>;tag=a73kszlfl"
TO = "Bob <sip:bob@biloxi.example>"
RURI = "sip:bob@biloxi.example"


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKup1",
    sent_by: str = "192.0.2.10:5060",
    transport: str = "UDP",
    uri: str = RURI,
    call_id: str = "c1@atlanta.example",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    via_params: str = "",
    extra_vias: tuple[str, ...] = (),
    route: tuple[str, ...] = (),
) -> Request:
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "") + via_params
    headers: list[tuple[str, str]] = [("Via", via)]
    headers += [("Via", v) for v in extra_vias]
    headers += [("Max-Forwards", "70")]
    headers += [("Route", r) for r in route]
    headers += [
        ("From", FROM),
        ("To", TO + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ]
    return Request(method, uri, Headers(headers))


def outgoing(
    method: str = "INVITE", *, branch: str = "z9hG4bKc1", transport: str = "UDP", **kw: object
) -> Request:
    """A request as the proxy forwards it: its own Via on top of the upstream one."""
    return make_request(
        method,
        branch=branch,
        sent_by="proxy.example:5060",
        transport=transport,
        extra_vias=("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKup1",),
        **kw,  # type: ignore[arg-type]
    )


def ack_for(invite: Request, *, to_tag: str | None = "srv", branch: str | None = None) -> Request:
    """An upstream ACK: same branch (non-2xx) unless `branch` says otherwise (2xx)."""
    via = invite.headers.get_all("Via")[0]
    if branch is not None:
        v = parse_via(via)
        via = str(replace(v, params={**v.params, "branch": branch}))
    cseq = invite.cseq
    assert cseq is not None
    headers = Headers(
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", FROM),
            ("To", TO + (f";tag={to_tag}" if to_tag else "")),
            ("Call-ID", invite.call_id or ""),
            ("CSeq", f"{cseq[0]} ACK"),
        ]
    )
    return Request("ACK", invite.uri, headers)


def cancel_for(invite: Request, *, uri: str | None = None) -> Request:
    """§9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via."""
    cseq = invite.cseq
    assert cseq is not None
    headers = Headers(
        [
            ("Via", invite.headers.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""),
            ("To", invite.headers.get("To") or ""),
            ("Call-ID", invite.call_id or ""),
            ("CSeq", f"{cseq[0]} CANCEL"),
        ]
    )
    return Request("CANCEL", uri or invite.uri, headers)


def copy(request: Request) -> Request:
    """A retransmission: the same bytes, parsed afresh."""
    msg = parse_message(request.to_bytes())
    assert isinstance(msg, Request)
    return msg


def kinds(out: list) -> list[str]:
    return [type(o).__name__ for o in out]


def sent(out: list) -> list[Transmit]:
    return [o for o in out if isinstance(o, Transmit)]


def only(out: list, cls: type) -> object:
    found = [o for o in out if isinstance(o, cls)]
    assert len(found) == 1, out
    return found[0]


def run_timers(mgr: TransactionManager, until: float) -> list[tuple[float, list[str]]]:
    """Tick at every deadline up to `until`; returns (time, output kinds) per tick."""
    log = []
    while (d := mgr.next_deadline()) is not None and d <= until:
        log.append((d, kinds(mgr.tick(d))))
    return log


@pytest.fixture
def mgr() -> TransactionManager:
    return TransactionManager(t1=T1, t2=T2, t4=T4)


def new_server(
    mgr: TransactionManager, request: Request, transport: str = "UDP", now: float = 0.0
) -> str:
    out = mgr.receive(request, UPSTREAM, transport, now)
    rr = out[0]
    assert isinstance(rr, RequestReceived | CancelReceived)
    assert rr.tx is not None
    return rr.tx


# --------------------------------------------------------------------------------------------
# Client INVITE (§17.1.1, RFC 6026 §8.4)


class TestClientInvite:
    def test_udp_timer_a_doubles_until_timer_b(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, out = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        assert out == [Transmit(req.to_bytes(), NEXT_HOP, "UDP")]
        assert mgr.client_state(tx) == State.CALLING == "Calling"
        log = run_timers(mgr, 100)
        assert log == [
            (0.5, ["Transmit"]),
            (1.5, ["Transmit"]),
            (3.5, ["Transmit"]),
            (7.5, ["Transmit"]),
            (15.5, ["Transmit"]),
            (31.5, ["Transmit"]),
            # Timer B = 64*T1: the TU must act as if it got a 408.
            (32.0, ["TransactionTimeout", "TransactionTerminated"]),
        ]
        assert len(mgr) == 0
        assert mgr.client_state(tx) == State.TERMINATED

    def test_retransmissions_are_the_original_bytes(self, mgr: TransactionManager) -> None:
        req = outgoing()
        _tx, out = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        req.headers.set("Max-Forwards", "1")  # the caller reusing its object changes nothing
        assert mgr.tick(0.5) == out

    def test_timer_b_reports_client_timeout(self, mgr: TransactionManager) -> None:
        tx, _ = mgr.send_request(outgoing(), NEXT_HOP, "UDP", 0.0)
        out = mgr.tick(32.0)
        assert TransactionTimeout(tx, "client") in out
        assert out[-1] == TransactionTerminated(tx)

    def test_tcp_does_not_retransmit(self, mgr: TransactionManager) -> None:
        tx, out = mgr.send_request(outgoing(transport="TCP"), NEXT_HOP, "TCP", 0.0)
        assert kinds(out) == ["Transmit"]
        assert mgr.next_deadline() == 32.0  # only Timer B
        assert mgr.tick(31.9) == []
        assert mgr.tick(32.0) == [TransactionTimeout(tx, "client"), TransactionTerminated(tx)]

    def test_provisional_stops_retransmissions_and_timer_b(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        ringing = build_response(req, 180, to_tag="b1")
        assert mgr.receive(ringing, NEXT_HOP, "UDP", 0.2) == [ResponseReceived(tx, ringing)]
        assert mgr.client_state(tx) == State.PROCEEDING
        assert mgr.next_deadline() is None
        assert mgr.tick(1000.0) == []
        # Further provisionals go up too.
        again = build_response(req, 183, to_tag="b1")
        assert mgr.receive(again, NEXT_HOP, "UDP", 1000.0) == [ResponseReceived(tx, again)]
        assert len(mgr) == 1

    def test_non_2xx_final_acks_and_passes_up_once(self, mgr: TransactionManager) -> None:
        req = outgoing(route=("<sip:edge1.example;lr>", "<sip:edge2.example;lr>"))
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        busy = build_response(req, 486, to_tag="b1")
        out = mgr.receive(busy, NEXT_HOP, "UDP", 0.1)
        assert kinds(out) == ["Transmit", "ResponseReceived"]
        assert out[1] == ResponseReceived(tx, busy)
        assert mgr.client_state(tx) == State.COMPLETED
        ack_tx = out[0]
        assert isinstance(ack_tx, Transmit)
        # §17.1.1.3: same address, port and transport as the INVITE.
        assert (ack_tx.addr, ack_tx.transport) == (NEXT_HOP, "UDP")
        # A retransmitted final: ACK again, the TU does not hear of it.
        assert mgr.receive(copy_response(busy), NEXT_HOP, "UDP", 1.0) == [ack_tx]
        # No more INVITE retransmissions; Timer D (32 s on UDP) ends it.
        assert run_timers(mgr, 100) == [(32.1, ["TransactionTerminated"])]
        assert len(mgr) == 0

    def test_ack_for_non_2xx_headers_exactly(self, mgr: TransactionManager) -> None:
        req = outgoing(route=("<sip:edge1.example;lr>", "<sip:edge2.example;lr>"), cseq=314)
        req.body = b"v=0\r\n"
        req.headers.add("Content-Type", "application/sdp")
        req.headers.add("Contact", "<sip:alice@192.0.2.10>")
        _, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        out = mgr.receive(build_response(req, 503, to_tag="b1"), NEXT_HOP, "UDP", 0.1)
        ack = parse_message(sent(out)[0].data)
        assert isinstance(ack, Request)
        assert (ack.method, ack.uri, ack.body) == ("ACK", RURI, b"")
        assert list(ack.headers) == [
            ("Via", "SIP/2.0/UDP proxy.example:5060;branch=z9hG4bKc1"),  # only the top one
            ("Route", "<sip:edge1.example;lr>"),
            ("Route", "<sip:edge2.example;lr>"),
            ("Max-Forwards", "70"),
            ("From", FROM),
            ("To", TO + ";tag=b1"),  # from the response, with its tag
            ("Call-ID", "c1@atlanta.example"),
            ("CSeq", "314 ACK"),
            ("Content-Length", "0"),
        ]

    def test_final_after_provisional(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "UDP", 0.1)
        out = mgr.receive(build_response(req, 487, to_tag="b1"), NEXT_HOP, "UDP", 5.0)
        assert kinds(out) == ["Transmit", "ResponseReceived"]
        assert mgr.client_state(tx) == State.COMPLETED
        # 1xx and 2xx that straggle in after the final are absorbed.
        assert mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "UDP", 6.0) == []
        assert mgr.receive(build_response(req, 200, to_tag="b1"), NEXT_HOP, "UDP", 6.0) == []

    def test_tcp_final_terminates_at_once(self, mgr: TransactionManager) -> None:
        req = outgoing(transport="TCP")
        tx, _ = mgr.send_request(req, NEXT_HOP, "TCP", 0.0)
        out = mgr.receive(build_response(req, 404, to_tag="b1"), NEXT_HOP, "TCP", 0.1)
        # Timer D is 0 on reliable transports.
        assert kinds(out) == ["Transmit", "ResponseReceived", "TransactionTerminated"]
        assert out[-1] == TransactionTerminated(tx) and len(mgr) == 0
        assert mgr.next_deadline() is None

    def test_2xx_accepted_and_every_retransmission_passed_up(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        ok = build_response(req, 200, to_tag="b1")
        assert mgr.receive(ok, NEXT_HOP, "UDP", 0.1) == [ResponseReceived(tx, ok)]  # no ACK
        assert mgr.client_state(tx) == State.ACCEPTED
        again = copy_response(ok)
        assert mgr.receive(again, NEXT_HOP, "UDP", 0.6) == [ResponseReceived(tx, again)]
        # A 2xx from another fork is forwarded too (RFC 6026 §8.4).
        fork = build_response(req, 200, to_tag="b2")
        assert mgr.receive(fork, NEXT_HOP, "UDP", 0.7) == [ResponseReceived(tx, fork)]
        # Anything else is absorbed.
        assert mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "UDP", 1) == []
        assert mgr.receive(build_response(req, 486, to_tag="b3"), NEXT_HOP, "UDP", 1) == []
        # Timer M = 64*T1 from the first 2xx; no INVITE retransmission in between.
        assert run_timers(mgr, 100) == [(32.1, ["TransactionTerminated"])]
        assert len(mgr) == 0

    def test_2xx_after_provisional(self, mgr: TransactionManager) -> None:
        req = outgoing(transport="TCP")
        tx, _ = mgr.send_request(req, NEXT_HOP, "TCP", 0.0)
        mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "TCP", 0.1)
        mgr.receive(build_response(req, 200, to_tag="b1"), NEXT_HOP, "TCP", 3.0)
        # Timer M runs on reliable transports too: 2xx retransmissions are end to end.
        assert mgr.client_state(tx) == State.ACCEPTED
        assert mgr.next_deadline() == 35.0

    def test_cancel_bounds_a_silent_proceeding_invite(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "UDP", 0.1)
        cancel = cancel_for(req)
        ctx, out = mgr.send_request(cancel, NEXT_HOP, "UDP", 100.0)
        assert out == [Transmit(cancel.to_bytes(), NEXT_HOP, "UDP")]
        assert mgr.client_state(ctx) == State.TRYING
        mgr.receive(build_response(cancel, 200, to_tag="b1"), NEXT_HOP, "UDP", 100.1)
        # §9.1: no final response 64*T1 after the CANCEL: the INVITE is given up on.
        out = mgr.tick(132.0)
        assert TransactionTimeout(tx, "client") in out
        assert TransactionTerminated(tx) in out
        assert mgr.client_state(tx) == State.TERMINATED

    def test_cancel_wait_stops_on_final(self, mgr: TransactionManager) -> None:
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        mgr.receive(build_response(req, 180, to_tag="b1"), NEXT_HOP, "UDP", 0.1)
        mgr.send_request(cancel_for(req), NEXT_HOP, "UDP", 1.0)
        mgr.receive(build_response(req, 487, to_tag="b1"), NEXT_HOP, "UDP", 1.2)
        out = mgr.tick(33.0)
        assert TransactionTimeout(tx, "client") not in out
        assert TransactionTerminated(tx) not in out  # Timer D still runs until 33.2
        assert mgr.client_state(tx) == State.COMPLETED


def copy_response(response: Response) -> Response:
    msg = parse_message(response.to_bytes())
    assert isinstance(msg, Response)
    return msg


# --------------------------------------------------------------------------------------------
# Client non-INVITE (§17.1.2)


class TestClientNonInvite:
    def test_udp_timer_e_doubles_to_t2_until_timer_f(self, mgr: TransactionManager) -> None:
        tx, out = mgr.send_request(outgoing("OPTIONS"), NEXT_HOP, "UDP", 0.0)
        assert kinds(out) == ["Transmit"]
        assert mgr.client_state(tx) == State.TRYING
        log = run_timers(mgr, 100)
        times = [t for t, k in log if k == ["Transmit"]]
        assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        assert log[-1] == (32.0, ["TransactionTimeout", "TransactionTerminated"])
        assert len(mgr) == 0

    def test_timer_f_reports_client_timeout(self, mgr: TransactionManager) -> None:
        tx, _ = mgr.send_request(outgoing("BYE"), NEXT_HOP, "TCP", 0.0)
        assert mgr.next_deadline() == 32.0
        assert mgr.tick(32.0) == [TransactionTimeout(tx, "client"), TransactionTerminated(tx)]

    def test_proceeding_retransmits_every_t2(self, mgr: TransactionManager) -> None:
        req = outgoing("OPTIONS")
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        trying = build_response(req, 100)
        assert mgr.receive(trying, NEXT_HOP, "UDP", 0.2) == [ResponseReceived(tx, trying)]
        assert mgr.client_state(tx) == State.PROCEEDING
        log = run_timers(mgr, 20)
        # E keeps its Trying value once (0.5), then §17.1.2.2 resets it to T2.
        assert [t for t, _ in log] == [0.5, 4.5, 8.5, 12.5, 16.5]
        assert kinds(mgr.receive(build_response(req, 100), NEXT_HOP, "UDP", 20)) == [
            "ResponseReceived"
        ]
        assert run_timers(mgr, 100)[-1] == (32.0, ["TransactionTimeout", "TransactionTerminated"])

    def test_final_completes_and_timer_k(self, mgr: TransactionManager) -> None:
        req = outgoing("OPTIONS")
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        ok = build_response(req, 200, to_tag="b1")
        assert mgr.receive(ok, NEXT_HOP, "UDP", 0.1) == [ResponseReceived(tx, ok)]
        assert mgr.client_state(tx) == State.COMPLETED
        # Retransmitted finals are absorbed; no request retransmission; K = T4.
        assert mgr.receive(copy_response(ok), NEXT_HOP, "UDP", 1.0) == []
        assert run_timers(mgr, 100) == [(5.1, ["TransactionTerminated"])]

    def test_final_from_proceeding(self, mgr: TransactionManager) -> None:
        req = outgoing("OPTIONS")
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        mgr.receive(build_response(req, 100), NEXT_HOP, "UDP", 0.1)
        out = mgr.receive(build_response(req, 404, to_tag="x"), NEXT_HOP, "UDP", 0.2)
        assert kinds(out) == ["ResponseReceived"]
        assert mgr.client_state(tx) == State.COMPLETED

    def test_tcp_final_terminates_at_once(self, mgr: TransactionManager) -> None:
        req = outgoing("REGISTER", transport="TCP")
        tx, _ = mgr.send_request(req, NEXT_HOP, "TCP", 0.0)
        out = mgr.receive(build_response(req, 200, to_tag="b1"), NEXT_HOP, "TCP", 0.1)
        assert kinds(out) == ["ResponseReceived", "TransactionTerminated"]  # K = 0
        assert out[-1] == TransactionTerminated(tx) and len(mgr) == 0


class TestSendRequestMisuse:
    def test_ack_has_no_client_transaction(self, mgr: TransactionManager) -> None:
        with pytest.raises(TransactionError):
            mgr.send_request(ack_for(outgoing()), NEXT_HOP, "UDP", 0.0)

    @pytest.mark.parametrize("branch", [None, "abc123", "z9hG4bK"])
    def test_needs_a_3261_branch(self, mgr: TransactionManager, branch: str | None) -> None:
        req = make_request("OPTIONS", branch=branch)
        with pytest.raises(TransactionError):
            mgr.send_request(req, NEXT_HOP, "UDP", 0.0)

    def test_branch_reuse(self, mgr: TransactionManager) -> None:
        mgr.send_request(outgoing("OPTIONS"), NEXT_HOP, "UDP", 0.0)
        with pytest.raises(TransactionError):
            mgr.send_request(outgoing("OPTIONS"), NEXT_HOP, "UDP", 0.0)
        assert len(mgr) == 1

    def test_cseq_method_mismatch(self, mgr: TransactionManager) -> None:
        with pytest.raises(TransactionError):
            mgr.send_request(outgoing("OPTIONS", cseq_method="INFO"), NEXT_HOP, "UDP", 0.0)

    def test_not_a_request(self, mgr: TransactionManager) -> None:
        with pytest.raises(TransactionError):
            mgr.send_request(build_response(outgoing(), 200), NEXT_HOP, "UDP", 0.0)  # type: ignore[arg-type]


class TestStrayResponses:
    def test_unknown_branch(self, mgr: TransactionManager) -> None:
        resp = build_response(outgoing(branch="z9hG4bKnobody"), 200, to_tag="b1")
        assert mgr.receive(resp, NEXT_HOP, "UDP", 0.0) == [StrayResponse(resp)]

    def test_method_must_match(self, mgr: TransactionManager) -> None:
        req = outgoing()
        mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        # Same branch, CSeq method CANCEL: the response to a CANCEL we never sent.
        resp = build_response(cancel_for(req), 200, to_tag="b1")
        assert mgr.receive(resp, NEXT_HOP, "UDP", 0.0) == [StrayResponse(resp)]

    def test_after_termination(self, mgr: TransactionManager) -> None:
        req = outgoing("OPTIONS", transport="TCP")
        mgr.send_request(req, NEXT_HOP, "TCP", 0.0)
        ok = build_response(req, 200, to_tag="b1")
        mgr.receive(ok, NEXT_HOP, "TCP", 0.1)
        again = copy_response(ok)
        assert mgr.receive(again, NEXT_HOP, "TCP", 0.2) == [StrayResponse(again)]

    def test_2xx_retransmission_after_timer_m_is_stray(self, mgr: TransactionManager) -> None:
        req = outgoing()
        mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        ok = build_response(req, 200, to_tag="b1")
        mgr.receive(ok, NEXT_HOP, "UDP", 0.1)
        mgr.tick(40.0)
        assert mgr.receive(ok, NEXT_HOP, "UDP", 40.0) == [StrayResponse(ok)]


# --------------------------------------------------------------------------------------------
# Server INVITE (§17.2.1, RFC 6026 §7.1)


class TestServerInvite:
    def test_new_invite_goes_up(self, mgr: TransactionManager) -> None:
        req = make_request()
        out = mgr.receive(req, UPSTREAM, "UDP", 0.0)
        assert len(out) == 1 and isinstance(out[0], RequestReceived)
        assert (out[0].request, out[0].addr, out[0].transport) == (req, UPSTREAM, "UDP")
        tx = out[0].tx
        assert tx is not None
        assert mgr.server_state(tx) == State.PROCEEDING
        assert len(mgr) == 1
        assert mgr.next_deadline() is None  # waits for the TU

    def test_retransmission_resends_last_provisional(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        # Nothing sent yet: absorbed silently, not passed up again.
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.1) == []
        trying = build_response(req, 100)
        assert mgr.send_response(tx, trying, 0.2) == [Transmit(trying.to_bytes(), UPSTREAM, "UDP")]
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.5) == [
            Transmit(trying.to_bytes(), UPSTREAM, "UDP")
        ]
        ringing = build_response(req, 180, to_tag="srv")
        mgr.send_response(tx, ringing, 1.0)
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 1.5) == [
            Transmit(ringing.to_bytes(), UPSTREAM, "UDP")
        ]
        assert mgr.server_state(tx) == State.PROCEEDING

    def test_non_2xx_timer_g_then_ack_confirmed_then_timer_i(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        busy = build_response(req, 486, to_tag="srv")
        wire = Transmit(busy.to_bytes(), UPSTREAM, "UDP")
        assert mgr.send_response(tx, busy, 0.0) == [wire]
        assert mgr.server_state(tx) == State.COMPLETED
        # Timer G: T1, doubling, capped at T2.
        log = run_timers(mgr, 8.0)
        assert log == [(0.5, ["Transmit"]), (1.5, ["Transmit"]), (3.5, ["Transmit"]),
                       (7.5, ["Transmit"])]  # fmt: skip
        # A retransmitted INVITE gets the final again.
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 9.0) == [wire]
        # ACK: Confirmed; not passed up, G and H stop.
        assert mgr.receive(ack_for(req), UPSTREAM, "UDP", 10.0) == []
        assert mgr.server_state(tx) == State.CONFIRMED
        # Confirmed absorbs ACK and INVITE retransmissions.
        assert mgr.receive(ack_for(req), UPSTREAM, "UDP", 11.0) == []
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 11.0) == []
        # Timer I = T4.
        assert run_timers(mgr, 100) == [(15.0, ["TransactionTerminated"])]
        assert len(mgr) == 0
        with pytest.raises(TransactionError):
            mgr.send_response(tx, busy, 16.0)

    def test_timer_h_when_ack_never_comes(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        mgr.send_response(tx, build_response(req, 404, to_tag="srv"), 0.0)
        log = run_timers(mgr, 100)
        assert [t for t, k in log if k == ["Transmit"]] == [
            0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
        ]  # fmt: skip
        assert log[-1] == (32.0, ["TransactionTimeout", "TransactionTerminated"])
        assert mgr.server_state(tx) == State.TERMINATED

    def test_timer_h_output(self, mgr: TransactionManager) -> None:
        req = make_request(transport="TCP")
        tx = new_server(mgr, req, "TCP")
        mgr.send_response(tx, build_response(req, 500, to_tag="srv"), 0.0)
        assert mgr.tick(32.0) == [TransactionTimeout(tx, "server"), TransactionTerminated(tx)]

    def test_tcp_no_timer_g_and_timer_i_zero(self, mgr: TransactionManager) -> None:
        req = make_request(transport="TCP")
        tx = new_server(mgr, req, "TCP")
        mgr.send_response(tx, build_response(req, 486, to_tag="srv"), 0.0)
        assert mgr.next_deadline() == 32.0  # H only
        out = mgr.receive(ack_for(req), UPSTREAM, "TCP", 1.0)
        assert out == [TransactionTerminated(tx)]  # Confirmed, then I = 0
        assert len(mgr) == 0
        assert mgr.next_deadline() is None

    def test_2xx_accepted(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        ok = build_response(req, 200, to_tag="srv")
        wire = Transmit(ok.to_bytes(), UPSTREAM, "UDP")
        assert mgr.send_response(tx, ok, 0.0) == [wire]
        assert mgr.server_state(tx) == State.ACCEPTED
        # RFC 6026: INVITE retransmissions absorbed without passing up or answering ...
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.5) == []
        # ... the transaction does not retransmit the 2xx itself ...
        assert mgr.tick(31.0) == []
        # ... but sends each 2xx retransmission the TU hands it.
        assert mgr.send_response(tx, ok, 1.0) == [wire]
        with pytest.raises(TransactionError):
            mgr.send_response(tx, build_response(req, 486, to_tag="srv"), 1.0)
        with pytest.raises(TransactionError):
            mgr.send_response(tx, build_response(req, 180, to_tag="srv"), 1.0)
        # Timer L = 64*T1.
        assert mgr.tick(32.0) == [TransactionTerminated(tx)]
        assert len(mgr) == 0

    def test_ack_with_invite_branch_in_accepted_goes_up(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        mgr.send_response(tx, build_response(req, 200, to_tag="srv"), 0.0)
        ack = ack_for(req)
        assert mgr.receive(ack, UPSTREAM, "UDP", 0.1) == [
            RequestReceived(None, ack, UPSTREAM, "UDP")
        ]
        assert mgr.server_state(tx) == State.ACCEPTED

    def test_ack_for_2xx_matches_nothing_and_goes_up(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        mgr.send_response(tx, build_response(req, 200, to_tag="srv"), 0.0)
        ack = ack_for(req, branch="z9hG4bKack2xx")  # §13.2.2.4: a new branch
        assert mgr.receive(ack, UPSTREAM, "UDP", 0.1) == [
            RequestReceived(None, ack, UPSTREAM, "UDP")
        ]
        assert len(mgr) == 1  # no transaction for it

    def test_ack_in_proceeding_is_absorbed(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        assert mgr.receive(ack_for(req), UPSTREAM, "UDP", 0.1) == []
        assert mgr.server_state(tx) == State.PROCEEDING

    def test_same_branch_other_sent_by_is_another_transaction(
        self, mgr: TransactionManager
    ) -> None:
        a = new_server(mgr, make_request())
        b = new_server(mgr, make_request(sent_by="192.0.2.11:5060"))
        assert a != b and len(mgr) == 2
        # An omitted port is the default port: same sender.
        assert mgr.receive(make_request(sent_by="192.0.2.10"), UPSTREAM, "UDP", 0) == []

    def test_response_misuse(self, mgr: TransactionManager) -> None:
        req = make_request()
        tx = new_server(mgr, req)
        with pytest.raises(TransactionError):
            mgr.send_response(tx, build_response(req, 700), 0.0)
        with pytest.raises(TransactionError):
            mgr.send_response("no-such-tx", build_response(req, 200), 0.0)
        with pytest.raises(TransactionError):
            mgr.send_response(tx, req, 0.0)  # type: ignore[arg-type]
        ctx, _ = mgr.send_request(outgoing(), NEXT_HOP, "UDP", 0.0)
        with pytest.raises(TransactionError):
            mgr.send_response(ctx, build_response(req, 200), 0.0)
        with pytest.raises(TransactionError):
            mgr.server_state(ctx)
        mgr.send_response(tx, build_response(req, 404, to_tag="srv"), 0.0)
        with pytest.raises(TransactionError):
            mgr.send_response(tx, build_response(req, 404, to_tag="srv"), 0.0)
        assert mgr.server_state(tx) == State.COMPLETED  # the misuse changed nothing

    def test_request_without_via_is_dropped(self, mgr: TransactionManager) -> None:
        req = make_request()
        req.headers.remove("Via")
        assert mgr.receive(req, UPSTREAM, "UDP", 0.0) == []
        assert len(mgr) == 0


# --------------------------------------------------------------------------------------------
# Server non-INVITE (§17.2.2)


class TestServerNonInvite:
    def test_trying_proceeding_completed_timer_j(self, mgr: TransactionManager) -> None:
        req = make_request("OPTIONS")
        tx = new_server(mgr, req)
        assert mgr.server_state(tx) == State.TRYING
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.1) == []  # absorbed
        trying = build_response(req, 100)
        mgr.send_response(tx, trying, 0.2)
        assert mgr.server_state(tx) == State.PROCEEDING
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.3) == [
            Transmit(trying.to_bytes(), UPSTREAM, "UDP")
        ]
        mgr.send_response(tx, build_response(req, 180), 0.35)
        ok = build_response(req, 200, to_tag="srv")
        assert mgr.send_response(tx, ok, 0.4) == [Transmit(ok.to_bytes(), UPSTREAM, "UDP")]
        assert mgr.server_state(tx) == State.COMPLETED
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.5) == [
            Transmit(ok.to_bytes(), UPSTREAM, "UDP")
        ]
        with pytest.raises(TransactionError):
            mgr.send_response(tx, ok, 0.6)
        # No retransmission timer on the server side; Timer J = 64*T1.
        assert run_timers(mgr, 100) == [(32.4, ["TransactionTerminated"])]
        assert len(mgr) == 0
        # After J a retransmission is a new request.
        assert isinstance(mgr.receive(copy(req), UPSTREAM, "UDP", 40)[0], RequestReceived)

    def test_final_from_trying(self, mgr: TransactionManager) -> None:
        req = make_request("BYE")
        tx = new_server(mgr, req)
        mgr.send_response(tx, build_response(req, 481, to_tag="srv"), 0.0)
        assert mgr.server_state(tx) == State.COMPLETED

    def test_tcp_timer_j_zero(self, mgr: TransactionManager) -> None:
        req = make_request("BYE", transport="TCP")
        tx = new_server(mgr, req, "TCP")
        out = mgr.send_response(tx, build_response(req, 200, to_tag="srv"), 0.0)
        assert kinds(out) == ["Transmit", "TransactionTerminated"]
        assert len(mgr) == 0

    def test_methods_are_separate_transactions(self, mgr: TransactionManager) -> None:
        new_server(mgr, make_request("INVITE"))
        new_server(mgr, make_request("OPTIONS"))
        assert len(mgr) == 2


# --------------------------------------------------------------------------------------------
# CANCEL (§9.2)


class TestCancel:
    def test_cancel_matches_invite(self, mgr: TransactionManager) -> None:
        req = make_request()
        itx = new_server(mgr, req)
        cancel = cancel_for(req)
        out = mgr.receive(cancel, UPSTREAM, "UDP", 1.0)
        assert len(out) == 1 and isinstance(out[0], CancelReceived)
        c = out[0]
        assert (c.invite_tx, c.request, c.addr, c.transport) == (itx, cancel, UPSTREAM, "UDP")
        assert c.tx != itx and mgr.server_state(c.tx) == State.TRYING
        assert len(mgr) == 2
        # A CANCEL retransmission is absorbed by the CANCEL's own transaction.
        assert mgr.receive(copy(cancel), UPSTREAM, "UDP", 1.1) == []
        ok = build_response(cancel, 200, to_tag="srv")
        mgr.send_response(c.tx, ok, 1.2)
        assert mgr.receive(copy(cancel), UPSTREAM, "UDP", 1.3) == [
            Transmit(ok.to_bytes(), UPSTREAM, "UDP")
        ]
        assert mgr.server_state(itx) == State.PROCEEDING  # the TU answers 487 itself

    def test_cancel_without_invite_481(self, mgr: TransactionManager) -> None:
        cancel = cancel_for(make_request())
        out = mgr.receive(cancel, UPSTREAM, "UDP", 0.0)
        assert isinstance(out[0], CancelReceived) and out[0].invite_tx is None
        nope = build_response(cancel, 481, to_tag="srv")
        assert mgr.send_response(out[0].tx, nope, 0.1) == [
            Transmit(nope.to_bytes(), UPSTREAM, "UDP")
        ]

    def test_cancel_with_other_request_uri_matches_nothing(self, mgr: TransactionManager) -> None:
        req = make_request()
        new_server(mgr, req)
        out = mgr.receive(cancel_for(req, uri="sip:carol@biloxi.example"), UPSTREAM, "UDP", 0)
        assert isinstance(out[0], CancelReceived) and out[0].invite_tx is None

    def test_cancel_after_invite_terminated(self, mgr: TransactionManager) -> None:
        req = make_request(transport="TCP")
        itx = new_server(mgr, req, "TCP")
        mgr.send_response(itx, build_response(req, 486, to_tag="srv"), 0.0)
        mgr.receive(ack_for(req), UPSTREAM, "TCP", 0.1)
        out = mgr.receive(cancel_for(req), UPSTREAM, "TCP", 0.2)
        assert isinstance(out[0], CancelReceived) and out[0].invite_tx is None

    def test_cancel_rfc2543(self, mgr: TransactionManager) -> None:
        req = make_request(branch=None)
        itx = new_server(mgr, req)
        out = mgr.receive(cancel_for(req), UPSTREAM, "UDP", 0.1)
        assert isinstance(out[0], CancelReceived) and out[0].invite_tx == itx
        other = make_request(branch=None, cseq=2)
        out = mgr.receive(cancel_for(other), UPSTREAM, "UDP", 0.2)
        assert isinstance(out[0], CancelReceived) and out[0].invite_tx is None


# --------------------------------------------------------------------------------------------
# RFC 2543 matching (§17.2.3, last paragraphs)


class TestRfc2543Matching:
    def test_invite_retransmission_and_differences(self, mgr: TransactionManager) -> None:
        req = make_request(branch=None)
        tx = new_server(mgr, req)
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.1) == []
        # Any of the matched fields differing makes a new transaction.
        variants = [
            make_request(branch=None, cseq=2),
            make_request(branch=None, call_id="other@atlanta.example"),
            make_request(branch=None, uri="sip:carol@biloxi.example"),
            make_request(branch=None, to_tag="t9"),
            make_request(branch=None, sent_by="192.0.2.11:5060"),
            make_request(branch="not-a-cookie-1"),
        ]
        for i, v in enumerate(variants):
            out = mgr.receive(v, UPSTREAM, "UDP", 0.2)
            assert isinstance(out[0], RequestReceived) and out[0].tx not in (None, tx), i
        assert len(mgr) == 1 + len(variants)

    def test_ack_needs_the_to_tag_of_our_final(self, mgr: TransactionManager) -> None:
        req = make_request(branch=None)
        tx = new_server(mgr, req)
        mgr.send_response(tx, build_response(req, 603, to_tag="srv"), 0.0)
        # An ACK with another To tag is not ours: up to the TU as an end-to-end ACK.
        stranger = ack_for(req, to_tag="other")
        assert mgr.receive(stranger, UPSTREAM, "UDP", 0.1) == [
            RequestReceived(None, stranger, UPSTREAM, "UDP")
        ]
        assert mgr.server_state(tx) == State.COMPLETED
        assert mgr.receive(ack_for(req, to_tag="srv"), UPSTREAM, "UDP", 0.2) == []
        assert mgr.server_state(tx) == State.CONFIRMED
        # A second matching ACK is a retransmission of the first.
        assert mgr.receive(ack_for(req, to_tag="srv"), UPSTREAM, "UDP", 0.3) == []

    def test_non_invite(self, mgr: TransactionManager) -> None:
        req = make_request("OPTIONS", branch=None)
        tx = new_server(mgr, req)
        ok = build_response(req, 200, to_tag="srv")
        mgr.send_response(tx, ok, 0.0)
        assert mgr.receive(copy(req), UPSTREAM, "UDP", 0.1) == [
            Transmit(ok.to_bytes(), UPSTREAM, "UDP")
        ]
        # Same CSeq number, other method: another transaction.
        out = mgr.receive(make_request("INFO", branch=None), UPSTREAM, "UDP", 0.2)
        assert isinstance(out[0], RequestReceived)
        assert len(mgr) == 2


# --------------------------------------------------------------------------------------------
# Where responses go (§18.2.1, §18.2.2, RFC 3581)


class TestResponseAddressing:
    @pytest.mark.parametrize(
        ("via", "expected"),
        [
            ("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKx", ("192.0.2.10", 5070)),
            ("SIP/2.0/UDP pc33.example;branch=z9hG4bKx", ("pc33.example", 5060)),
            ("SIP/2.0/TLS pc33.example;branch=z9hG4bKx", ("pc33.example", 5061)),
            # §18.2.2: received replaces the host, the port stays sent-by's.
            ("SIP/2.0/UDP pc33.example:5070;branch=z9hG4bKx;received=203.0.113.5",
             ("203.0.113.5", 5070)),
            # RFC 3581: received:rport.
            ("SIP/2.0/UDP 10.0.0.2:5060;rport=61000;branch=z9hG4bKx;received=203.0.113.5",
             ("203.0.113.5", 61000)),
            # An rport nobody filled in: the request's source.
            ("SIP/2.0/UDP 10.0.0.2:5060;rport;branch=z9hG4bKx", ("203.0.113.9", 40000)),
            ("SIP/2.0/UDP 10.0.0.2;maddr=239.255.255.1;branch=z9hG4bKx", ("239.255.255.1", 5060)),
            ("SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKx", ("2001:db8::1", 5062)),
        ],
    )  # fmt: skip
    def test_response_address(self, via: str, expected: tuple[str, int]) -> None:
        assert response_address(parse_via(via), ("203.0.113.9", 40000)) == expected
        assert TransactionManager.response_address(parse_via(via), ("203.0.113.9", 40000)) == (
            expected
        )

    def test_no_via(self) -> None:
        assert response_address(None, ("203.0.113.9", 40000)) == ("203.0.113.9", 40000)

    def test_nat_rport_stamped_and_used(self, mgr: TransactionManager) -> None:
        src = ("203.0.113.5", 61000)
        req = make_request("OPTIONS", sent_by="10.0.0.2:5060", via_params=";rport")
        out = mgr.receive(req, src, "UDP", 0.0)
        rr = out[0]
        assert isinstance(rr, RequestReceived) and rr.tx is not None
        # §18.2.1 + RFC 3581 §4: the TU forwards this Via, so it carries the truth.
        top = parse_via(rr.request.headers.get_all("Via")[0])
        assert (top.params["rport"], top.received) == ("61000", "203.0.113.5")
        assert top.branch == "z9hG4bKup1"
        ok = build_response(rr.request, 200, to_tag="srv")
        assert sent(mgr.send_response(rr.tx, ok, 0.1))[0].addr == src
        # The stamped request still matches its retransmissions.
        assert mgr.receive(make_request("OPTIONS", sent_by="10.0.0.2:5060", via_params=";rport"),
                           src, "UDP", 0.2) == [Transmit(ok.to_bytes(), src, "UDP")]  # fmt: skip

    def test_received_without_rport_uses_sent_by_port(self, mgr: TransactionManager) -> None:
        req = make_request("OPTIONS", sent_by="pc33.example:5070")
        out = mgr.receive(req, ("203.0.113.5", 1234), "UDP", 0.0)
        rr = out[0]
        assert isinstance(rr, RequestReceived) and rr.tx is not None
        assert parse_via(rr.request.headers.get_all("Via")[0]).received == "203.0.113.5"
        ok = build_response(rr.request, 200, to_tag="srv")
        assert sent(mgr.send_response(rr.tx, ok, 0.1))[0].addr == ("203.0.113.5", 5070)

    def test_via_left_alone_when_it_is_the_source(self, mgr: TransactionManager) -> None:
        req = make_request("OPTIONS")
        before = req.headers.get_all("Via")
        mgr.receive(req, UPSTREAM, "UDP", 0.0)
        assert req.headers.get_all("Via") == before

    def test_reliable_answers_on_the_connection(self, mgr: TransactionManager) -> None:
        conn = ("203.0.113.5", 49152)  # the TCP peer as the transport reported it
        req = make_request("OPTIONS", sent_by="pc33.example:5060", transport="TCP",
                           via_params=";rport")  # fmt: skip
        out = mgr.receive(req, conn, "TCP", 0.0)
        rr = out[0]
        assert isinstance(rr, RequestReceived) and rr.tx is not None
        out = mgr.send_response(rr.tx, build_response(rr.request, 200, to_tag="s"), 0.1)
        assert (sent(out)[0].addr, sent(out)[0].transport) == (conn, "TCP")


# --------------------------------------------------------------------------------------------
# Every row of every table, driven through the public API


def _enter(mgr: TransactionManager, machine: str, state: State) -> tuple[str, Request]:
    """Bring a fresh UDP transaction of `machine` into `state`, entering it at t=0."""
    if machine == "client INVITE":
        req = outgoing()
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        status = {State.PROCEEDING: 180, State.COMPLETED: 486, State.ACCEPTED: 200}.get(state)
        if status:
            mgr.receive(build_response(req, status, to_tag="b1"), NEXT_HOP, "UDP", 0.0)
        return tx, req
    if machine == "client non-INVITE":
        req = outgoing("OPTIONS")
        tx, _ = mgr.send_request(req, NEXT_HOP, "UDP", 0.0)
        status = {State.PROCEEDING: 100, State.COMPLETED: 200}.get(state)
        if status:
            mgr.receive(build_response(req, status, to_tag="b1"), NEXT_HOP, "UDP", 0.0)
        return tx, req
    if machine == "server INVITE":
        req = make_request()
        tx = new_server(mgr, req)
        status = {State.COMPLETED: 486, State.CONFIRMED: 486, State.ACCEPTED: 200}.get(state)
        if status:
            mgr.send_response(tx, build_response(req, status, to_tag="srv"), 0.0)
        if state == State.CONFIRMED:
            mgr.receive(ack_for(req), UPSTREAM, "UDP", 0.0)
        return tx, req
    req = make_request("OPTIONS")
    tx = new_server(mgr, req)
    status = {State.PROCEEDING: 100, State.COMPLETED: 200}.get(state)
    if status:
        mgr.send_response(tx, build_response(req, status, to_tag="srv"), 0.0)
    return tx, req


_TIMER_AT = {"A": T1, "E": T1, "G": T1, "I": T4, "K": T4}  # the rest: 64*T1 (D: 32 s)
_STATUS = {"1xx": 180, "2xx": 200, "300-699": 486}
_MACHINES = {
    "client INVITE": CLIENT_INVITE,
    "client non-INVITE": CLIENT_NON_INVITE,
    "server INVITE": SERVER_INVITE,
    "server non-INVITE": SERVER_NON_INVITE,
}
_ROWS = [
    pytest.param(machine, state, event, new, id=f"{machine}:{state}:{event}")
    for machine, m in _MACHINES.items()
    for (state, event), (new, _actions) in m.table.items()
]


@pytest.mark.parametrize(("machine", "state", "event", "new"), _ROWS)
def test_every_transition(machine: str, state: State, event: str, new: State) -> None:
    mgr = TransactionManager(t1=T1, t2=T2, t4=T4)
    tx, req = _enter(mgr, machine, state)
    client = machine.startswith("client")
    current = mgr.client_state if client else mgr.server_state
    assert current(tx) == state
    if event.startswith("Timer "):
        if event == "Timer CANCEL":
            mgr.send_request(cancel_for(req), NEXT_HOP, "UDP", 0.0)
        out = mgr.tick(_TIMER_AT.get(event[6:], 64 * T1))
    elif event.startswith("TU "):
        out = mgr.send_response(tx, build_response(req, _STATUS[event[3:]], to_tag="srv"), 1.0)
    elif event == "request":
        out = mgr.receive(copy(req), UPSTREAM, "UDP", 0.1)
    elif event == "ACK":
        out = mgr.receive(ack_for(req), UPSTREAM, "UDP", 0.1)
    else:
        resp = build_response(req, _STATUS[event], to_tag="b1")
        out = mgr.receive(resp, NEXT_HOP, "UDP", 0.1)
    assert current(tx) == new
    assert (TransactionTerminated(tx) in out) == (new == State.TERMINATED)


_TU_MISUSE = [
    pytest.param(machine, state, event, id=f"{machine}:{state}:{event}")
    for machine, m in _MACHINES.items()
    if machine.startswith("server")
    for state in sorted({s for s, _ in m.table})
    for event in ("TU 1xx", "TU 2xx", "TU 300-699")
    if (state, event) not in m.table
]


@pytest.mark.parametrize(("machine", "state", "event"), _TU_MISUSE)
def test_tu_responses_the_tables_forbid(machine: str, state: State, event: str) -> None:
    mgr = TransactionManager(t1=T1, t2=T2, t4=T4)
    tx, req = _enter(mgr, machine, state)
    with pytest.raises(TransactionError):
        mgr.send_response(tx, build_response(req, _STATUS[event[3:]], to_tag="srv"), 1.0)
    assert mgr.server_state(tx) == state


def test_manager_bookkeeping(mgr: TransactionManager) -> None:
    assert len(mgr) == 0 and mgr.next_deadline() is None and mgr.tick(1e9) == []
    assert mgr.client_state("c999") == State.TERMINATED
    assert mgr.server_state("s999") == State.TERMINATED
    ids = {mgr.send_request(outgoing(branch=f"z9hG4bKb{i}"), NEXT_HOP, "UDP", 0.0)[0]
           for i in range(5)}  # fmt: skip
    ids |= {new_server(mgr, make_request(branch=f"z9hG4bKs{i}")) for i in range(5)}
    assert len(ids) == 10 and len(mgr) == 10
    assert all(i in mgr for i in ids)
    with pytest.raises(ValueError):
        TransactionManager(t1=5.0, t2=4.0)


def test_late_tick_does_not_burst(mgr: TransactionManager) -> None:
    # An I/O loop that wakes up late gets one retransmission, not the backlog of them.
    _tx, _ = mgr.send_request(outgoing("OPTIONS"), NEXT_HOP, "UDP", 0.0)
    assert kinds(mgr.tick(10.0)) == ["Transmit"]
    assert mgr.next_deadline() == 11.0  # re-armed from when it fired (E doubled to 1 s)
    assert kinds(mgr.tick(100.0)) == ["Transmit", "TransactionTimeout", "TransactionTerminated"]


@pytest.mark.parametrize("transport", ["TLS", "tcp", "WS"])
def test_every_transport_but_udp_is_reliable(mgr: TransactionManager, transport: str) -> None:
    mgr.send_request(outgoing(), NEXT_HOP, transport, 0.0)
    assert mgr.next_deadline() == 32.0  # Timer B only, no Timer A


def test_malformed_hand_built_messages_do_not_raise(mgr: TransactionManager) -> None:
    req = make_request("OPTIONS")
    req.headers.set("CSeq", "not a cseq")
    assert mgr.receive(req, UPSTREAM, "UDP", 0.0) == []
    resp = build_response(make_request(), 200)
    resp.headers.set("Via", "garbage")
    assert mgr.receive(resp, NEXT_HOP, "UDP", 0.0) == [StrayResponse(resp)]
    with pytest.raises(TransactionError):
        mgr.receive("INVITE", UPSTREAM, "UDP", 0.0)  # type: ignore[arg-type]
    assert len(mgr) == 0


def test_many_cancelled_timers_do_not_pile_up(mgr: TransactionManager) -> None:
    # Each OPTIONS answered at once disarms E and F; the heap must not keep them all.
    for i in range(2000):
        req = outgoing("OPTIONS", branch=f"z9hG4bKm{i}", transport="TCP")
        mgr.send_request(req, NEXT_HOP, "TCP", float(i))
        mgr.receive(build_response(req, 200, to_tag="b"), NEXT_HOP, "TCP", float(i))
    assert len(mgr) == 0
    assert len(mgr._timers._heap) < 200
    assert mgr.next_deadline() is None


# --------------------------------------------------------------------------------------------
# Random sequences


class _Model:
    """What the test knows from the outputs alone, and the checks on every output list."""

    def __init__(self, mgr: TransactionManager) -> None:
        self.mgr = mgr
        self.now = 0.0
        self.n = 0
        self.incoming: list[tuple[bytes, str]] = []  # (request as sent upstream, transport)
        self.invites_in: list[tuple[bytes, str]] = []
        self.server_txs: list[str] = []
        self.server_req: dict[str, Request] = {}
        self.client: list[tuple[str, Request, str]] = []
        self.cancelled: set[str] = set()
        self.owner: dict[tuple[str | None, str], str] = {}
        self.live: set[str] = set()
        self.dead: set[str] = set()

    def check(self, out: list) -> None:
        for o in out:
            if isinstance(o, Transmit):
                msg = parse_message(o.data)
                if isinstance(msg, Response):
                    assert msg.cseq is not None
                    key = (msg.branch, msg.cseq[1])
                else:
                    key = (msg.branch, "INVITE" if msg.method == "ACK" else msg.method)
                assert self.owner[key] in self.live, f"Transmit after termination: {key}"
            elif isinstance(o, RequestReceived | CancelReceived):
                if o.tx is None:
                    assert o.request.method == "ACK"
                    continue
                assert o.tx not in self.live and o.tx not in self.dead
                if isinstance(o, CancelReceived) and o.invite_tx is not None:
                    assert o.invite_tx in self.live
                self.live.add(o.tx)
                self.server_txs.append(o.tx)
                self.server_req[o.tx] = o.request
                self.owner[(o.request.branch, o.request.method)] = o.tx
            elif isinstance(o, ResponseReceived | TransactionTimeout):
                assert o.tx in self.live
            elif isinstance(o, TransactionTerminated):
                self.live.remove(o.tx)
                self.dead.add(o.tx)
            else:
                assert isinstance(o, StrayResponse)
        assert len(self.mgr) == len(self.live)

    def receive(self, data: bytes, transport: str) -> None:
        msg = parse_message(data)
        self.check(self.mgr.receive(msg, UPSTREAM, transport, self.now))

    def send(self, req: Request, transport: str) -> None:
        tx, out = self.mgr.send_request(req, NEXT_HOP, transport, self.now)
        assert tx not in self.live and tx not in self.dead
        self.live.add(tx)
        self.owner[(req.branch, req.method)] = tx
        self.client.append((tx, req, transport))
        self.check(out)

    def respond(self, tx: str, status: int) -> None:
        req = self.server_req[tx]
        state = self.mgr.server_state(tx)
        if req.method == "INVITE":
            allowed = state == State.PROCEEDING or (state == State.ACCEPTED and status == 200)
        else:
            allowed = state in (State.TRYING, State.PROCEEDING)
        resp = build_response(req, status, to_tag="srv")
        if allowed:
            self.check(self.mgr.send_response(tx, resp, self.now))
        else:
            with pytest.raises(TransactionError):
                self.mgr.send_response(tx, resp, self.now)
            assert self.mgr.server_state(tx) == state

    def cancel_out(self, tx: str, invite: Request, transport: str) -> None:
        if tx in self.cancelled:
            return
        self.cancelled.add(tx)
        self.send(cancel_for(invite), transport)

    def finish(self) -> None:
        """Behave as a correct TU would (answer what is open, CANCEL what rings), then let
        the clock run out: everything must be gone."""
        for tx in sorted(self.live):
            if tx in self.server_req and self.mgr.server_state(tx) in (
                State.TRYING,
                State.PROCEEDING,
            ):
                self.respond(tx, 500)
        for tx, req, transport in list(self.client):
            if req.method == "INVITE" and self.mgr.client_state(tx) == State.PROCEEDING:
                self.cancel_out(tx, req, transport)
        self.check(self.mgr.tick(self.now + 64 * T1 + 40))
        assert len(self.mgr) == 0 and not self.live
        assert self.mgr.next_deadline() is None
        assert self.mgr.tick(self.now + 10_000) == []


_STATUS_IN = st.sampled_from([100, 180, 200, 404, 486])
_STATUS_OUT = st.sampled_from([100, 180, 200, 487, 503])
_PICK = st.integers(0, 1000)  # an index into a list, taken modulo its length


def _recent(items: list, pick: int) -> object:
    # Counted from the end, with a bias to the newest: where the live transactions are.
    return items[-1 - pick % min(len(items), 4 if pick % 3 else len(items))]


class TransactionMachine(RuleBasedStateMachine):
    """Random interleavings of wire input, TU calls and clock ticks; `_Model.check` runs on
    every output list and `_Model.finish` at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.m = _Model(TransactionManager(t1=T1, t2=T2, t4=T4))

    @rule(method=st.sampled_from(["INVITE", "INVITE", "OPTIONS", "BYE"]),
          transport=st.sampled_from(["UDP", "TCP"]), old=st.booleans())  # fmt: skip
    def new_request(self, method: str, transport: str, old: bool) -> None:
        m = self.m
        m.n += 1
        req = make_request(
            method,
            # RFC 2543 peers: a branch without the cookie (unique so outputs map back).
            branch=f"old{m.n}" if old else f"z9hG4bKu{m.n}",
            # A hostname sent-by gets a received= stamp: the Via changes under the TU.
            sent_by="upstream.example:5060" if m.n % 2 else "192.0.2.10:5060",
            transport=transport,
            call_id=f"call{m.n}",
            cseq=m.n,
        )
        m.incoming.append((req.to_bytes(), transport))
        if method == "INVITE":
            m.invites_in.append((req.to_bytes(), transport))
        m.receive(req.to_bytes(), transport)

    @precondition(lambda self: self.m.incoming)
    @rule(pick=_PICK)
    def retransmit_request(self, pick: int) -> None:
        self.m.receive(*_recent(self.m.incoming, pick))  # type: ignore[misc]

    @precondition(lambda self: self.m.invites_in)
    @rule(pick=_PICK, kind=st.sampled_from(["ACK same branch", "ACK new branch", "CANCEL"]))
    def ack_or_cancel(self, pick: int, kind: str) -> None:
        m = self.m
        data, transport = _recent(m.invites_in, pick)  # type: ignore[misc]
        invite = parse_message(data)
        assert isinstance(invite, Request)
        if kind == "CANCEL":
            msg = cancel_for(invite)
        else:
            msg = ack_for(invite, branch=None if kind == "ACK same branch" else f"z9hG4bKa{pick}")
        m.incoming.append((msg.to_bytes(), transport))
        m.receive(msg.to_bytes(), transport)

    @precondition(lambda self: self.m.server_txs)
    @rule(pick=_PICK, status=_STATUS_IN)
    def tu_responds(self, pick: int, status: int) -> None:
        # Mostly a live transaction; sometimes any, which exercises misuse on dead ones.
        live = [tx for tx in self.m.server_txs if tx in self.m.live]
        pool = live if live and pick % 4 else self.m.server_txs
        self.m.respond(_recent(pool, pick), status)  # type: ignore[arg-type]

    @rule(method=st.sampled_from(["INVITE", "INVITE", "OPTIONS"]),
          transport=st.sampled_from(["UDP", "TCP"]))  # fmt: skip
    def tu_sends(self, method: str, transport: str) -> None:
        m = self.m
        m.n += 1
        req = outgoing(method, branch=f"z9hG4bKc{m.n}", transport=transport, call_id=f"o{m.n}")
        m.send(req, transport)

    @precondition(lambda self: any(c[1].method == "INVITE" for c in self.m.client))
    @rule(pick=_PICK)
    def tu_cancels(self, pick: int) -> None:
        invites = [c for c in self.m.client if c[1].method == "INVITE"]
        self.m.cancel_out(*_recent(invites, pick))  # type: ignore[misc]

    @precondition(lambda self: self.m.client)
    @rule(pick=_PICK, status=_STATUS_OUT)
    def downstream_responds(self, pick: int, status: int) -> None:
        _tx, req, transport = _recent(self.m.client, pick)  # type: ignore[misc]
        if req.method != "INVITE" and status == 487:
            status = 200
        resp = build_response(req, status, to_tag="dn")
        self.m.check(self.m.mgr.receive(resp, NEXT_HOP, transport, self.m.now))

    @rule(pick=_PICK)
    def stray(self, pick: int) -> None:
        resp = build_response(outgoing(branch=f"z9hG4bKnone{pick}"), 200, to_tag="x")
        assert self.m.mgr.receive(resp, NEXT_HOP, "UDP", self.m.now) == [StrayResponse(resp)]

    @rule(dt=st.one_of(st.floats(0, 2), st.floats(0, 40)))
    def tick(self, dt: float) -> None:
        # Mostly short steps (retransmission timers), sometimes long ones (terminal timers).
        self.m.now += dt
        self.m.check(self.m.mgr.tick(self.m.now))

    @invariant()
    def deadlines_are_ahead(self) -> None:
        d = self.m.mgr.next_deadline()
        assert d is None or d > self.m.now

    def teardown(self) -> None:
        self.m.finish()


TransactionMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRandomSequences = TransactionMachine.TestCase


class TestTransportError:
    """§17.1.4: a request that cannot be sent fails its client transaction at once."""

    def test_waiting_transactions_to_that_peer_fail_now(self, mgr: TransactionManager) -> None:
        invite, _ = mgr.send_request(outgoing(branch="z9hG4bKt1"), NEXT_HOP, "TCP", 0.0)
        options, _ = mgr.send_request(outgoing("OPTIONS", branch="z9hG4bKt2"), NEXT_HOP, "TCP", 0.0)
        elsewhere, _ = mgr.send_request(outgoing(branch="z9hG4bKt3"), ("192.0.2.99", 5060), "TCP", 0.0)
        over_udp, _ = mgr.send_request(outgoing(branch="z9hG4bKt4"), NEXT_HOP, "UDP", 0.0)
        out = mgr.transport_error(NEXT_HOP, "TCP", 1.0)
        assert out == [
            TransactionTimeout(invite, "client", "transport"), TransactionTerminated(invite),
            TransactionTimeout(options, "client", "transport"), TransactionTerminated(options),
        ]
        assert mgr.client_state(invite) == mgr.client_state(options) == State.TERMINATED
        assert mgr.client_state(elsewhere) == mgr.client_state(over_udp) == State.CALLING
        # Their timers went with them: nothing fires for them later.
        assert all(o.tx not in (invite, options) for o in mgr.tick(100) if hasattr(o, "tx"))

    def test_a_transaction_that_already_has_an_answer_is_left_alone(self, mgr: TransactionManager) -> None:
        req = outgoing(branch="z9hG4bKt5")
        tx, _ = mgr.send_request(req, NEXT_HOP, "TCP", 0.0)
        mgr.receive(build_response(req, 180, to_tag="t"), NEXT_HOP, "TCP", 0.1)
        assert mgr.client_state(tx) == State.PROCEEDING
        assert mgr.transport_error(NEXT_HOP, "TCP", 0.2) == []
        assert mgr.client_state(tx) == State.PROCEEDING

    def test_timer_timeouts_say_timeout(self, mgr: TransactionManager) -> None:
        tx, _ = mgr.send_request(outgoing(), NEXT_HOP, "UDP", 0.0)
        timeout = only(mgr.tick(32.0), TransactionTimeout)
        assert timeout == TransactionTimeout(tx, "client", "timeout")
