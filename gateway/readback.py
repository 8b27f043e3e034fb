"""933, the 911 address test: the edge answers itself and reads the registered address back.

A customer dials 933 to hear the address a 911 call from that number would send (the
FCC's test for a registered location). The edge answers the INVITE (200 with a PCMU
answer to the caller's SDP offer), speaks the address (media.tts, cached per text) as RTP
to the caller's media address (media.rtp), then hangs up with a BYE; a caller's BYE stops
the stream, a CANCEL before the answer gets its 487. The address is the one 911 routing
would use (e911_router.routing.route_call, rule E2: the From user part), so what the
customer hears is what the PSAP would get — or why nothing would (no address on file, a
move not confirmed yet, E5).

The SIP transaction work stays the edge's (its transaction manager, responses, BYE);
this module holds the per-call session and what is said.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scourgify.address_constants import (
    LONGHAND_DIRECTIONALS,
    LONGHAND_STREET_TYPES,
    STATE_ABBREVIATIONS,
)

from e911_router.address import Address
from e911_router.routing import E911Route
from e911_router.routing import route_call as e911_route_call
from gateway.media import sdp
from gateway.media.rtp import RtpSender
from gateway.media.tts import Speech, SpeechError
from gateway.routing import from_tn
from gateway.sip.message import SipError
from gateway.sip.transactions import TransactionError
from rater.numbers import Kind, analyse
from services import logs, metrics

if TYPE_CHECKING:
    from gateway.calls import Call
    from gateway.edge import Edge
    from gateway.sip.message import Request, Response

log = logs.get("readback")

_UNITS = {"STE": "Suite", "APT": "Apartment", "BLDG": "Building", "RM": "Room", "FL": "Floor",
          "DEPT": "Department", "OFC": "Office", "UNIT": "Unit", "LOT": "Lot", "PH": "Penthouse",
          "SPC": "Space", "TRLR": "Trailer", "#": "Number"}  # fmt: skip
# The longest spelling of each state code is its name ("FLORIDA", not "FLA").
_STATES: dict[str, str] = {}
for _name, _code in STATE_ABBREVIATIONS.items():
    if len(_name) > len(_STATES.get(_code, "")):
        _STATES[_code] = _name


def _words(text: str) -> str:
    # All-capital words are spelled out letter by letter by a synthesiser: say them as words.
    return " ".join(w if any(c.isdigit() for c in w) else w.capitalize() for w in text.split())


def spoken_digits(digits: str) -> str:
    return " ".join(d for d in digits if d.isdigit())


def spoken_tn(tn: str | None) -> str:
    """'+17275550100' → '7 2 7, 5 5 5, 0 1 0 0' (grouped as people say a NANP number)."""
    if not tn:
        return "this line"
    d = tn.removeprefix("+1") if tn.startswith("+1") and len(tn) == 12 else tn.lstrip("+")
    if len(d) == 10:
        return f"{spoken_digits(d[:3])}, {spoken_digits(d[3:6])}, {spoken_digits(d[6:])}"
    return spoken_digits(d)


def spoken_address(a: Address) -> str:
    street = [a.house_number]
    if a.pre_directional:
        street.append(LONGHAND_DIRECTIONALS.get(a.pre_directional, a.pre_directional))
    street.append(a.street_name)
    if a.street_suffix:
        street.append(LONGHAND_STREET_TYPES.get(a.street_suffix, a.street_suffix))
    if a.post_directional:
        street.append(LONGHAND_DIRECTIONALS.get(a.post_directional, a.post_directional))
    parts = [_words(" ".join(street))]
    if a.unit:
        kind, _, rest = a.unit.partition(" ")
        parts.append(f"{_UNITS.get(kind, kind)} {rest}".strip() if kind in _UNITS else a.unit)
    if a.floor:
        parts.append(f"Floor {a.floor}")
    if a.room:
        parts.append(f"Room {a.room}")
    parts += [_words(a.city), _words(_STATES.get(a.state, a.state)), spoken_digits(a.zip[:5])]
    return ", ".join(parts)


def announcement(route: E911Route) -> tuple[str, str]:
    """What 933 says for a 911 route, and which case it is (the metric's label):
    `address`, `move_pending` (E5) or `no_address`. Short: it is listened to, not read."""
    tn = spoken_tn(route.callback)
    national = "9 1 1 calls go to the national emergency call center until then."
    if route.rule == "E5" and route.address is not None:
        return "move_pending", (
            f"The move of {tn} to {spoken_address(route.address)} is not confirmed yet. {national}"
        )
    if route.address is None:
        return "no_address", f"No 9 1 1 address is on file for {tn}. {national}"
    return "address", f"The 9 1 1 address for {tn} is: {spoken_address(route.address)}."


def is_933(call: Call) -> bool:
    d = call.outcome.decision if call.outcome else None
    return d is not None and analyse(d.dnis).kind is Kind.TEST_933


@dataclass
class Session:
    call: Call
    task: asyncio.Task | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    answered: bool = False
    ok: Response | None = None  # our 200, retransmitted until the ACK


class ReadBack:
    """The 933 sessions of one edge."""

    def __init__(self, edge: Edge, media_host: str, speech: Speech | None = None) -> None:
        self.edge = edge
        self.media_host = media_host  # where RTP sockets bind (the SIP listening address)
        self.speech = speech or Speech()
        self.sessions: dict[str, Session] = {}

    def start(self, call: Call) -> None:
        s = self.sessions[call.call_id] = Session(call)
        s.task = self.edge._spawn(self._run(s))

    def on_ack(self, call: Call) -> bool:
        s = self.sessions.get(call.call_id)
        if s is None:
            return False
        s.acked.set()
        return True  # ours: nothing to forward

    def on_cancel(self, call: Call) -> bool:
        """A CANCEL (already answered 200 by the edge): before our answer, 487 and the end."""
        s = self.sessions.get(call.call_id)
        if s is None:
            return False
        if not s.answered and s.task is not None:
            s.task.cancel()
            self._end(s, "cancelled", 487, "cancelled before the read-back", respond=487)
        return True

    def on_request(self, tx: str, req: Request, call: Call) -> bool:
        """An in-dialog request from the caller: a BYE ends the read-back."""
        s = self.sessions.get(call.call_id)
        if s is None:
            return False
        edge = self.edge
        if req.method != "BYE":
            edge._respond(tx, req, 405, "Method Not Allowed", [("Allow", "ACK, BYE, CANCEL")])
            return True
        edge._respond(tx, req, 200, "OK")
        if s.task is not None:
            s.task.cancel()
        self._end(s, "answered" if s.answered else "cancelled", call.final_status, "BYE")
        return True

    def _end(self, s: Session, disposition: str, status: int | None, reason: str,
             respond: int | None = None) -> None:  # fmt: skip
        if self.sessions.pop(s.call.call_id, None) is None:
            return
        call, edge = s.call, self.edge
        if respond is not None:
            call.final_status = status
            with contextlib.suppress(TransactionError):
                edge._respond(call.server_tx, call.invite, respond)
        if call.ended_mono is None and not call.ended:
            call.ended_mono = edge.now()
        edge._spawn(edge._finish(call, disposition, status, reason))

    async def _run(self, s: Session) -> None:
        call, edge = s.call, self.edge
        assert call.outcome is not None and call.outcome.trunk is not None
        route = e911_route_call(edge.router._inventory(), from_tn(call.invite), call.outcome.trunk)
        case, text = announcement(route)
        ctype = (call.invite.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        dest = sdp.audio_destination(call.invite.body) if ctype == "application/sdp" else None
        if dest is None:
            metrics.test_933_calls_total.labels(outcome="refused").inc()
            self._end(s, "failed", 488, "933: no PCMU audio offered", respond=488)
            return
        try:
            sender = await RtpSender.open(self.media_host)
        except OSError as exc:  # no port left, or an address we cannot bind
            log.error("readback_media_failed", call_id=call.call_id, error=repr(exc))
            metrics.test_933_calls_total.labels(outcome="failed").inc()
            self._end(s, "failed", 503, "933: no media port", respond=503)
            return
        try:
            try:
                audio = await self.speech.speak(text)
            except SpeechError as exc:
                log.error("readback_speech_failed", call_id=call.call_id, error=str(exc))
                metrics.test_933_calls_total.labels(outcome="failed").inc()
                self._end(s, "failed", 503, "933: speech synthesis failed", respond=503)
                return
            if call.ended or call.call_id not in self.sessions:
                return
            self._answer(s, sender.port)
            metrics.test_933_calls_total.labels(outcome=case).inc()
            log.info("readback_answered", call_id=call.call_id, tn=route.callback, case=case,
                     seconds=len(audio) / 8000)  # fmt: skip
            if not await self._wait_ack(s):
                self._hang_up(s, "no ACK for the 2xx", "timeout")
                return
            await sender.play(audio, dest)
            self._hang_up(s, "933 read-back played")
        finally:
            sender.close()

    def _answer(self, s: Session, port: int) -> None:
        call, edge = s.call, self.edge
        s.ok = edge._respond(call.server_tx, call.invite, 200, "OK", headers=[
            ("Contact", f"<sip:{edge.local.host}:{edge.local.port_for(call.transport)}>"),
            ("Allow", "ACK, BYE, CANCEL"), ("Content-Type", "application/sdp"),
        ], body=sdp.answer(edge.local.host, port))  # fmt: skip
        s.answered = True
        call.answered_mono = edge.now()
        call.state = "answered"
        call.final_status = 200
        call.callee_to = s.ok.headers.get("To")

    async def _wait_ack(self, s: Session) -> bool:
        """RFC 3261 §13.3.1.4: the UAS retransmits its 2xx (T1, doubling to T2) until the
        ACK comes, for 64*T1 at most."""
        tm, edge = self.edge.tm, self.edge
        interval, waited = tm.t1, 0.0
        while waited < 64 * tm.t1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.acked.wait(), interval)
                return True
            waited += interval
            interval = min(2 * interval, tm.t2)
            with contextlib.suppress(TransactionError, SipError):
                edge._run(tm.send_response(s.call.server_tx, s.ok, edge.now()))
        return s.acked.is_set()

    def _hang_up(self, s: Session, reason: str, disposition: str = "answered") -> None:
        if s.call.call_id not in self.sessions:
            return
        self.edge._hang_up(s.call, reason=None)
        self._end(s, disposition, 200, reason)

