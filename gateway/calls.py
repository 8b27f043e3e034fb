"""A call as the edge follows it: from INVITE to the end, and the CDR it leaves.

Plain state, no I/O. The edge moves a call through routing → proceeding → answered →
ended; `finish` is the one place a call ends, and it ends once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.routing import Outcome
from gateway.sip.message import Request
from services.cdr import CdrEvent


def wall_now() -> datetime:
    return datetime.now(UTC)


def disposition_for(status: int, cancelled: bool) -> str:
    """A final status → the CDR disposition (ASR/NER counting in the dashboards)."""
    if 200 <= status < 300:
        return "answered"
    if status in (486, 600):
        return "busy"
    if status == 487:
        return "cancelled" if cancelled else "no_answer"
    if status in (408, 480):
        return "no_answer"
    return "failed"


@dataclass(slots=True)
class Call:
    call_id: str
    server_tx: str
    invite: Request
    source: tuple[str, int]
    started_wall: datetime
    started_mono: float
    transport: str = "UDP"  # the caller's side
    out_transport: str = "UDP"  # towards the next hop
    state: str = "routing"  # routing | proceeding | answered | ended
    outcome: Outcome | None = None
    client_tx: str | None = None
    forwarded: Request | None = None
    caller_tag: str | None = None
    caller_target: str | None = None  # the caller's Contact URI
    callee_target: str | None = None  # the callee's Contact URI (from the 2xx)
    caller_from: str | None = None  # From as the caller sent it (with its tag)
    callee_to: str | None = None  # To with the callee's tag, from the 2xx
    caller_cseq: int = 1  # highest CSeq seen from each side, for BYEs we originate
    callee_cseq: int = 0
    session_expires: float | None = None  # RFC 4028 interval negotiated, seconds
    provisional: bool = False
    acked: bool = False  # the caller's ACK for the 2xx went through
    cancelled: bool = False
    cancel_sent: bool = False
    udp_fallback: bool = False  # retried over UDP after a refused TCP connection (§18.1.1)
    answered_mono: float | None = None
    ended_mono: float | None = None
    final_status: int | None = None
    timers: list = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def duration_ms(self) -> int:
        if self.answered_mono is None or self.ended_mono is None:
            return 0
        return max(0, round((self.ended_mono - self.answered_mono) * 1000))

    def cdr(self, disposition: str, reason: str | None, edge: str) -> CdrEvent:
        o = self.outcome
        d = o.decision if o else None
        duration = self.duration_ms()
        billed, amount = d.quote(duration) if d else (0, Decimal("0.00000"))
        answered = (
            self.started_wall + timedelta(seconds=self.answered_mono - self.started_mono)
            if self.answered_mono is not None
            else None
        )
        ended = self.started_wall + timedelta(
            seconds=(self.ended_mono or self.started_mono) - self.started_mono
        )
        return CdrEvent(
            call_id=self.call_id,
            leg="a",
            direction="outbound",
            dnis=d.dnis if d else "",
            started_at=self.started_wall,
            ended_at=ended,
            disposition=disposition,
            customer_id=d.customer_id if d else None,
            trunk_id=o.trunk.id if o and o.trunk else None,
            ani=d.ani_used if d else None,
            ani_source=d.ani_source if d else None,
            jurisdiction=d.jurisdiction if d else None,
            answered_at=answered,
            duration_ms=duration,
            billed_seconds=billed,
            rate_per_minute=d.rate_per_minute if d else None,
            amount=amount,
            currency=d.currency if d else "USD",
            sip_status=self.final_status,
            reason=reason,
            emergency_level=o.emergency_level if o else None,
            emergency_route=o.e911_route_taken if o else None,
            carrier_id=d.carrier_id if d else None,
            edge=edge,
        )
