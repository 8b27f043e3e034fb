"""Sending audio as RTP (RFC 3550) with the PCMU payload (RFC 3551: payload type 0, 8 kHz,
20 ms = 160 one-byte samples per packet), paced in real time by the event loop."""

from __future__ import annotations

import asyncio
import secrets
import struct

from gateway.media.g711 import SILENCE

PCMU = 0
CLOCK_RATE = 8000
PTIME = 0.020
SAMPLES = int(CLOCK_RATE * PTIME)  # 160 per packet


def packets(audio: bytes, ssrc: int, seq: int, timestamp: int) -> list[bytes]:
    """`audio` (PCMU bytes) cut into RTP packets; the last one padded with silence.
    The marker bit starts the talkspurt (RFC 3551 §4.1)."""
    out = []
    for i, at in enumerate(range(0, len(audio), SAMPLES)):
        chunk = audio[at : at + SAMPLES].ljust(SAMPLES, bytes([SILENCE]))
        header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | PCMU,
                             (seq + i) & 0xFFFF, (timestamp + i * SAMPLES) & 0xFFFFFFFF, ssrc)  # fmt: skip
        out.append(header + chunk)
    return out


class RtpSender(asyncio.DatagramProtocol):
    """One outgoing stream from a UDP port of its own; what the far end sends is dropped."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    @classmethod
    async def open(cls, host: str) -> RtpSender:
        loop = asyncio.get_running_loop()
        for _ in range(16):  # RFC 3550 §11: RTP on an even port (RTCP would take the odd one)
            sender = cls()
            transport, _proto = await loop.create_datagram_endpoint(lambda s=sender: s,
                                                                    local_addr=(host, 0))  # fmt: skip
            sender.transport = transport
            sender.port = transport.get_extra_info("sockname")[1]
            if sender.port % 2 == 0:
                return sender
            transport.close()
        return sender  # an odd port works too; only the convention is lost

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        pass  # the caller's own audio: nobody listens on a read-back

    async def play(self, audio: bytes, dest: tuple[str, int]) -> int:
        """Send `audio` to `dest`, one packet every 20 ms; the count sent. Cancelling the
        task stops the stream at the next packet."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        start = loop.time()
        sent = 0
        for i, pkt in enumerate(packets(audio, ssrc, seq, ts)):
            # Due times from the start, not sleeps in a row: a late wake-up does not
            # accumulate into drift.
            delay = start + i * PTIME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.transport.sendto(pkt, dest)
            sent += 1
        return sent

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
