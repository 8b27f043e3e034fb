"""The edge's sockets: UDP, TCP and TLS, around the sans-I/O parser.

Each transport delivers whole parsed messages to one callback with the peer's address and
the transport's name, and sends bytes to an address. Streams are framed by Content-Length
(`StreamFramer`); a framing error closes the connection, as RFC 3261 §18.3 and RFC 4475
ask, because the byte stream can no longer be trusted. Connections are kept in a table by
(transport, peer) so a response goes back on the connection its request came in on
(§18.2.2), and an outbound request reuses an open connection to the same peer or opens one.
Idle connections are closed; the table is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import Callable

from gateway.sip.message import Request, Response, SipError, StreamFramer, parse_message
from services import logs, metrics

# getsockopt(SOL_SOCKET, SO_MEMINFO): nine u32 counters, the first the receive queue's
# memory (linux/sock_diag.h, SK_MEMINFO_RMEM_ALLOC). Not in the socket module.
_SO_MEMINFO = 55
_MEMINFO_LEN = 9 * 4

log = logs.get("transport")

Deliver = Callable[[Request | Response, tuple[str, int], str], None]
Rejected = Callable[[bytes, tuple[str, int], str, SipError], None]

STREAMS = ("TCP", "TLS")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: Transports) -> None:
        self.owner = owner

    def connection_made(self, transport) -> None:  # type: ignore[override]
        if self.owner.udp is None:
            self.owner.udp = transport
        self.owner._udp_all.append(transport)

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.owner.received(data, addr[:2], "UDP")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: transaction timers handle a vanished peer.
        log.debug("udp_error", error=str(exc))


class _Stream(asyncio.Protocol):
    def __init__(self, owner: Transports, name: str, peer: tuple[str, int] | None = None) -> None:
        self.owner = owner
        self.name = name
        self.peer = peer
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.last_used = time.monotonic()
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        if self.peer is None:
            self.peer = tuple(transport.get_extra_info("peername")[:2])  # type: ignore[assignment]
        self.owner._register(self)
        if not self.ready.done():
            self.ready.set_result(self)

    def data_received(self, data: bytes) -> None:
        self.last_used = time.monotonic()
        assert self.peer is not None
        try:
            messages = self.framer.feed(data)
        except SipError as exc:
            for msg in getattr(exc, "messages", []) or []:
                self.owner.deliver(msg, self.peer, self.name)
            metrics.sip_parse_errors_total.inc()
            log.info("stream_framing_error", peer=f"{self.peer[0]}:{self.peer[1]}",
                     transport=self.name, error=exc.reason)  # fmt: skip
            self.owner.rejected(data, self.peer, self.name, exc)
            if self.transport is not None:
                self.transport.close()
            return
        for msg in messages:
            self.owner.deliver(msg, self.peer, self.name)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._unregister(self)
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed"))

    def write(self, data: bytes) -> None:
        self.last_used = time.monotonic()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class Transports:
    def __init__(
        self,
        deliver: Deliver,
        rejected: Rejected,
        *,
        idle_seconds: float = 600,
        max_connections: int = 10_000,
        client_tls: ssl.SSLContext | None = None,
        unreachable: Callable[[tuple[str, int], str], None] | None = None,
    ) -> None:
        self.deliver = deliver
        self.rejected = rejected
        self.unreachable = unreachable
        self.idle_seconds = idle_seconds
        self.max_connections = max_connections
        self.client_tls = client_tls
        self.udp: asyncio.DatagramTransport | None = None
        self._udp_all: list[asyncio.DatagramTransport] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._streams: dict[tuple[str, str, int], _Stream] = {}
        self._pending: dict[tuple[str, str, int], asyncio.Task] = {}
        self._reaper: asyncio.Task | None = None
        self._dns: dict[str, tuple[str, float]] = {}

    # ---- listening -------------------------------------------------------------------

    async def listen_udp(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        sock = _bound_socket(host, port, socket.SOCK_DGRAM, reuse_port)
        # Room for bursts: a full receive buffer is where UDP drops packets first.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=sock)
        self._start_reaper()

    async def listen_stream(self, host: str, port: int, name: str = "TCP", *,
                            tls: ssl.SSLContext | None = None, reuse_port: bool = False) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()
        sock = _bound_socket(host, port, socket.SOCK_STREAM, reuse_port)
        server = await loop.create_server(lambda: _Stream(self, name), sock=sock, ssl=tls)
        self._servers.append(server)
        self._start_reaper()

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.idle_seconds / 2))
            cutoff = time.monotonic() - self.idle_seconds
            for stream in list(self._streams.values()):
                if stream.last_used < cutoff and stream.transport is not None:
                    stream.transport.close()

    def udp_backlog(self) -> int:
        """Octets received but not yet read, in the fullest of our UDP sockets (the kernel's
        receive-memory count, SO_MEMINFO, Linux 4.6+); 0 where the kernel cannot tell."""
        deepest = 0
        for transport in self._udp_all:
            sock = transport.get_extra_info("socket")
            if sock is None:
                continue
            try:
                deepest = max(deepest, struct.unpack_from("I", sock.getsockopt(
                    socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO_LEN))[0])  # fmt: skip
            except OSError:
                return 0
        return deepest

    # ---- wire in ---------------------------------------------------------------------

    def received(self, data: bytes, addr: tuple[str, int], name: str) -> None:
        if not data.strip(b"\r\n"):
            return  # RFC 5626 keep-alive
        try:
            msg = parse_message(data)
        except SipError as exc:
            metrics.sip_parse_errors_total.inc()
            self.rejected(data, addr, name, exc)
            return
        self.deliver(msg, addr, name)

    def _register(self, stream: _Stream) -> None:
        assert stream.peer is not None
        key = (stream.name, stream.peer[0], stream.peer[1])
        if len(self._streams) >= self.max_connections and key not in self._streams:
            log.warning("too_many_connections", limit=self.max_connections)
            if stream.transport is not None:
                stream.transport.close()
            return
        self._streams[key] = stream

    def _unregister(self, stream: _Stream) -> None:
        if stream.peer is None:
            return
        key = (stream.name, stream.peer[0], stream.peer[1])
        if self._streams.get(key) is stream:
            del self._streams[key]

    # ---- wire out --------------------------------------------------------------------

    def send(self, data: bytes, addr: tuple[str, int], name: str) -> None:
        if not _is_ip(addr[0]):
            cached = self._dns.get(addr[0])
            if cached is not None and cached[1] > time.monotonic():
                addr = (cached[0], addr[1])
            else:
                asyncio.get_running_loop().create_task(self._resolve_then_send(data, addr, name))
                return
        if name == "UDP":
            if self.udp is not None:
                self.udp.sendto(data, addr)
            return
        stream = self._streams.get((name, addr[0], addr[1]))
        if stream is not None:
            stream.write(data)
            return
        self._connect_then_send(data, addr, name)

    async def _resolve_then_send(self, data: bytes, addr: tuple[str, int], name: str) -> None:
        """A next hop named by host name (A/AAAA only; RFC 3263 NAPTR/SRV is not done)."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                addr[0], addr[1], type=socket.SOCK_DGRAM if name == "UDP" else socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            # The client transaction's timer turns this into a 408 upstream.
            log.info("dns_failed", host=addr[0], error=str(exc))
            return
        ip = infos[0][4][0]
        self._dns[addr[0]] = (ip, time.monotonic() + 60)
        if len(self._dns) > 10_000:
            self._dns.pop(next(iter(self._dns)))
        self.send(data, (ip, addr[1]), name)

    def _connect_then_send(self, data: bytes, addr: tuple[str, int], name: str) -> None:
        key = (name, addr[0], addr[1])
        task = self._pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(addr, name))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))

        def write(t: asyncio.Task) -> None:
            if not t.cancelled() and t.exception() is None:
                t.result().write(data)
            elif self.unreachable is not None and not t.cancelled():
                # Fail what waits on this peer now, not after Timer B's 32 s (§17.1.4).
                self.unreachable(addr, name)

        task.add_done_callback(write)

    async def _connect(self, addr: tuple[str, int], name: str) -> _Stream:
        loop = asyncio.get_running_loop()
        tls = None
        if name == "TLS":
            tls = self.client_tls or ssl.create_default_context()
        try:
            _t, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Stream(self, name, addr), addr[0], addr[1],
                                       ssl=tls, server_hostname=addr[0] if tls else None),
                timeout=5,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.info("connect_failed", peer=f"{addr[0]}:{addr[1]}", transport=name, error=str(exc))
            raise
        return proto

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for server in self._servers:
            server.close()
        for stream in list(self._streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        for udp in self._udp_all:
            udp.close()


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _bound_socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(1024)
    return sock


def tls_server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def tls_client_context(cafile: str | None, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
