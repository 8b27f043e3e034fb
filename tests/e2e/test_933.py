"""Issue 5: 933, the 911 address test. A raw UDP SIP caller on 127.0.0.2 (the acme PBX)
dials 933; the edge answers, streams the registered address as RTP to the caller's SDP
address, and hangs up. The caller checks every RTP header and that the audio is exactly
what gateway.readback says for that address."""

from __future__ import annotations

import asyncio
import itertools
import re
import select
import socket
import struct
import uuid
from decimal import Decimal

import pytest

from e911_router.address import normalize
from e911_router.routing import E911Route
from gateway import readback
from gateway.media import tts
from tests.e2e.conftest import example

PBX = "127.0.0.2"


def ulaw_decode(code: int) -> int:
    """G.711 μ-law → 16-bit linear (the decoder, written apart from the encoder under test)."""
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


class Caller:
    """A SIP UA with one SIP socket and one RTP socket, both on the PBX's address."""

    def __init__(self, node_port: int) -> None:
        self.node = ("127.0.0.1", node_port)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((PBX, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((PBX, 0))
        self.call_id = uuid.uuid4().hex
        self.tag = self.call_id[:8]
        self.to: str | None = None
        self.contact: str | None = None
        self.packets: list[bytes] = []

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def _request(self, method: str, uri: str, cseq: int, to: str, body: str = "",
                 branch: str | None = None) -> bytes:  # fmt: skip
        port = self.sip.getsockname()[1]
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        self.branch = branch or f"z9hG4bK{uuid.uuid4().hex[:16]}"
        return (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {PBX}:{port};branch={self.branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.tn}@{PBX}>;tag={self.tag}\r\nTo: {to}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.tn}@{PBX}:{port}>\r\n{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def invite(self, tn: str, dialled: str = "933", formats: str = "0 8 101",
               cancel: bool = False) -> str:  # fmt: skip
        """Send the INVITE with an audio offer (PCMU first); the final response, as text."""
        self.tn = tn
        rtp_port = self.rtp.getsockname()[1]
        sdp = (f"v=0\r\no=pbx 1 1 IN IP4 {PBX}\r\ns=-\r\nc=IN IP4 {PBX}\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\n")  # fmt: skip
        to = f"<sip:{dialled}@127.0.0.1>"
        uri = f"sip:{dialled}@127.0.0.1:{self.node[1]}"
        self.sip.sendto(self._request("INVITE", uri, 1, to, sdp), self.node)
        if cancel:  # at once: while the edge routes the call or synthesizes its speech
            self.sip.sendto(self._request("CANCEL", uri, 1, to, branch=self.branch), self.node)
        while True:
            msg = self.recv_sip()
            if msg.startswith("SIP/2.0 1") or " CANCEL" in (header(msg, "CSeq") or ""):
                continue
            self.to = header(msg, "To")
            contact = header(msg, "Contact")
            self.contact = contact[contact.index("<") + 1 : contact.index(">")] if contact else None
            return msg

    def ack(self) -> None:
        assert self.to and self.contact
        self.sip.sendto(self._request("ACK", self.contact, 1, self.to), self.node)

    def bye(self) -> None:
        assert self.to and self.contact
        self.sip.sendto(self._request("BYE", self.contact, 2, self.to), self.node)

    def recv_sip(self) -> str:
        """The next SIP message of this call (30 s at most: a hang is a failure)."""
        self.sip.settimeout(30)
        while True:
            text = self.sip.recv(65535).decode()
            if f"\r\nCall-ID: {self.call_id}\r\n" in text:
                return text

    def media_until(self, done) -> str:
        """Collect RTP while waiting for the SIP message `done(msg)` accepts; then the RTP
        already queued. Returns that SIP message."""
        while True:
            ready, _, _ = select.select([self.sip, self.rtp], [], [], 30)
            assert ready, "neither RTP nor SIP for 30 s"
            if self.rtp in ready:
                self.packets.append(self.rtp.recv(2048))
            if self.sip in ready:
                msg = self.recv_sip()
                if done(msg):
                    self.drain()
                    return msg

    def drain(self) -> None:
        self.rtp.setblocking(False)
        try:
            while True:
                self.packets.append(self.rtp.recv(2048))
        except BlockingIOError:
            pass
        finally:
            self.rtp.setblocking(True)

    def answer_bye(self, bye: str) -> None:
        keep = "".join(f"{line}\r\n" for line in bye.split("\r\n")
                       if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq"))  # fmt: skip
        self.sip.sendto(f"SIP/2.0 200 OK\r\n{keep}Content-Length: 0\r\n\r\n".encode(), self.node)


def header(msg: str, name: str) -> str | None:
    m = re.search(rf"^{name}:\s*(.*)$", msg.split("\r\n\r\n", 1)[0], re.M | re.I)
    return m.group(1).strip() if m else None


def rtp_fields(pkt: bytes) -> tuple[int, int, int, int, int, int]:
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", pkt[:12])
    return b0 >> 6, b1 >> 7, b1 & 0x7F, seq, ts, ssrc


def check_stream(packets: list[bytes]) -> bytes:
    """RFC 3550 / 3551 headers of a PCMU stream; its payload."""
    fields = [rtp_fields(p) for p in packets]
    assert {(v, pt) for v, _m, pt, *_ in fields} == {(2, 0)}  # version 2, PCMU
    assert [m for _v, m, *_ in fields] == [1] + [0] * (len(fields) - 1)  # talkspurt marker
    assert len({ssrc for *_, ssrc in fields}) == 1
    seqs, stamps = [f[3] for f in fields], [f[4] for f in fields]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(stamps))
    assert all(len(p) == 12 + 160 for p in packets)
    return b"".join(p[12:] for p in packets)


def example_address_text() -> str:
    """What 933 says for +17275550100 (examples/provision.yaml), as the module phrases it."""
    address = normalize(street="600 Cleveland St", unit="Suite 200", city="Clearwater",
                        state="FL", zip="33755")  # fmt: skip
    route = E911Route("e911", "E3", "", (), "+17275550100", address)
    case, text = readback.announcement(route)
    assert case == "address"
    return text


async def cdr_rows(pg, n: int) -> list:
    for _ in range(150):
        rows = await pg.fetch("SELECT * FROM cdrs ORDER BY started_at")
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    return rows


@pytest.mark.rule("E6")
async def test_933_reads_back_the_registered_address(pg, start_node) -> None:
    node = await start_node(example())
    expected = await tts.synthesize(example_address_text())
    caller = Caller(node.sip_port)
    try:
        ok = caller.invite("+17275550100")
        assert ok.startswith("SIP/2.0 200 "), ok + node.log()
        assert header(ok, "Content-Type") == "application/sdp"
        body = ok.split("\r\n\r\n", 1)[1]
        assert re.search(r"^m=audio \d+ RTP/AVP 0\r?$", body, re.M), body
        assert "a=rtpmap:0 PCMU/8000" in body
        caller.ack()
        bye = caller.media_until(lambda m: m.startswith("BYE "))
        caller.answer_bye(bye)
    finally:
        caller.close()

    payload = check_stream(caller.packets)
    # The whole synthesized audio, in as many 20 ms packets as it needs, the last one
    # padded with μ-law silence.
    n = len(caller.packets)
    assert (n - 1) * 160 < len(expected) <= n * 160
    assert payload[: len(expected)] == expected
    assert set(payload[len(expected) :]) <= {0xFF}
    assert max(abs(ulaw_decode(b)) for b in payload) > 4000, "silence, not speech"

    [row] = await cdr_rows(pg, 1)
    assert (row["dnis"], row["disposition"], row["sip_status"]) == ("933", "answered", 200), dict(row)
    assert row["amount"] == Decimal("0") and row["jurisdiction"] == "service"
    assert row["duration_ms"] > 0 and row["emergency_level"] is None
    assert 'sipcc_933_calls_total{outcome="address"} 1.0' in node.metrics()


@pytest.mark.rule("E5")
async def test_933_caller_hangs_up_mid_stream(pg, start_node) -> None:
    node = await start_node(example())
    caller = Caller(node.sip_port)
    try:
        ok = caller.invite("+17275550109")  # a move not confirmed yet (E5)
        assert ok.startswith("SIP/2.0 200 "), ok + node.log()
        caller.ack()
        while len(caller.packets) < 25:  # half a second of the read-back
            caller.packets.append(caller.rtp.recv(2048))
        caller.bye()
        caller.media_until(lambda m: m.startswith("SIP/2.0 200 ") and " BYE" in header(m, "CSeq"))
        # The 200 for the BYE is sent in the same step that stops the stream: every packet
        # the edge will ever send is queued here already. Nothing more comes.
        heard = len(caller.packets)
        ready, _, _ = select.select([caller.rtp], [], [], 1.0)
        assert not ready, "RTP kept coming after the BYE"
    finally:
        caller.close()
    check_stream(caller.packets)
    _case, text = readback.announcement(
        E911Route("national", "E5", "", (), "+17275550109", normalize(
            line="600 Cleveland St Suite 210, Clearwater, FL 33755")))  # fmt: skip
    assert _case == "move_pending"
    full = await tts.synthesize(text)
    assert heard * 160 < len(full)  # cut short
    assert b"".join(p[12:] for p in caller.packets) == full[: heard * 160]
    [row] = await cdr_rows(pg, 1)
    assert (row["disposition"], row["reason"], row["amount"]) == ("answered", "BYE", Decimal("0"))
    assert 'sipcc_933_calls_total{outcome="move_pending"} 1.0' in node.metrics()


async def test_933_without_pcmu_is_refused_with_488(pg, start_node) -> None:
    node = await start_node(example())
    caller = Caller(node.sip_port)
    try:
        answer = caller.invite("+17275550100", formats="8 101")  # PCMA only
        assert answer.startswith("SIP/2.0 488 "), answer
    finally:
        caller.close()
    [row] = await cdr_rows(pg, 1)
    assert (row["disposition"], row["sip_status"]) == ("failed", 488)
    assert 'sipcc_933_calls_total{outcome="refused"} 1.0' in node.metrics()


async def test_933_cancelled_before_the_answer_gets_487(pg, start_node) -> None:
    node = await start_node(example())
    caller = Caller(node.sip_port)
    try:
        final = caller.invite("+17275550100", cancel=True)
        assert final.startswith("SIP/2.0 487 "), final + node.log()
    finally:
        caller.close()
    [row] = await cdr_rows(pg, 1)
    assert (row["disposition"], row["sip_status"]) == ("cancelled", 487)
