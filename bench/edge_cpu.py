"""CPU per call of the edge's whole SIP path, in one process, without sockets or SIPp.

A synthetic PBX and carrier exchange the messages of a complete call (INVITE, 100, 180,
200, ACK, BYE, 200) with a real `Edge`: parsing, transactions, proxy rules, routing and
rating, trunk slots and the CDR event. The wire is a list in memory, so what is measured
is the edge's own work per call. Trunk slots and CDR events go to the real Redis with
--redis (the production path), else to in-process stand-ins.

    .venv/bin/python bench/edge_cpu.py --calls 5000 [--concurrency 20] [--redis] [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ipaddress
import time
import uuid
from decimal import Decimal

from gateway.dialogs import DialogStore
from gateway.edge import Edge
from gateway.proxy import Local
from gateway.routing import Router
from gateway.sip.message import Request, parse_message
from rater.admission import LocalSlots, RedisSlots
from services.cdr import CdrPublisher
from services.inventory import Carrier, Customer, Inventory, Number, RatePlan, TrunkGroup
from services.redisconn import connect

PBX, CARRIER = ("127.0.0.2", 5062), ("127.0.0.3", 5060)
SDP = b"v=0\r\no=u 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"


class Wire:
    """What the edge sent, by (destination, Call-ID), so concurrent calls don't mix."""

    def __init__(self) -> None:
        self.out: dict[tuple, list[bytes]] = {}

    def send(self, data: bytes, addr, transport: str) -> None:
        start = data.find(b"Call-ID: ") + 9
        call_id = data[start : data.find(b"\r\n", start)]
        self.out.setdefault((addr, call_id), []).append(data)

    def take(self, addr, call_id: bytes) -> list[bytes]:
        return self.out.pop((addr, call_id), [])

    def close(self) -> None:
        pass


def inventory() -> Inventory:
    inv = Inventory()
    inv.carriers["c"] = Carrier("c", "carrier", "sip:127.0.0.3:5060")
    inv.rate_plans["p"] = RatePlan("p", "plan", "USD", Decimal("0.012"), Decimal("0.018"),
                                   Decimal("0.005"), Decimal("0.30"))  # fmt: skip
    inv.customers["load"] = Customer("load", "Load", "active", "p", None)
    inv.trunk_groups["tg"] = TrunkGroup("tg", "load", 100_000, (ipaddress.ip_network("127.0.0.2/32"),),
                                        ("pai", "rpid", "from"), "c")  # fmt: skip
    inv.numbers["+17275551000"] = Number("+17275551000", "load", "tg", "assigned")
    return inv.index()


def invite(i: int) -> bytes:
    return (
        f"INVITE sip:+12125551234@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK-{i}-0\r\n"
        f'From: "PBX" <sip:+17275551000@127.0.0.2:5062>;tag=pbx{i}\r\n'
        f"To: <sip:+12125551234@127.0.0.1:5060>\r\nCall-ID: call-{i}@127.0.0.2\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:+17275551000@127.0.0.2:5062>\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP


def answer(fwd: Request, status: int, reason: str, tag: str, body: bytes = b"") -> bytes:
    h = fwd.headers
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {v}" for v in h.get_all("Via")]
    lines += [f"Record-Route: {r}" for r in h.get_all("Record-Route")]
    to = h.get("To") + (f";tag={tag}" if status > 100 else "")
    lines += [f"From: {h.get('From')}", f"To: {to}", f"Call-ID: {h.get('Call-ID')}",
              f"CSeq: {h.get('CSeq')}", "Contact: <sip:127.0.0.3:5060>",
              f"Content-Length: {len(body)}", "", ""]  # fmt: skip
    return "\r\n".join(lines).encode() + body


def in_dialog(method: str, i: int, cseq: int, callee_tag: str, route: str) -> bytes:
    return (
        f"{method} sip:127.0.0.3:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK-{i}-{method}\r\nRoute: {route}\r\n"
        f'From: "PBX" <sip:+17275551000@127.0.0.2:5062>;tag=pbx{i}\r\n'
        f"To: <sip:+12125551234@127.0.0.1:5060>;tag={callee_tag}\r\nCall-ID: call-{i}@127.0.0.2\r\n"
        f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def settle(wire: Wire, addr, want: int, call_id: bytes) -> list[bytes]:
    got: list[bytes] = []
    for n in range(20000):
        got += wire.take(addr, call_id)
        if len(got) >= want:
            return got
        await asyncio.sleep(0 if n < 20 else 0.0002)  # Redis answers take a real round trip
    raise RuntimeError(f"expected {want} messages to {addr}, got {len(got)}")


async def one_call(edge: Edge, wire: Wire, i: int) -> None:
    feed = edge.on_message
    cid = f"call-{i}@127.0.0.2".encode()
    feed(parse_message(invite(i)), PBX, "UDP")
    fwd = parse_message((await settle(wire, CARRIER, 1, cid))[0])
    tag = f"uas{i}"
    for status, reason, body in ((100, "Trying", b""), (180, "Ringing", b""), (200, "OK", SDP)):
        feed(parse_message(answer(fwd, status, reason, tag, body)), CARRIER, "UDP")
    await settle(wire, PBX, 3, cid)  # 100 (ours), 180, 200
    route = fwd.headers.get_all("Record-Route")[0]
    feed(parse_message(in_dialog("ACK", i, 1, tag, route)), PBX, "UDP")
    feed(parse_message(in_dialog("BYE", i, 2, tag, route)), PBX, "UDP")
    bye = [parse_message(m) for m in await settle(wire, CARRIER, 2, cid)][-1]
    feed(parse_message(answer(bye, 200, "OK", tag)), CARRIER, "UDP")
    await settle(wire, PBX, 1, cid)


async def main(calls: int, use_redis: bool, profile: str | None, concurrency: int) -> None:
    inv = inventory()
    events: list = []
    if use_redis:
        client = connect("redis://127.0.0.1:6379/0")
        prefix = f"bench-{uuid.uuid4().hex[:6]}:"
        slots = RedisSlots(client, prefix, 120)
        publish = CdrPublisher(client, prefix + "cdr").publish
        dialogs = DialogStore(client, prefix, "bench", 3600)
    else:
        slots = LocalSlots(120)
        dialogs = None

        async def publish(event) -> None:
            events.append(event)

    edge = Edge(Router(lambda: inv, slots), Local("127.0.0.1", 5060), publish, dialogs=dialogs)
    edge._loop = asyncio.get_running_loop()
    wire = Wire()
    edge.transports = wire  # type: ignore[assignment]
    for i in range(200):  # warm caches
        await one_call(edge, wire, -i - 1)
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    for start in range(0, calls, concurrency):
        await asyncio.gather(*(one_call(edge, wire, i)
                               for i in range(start, min(calls, start + concurrency))))  # fmt: skip
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await asyncio.sleep(0.05)
    print(f"calls={calls} concurrency={concurrency} redis={use_redis} wall={wall:.2f}s cpu={cpu:.2f}s "
          f"cpu/call={cpu / calls * 1e6:.0f}us calls/s(one core)={calls / cpu:.0f}")  # fmt: skip
    if use_redis:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--profile")
    ap.add_argument("--concurrency", type=int, default=1, help="calls set up at once")
    a = ap.parse_args()
    import uvloop

    uvloop.run(main(a.calls, a.redis, a.profile, a.concurrency))
