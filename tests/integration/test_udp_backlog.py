"""The edge's overload control reads its UDP sockets' unread octets from the kernel
(gateway/transports.py, SO_MEMINFO): datagrams nobody has read yet show, and reading them
empties the count. Real sockets on loopback, no event loop turning while they queue."""

from __future__ import annotations

import asyncio
import socket

from gateway.transports import Transports


async def test_unread_datagrams_show_as_backlog_and_reading_them_clears_it() -> None:
    seen: list = []
    t = Transports(lambda msg, addr, name: seen.append(msg), lambda *a: None)
    await t.listen_udp("127.0.0.1", 0)
    port = t._udp_all[0].get_extra_info("sockname")[1]
    assert t.udp_backlog() == 0
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    options = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d\r\n"
               b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: %d\r\nCSeq: 1 OPTIONS\r\n"
               b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    # Sent without yielding to the loop: they wait in the kernel, unread.
    for i in range(200):
        sender.sendto(options % (i, i), ("127.0.0.1", port))
    queued = t.udp_backlog()
    assert queued >= 200 * 100, queued  # the kernel counts each datagram's whole buffer
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(seen) == 200:
            break
    assert len(seen) == 200
    assert t.udp_backlog() == 0
    sender.close()
    for transport in t._udp_all:
        transport.close()
