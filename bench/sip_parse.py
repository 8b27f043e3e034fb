"""Micro-benchmarks of the SIP message layer (gateway/sip/message.py, headers.py).

Prints microseconds per operation (best of several timeit repeats) for parsing the
messages of a typical call (a ~650-octet INVITE with SDP, 180 and 200 from the far end,
ACK, BYE), serializing, the cached views the transaction layer and proxy read, the
Headers operations a proxy does when it forwards, the structured header parsers and
build_response.  ``sum/call`` adds up one call's share of that work (7 messages parsed,
their views read, 7 serialized), a rough stand-in for the edge's SIP-layer cost per call.

    .venv/bin/python bench/sip_parse.py [--repeat 7] [--number 0] [--only PATTERN] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.sip.headers import parse_name_addr, parse_uri, parse_via
from gateway.sip.message import build_response, parse_message

SDP = (
    b"v=0\r\no=- 3875213514 3875213514 IN IP4 198.51.100.10\r\ns=-\r\n"
    b"c=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def _msg(lines: list[str], body: bytes = b"") -> bytes:
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body


INVITE = _msg(
    [
        "INVITE sip:+12125551234@203.0.113.1:5060;user=phone SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a6f3c1d9e0b2;rport",
        "Max-Forwards: 70",
        'From: "Alice PBX" <sip:+17275551000@198.51.100.10:5060>;tag=9fc4a2e1',
        "To: <sip:+12125551234@203.0.113.1:5060;user=phone>",
        "Call-ID: 4f8c2e1a9b7d3c5e@198.51.100.10",
        "CSeq: 1 INVITE",
        "Contact: <sip:+17275551000@198.51.100.10:5060;transport=udp>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE",
        "Supported: replaces, timer, 100rel",
        "Content-Type: application/sdp",
    ],
    SDP,
)
assert 500 <= len(INVITE) <= 700, len(INVITE)

_RESP_HEAD = [
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsipcc.7d3c5e1a9b;rport=5060",
    "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a6f3c1d9e0b2;rport=5060;received=198.51.100.10",
    "Record-Route: <sip:203.0.113.1:5060;lr>",
    'From: "Alice PBX" <sip:+17275551000@198.51.100.10:5060>;tag=9fc4a2e1',
    "To: <sip:+12125551234@203.0.113.1:5060;user=phone>;tag=c4rr13r-88",
    "Call-ID: 4f8c2e1a9b7d3c5e@198.51.100.10",
    "CSeq: 1 INVITE",
    "Contact: <sip:192.0.2.50:5060>",
]
RINGING = _msg(["SIP/2.0 180 Ringing", *_RESP_HEAD])
OK = _msg(["SIP/2.0 200 OK", *_RESP_HEAD, "Content-Type: application/sdp"], SDP)


def _in_dialog(method: str, cseq: int) -> bytes:
    return _msg(
        [
            f"{method} sip:192.0.2.50:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---{method.lower()}77;rport",
            "Route: <sip:203.0.113.1:5060;lr>",
            "Max-Forwards: 70",
            'From: "Alice PBX" <sip:+17275551000@198.51.100.10:5060>;tag=9fc4a2e1',
            "To: <sip:+12125551234@203.0.113.1:5060;user=phone>;tag=c4rr13r-88",
            "Call-ID: 4f8c2e1a9b7d3c5e@198.51.100.10",
            f"CSeq: {cseq} {method}",
        ]
    )


ACK = _in_dialog("ACK", 1)
BYE = _in_dialog("BYE", 2)
MESSAGES = {"INVITE": INVITE, "180": RINGING, "200": OK, "ACK": ACK, "BYE": BYE}


def _views(msg) -> tuple:
    return msg.call_id, msg.cseq, msg.branch, msg.from_tag, msg.to_tag, msg.top_via


def _forward(msg) -> None:
    # What a proxy does to a request it forwards (RFC 3261 §16.6).
    headers = msg.headers.copy()
    mf = headers.get("Max-Forwards")
    headers.set("Max-Forwards", str(int(mf) - 1))
    headers.insert("Record-Route", "<sip:203.0.113.1:5060;lr>")
    headers.insert("Via", "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsipcc.7d3c5e1a9b;rport")
    headers.get_all("Route")
    headers.get_all("Via")


def _strip_via(data: bytes) -> bytes:
    # What a proxy does to a response it relays (§16.7): pop its own Via.
    msg = parse_message(data)
    assert msg.top_via is not None
    msg.headers.pop_first("Via")
    assert msg.headers.get("Via")
    return msg.to_bytes()


def cases() -> dict[str, object]:
    parsed = {name: parse_message(data) for name, data in MESSAGES.items()}
    invite = parsed["INVITE"]
    headers = invite.headers
    via = "SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a6f3c1d9e0b2;rport"
    name_addr = '"Alice PBX" <sip:+17275551000@198.51.100.10:5060>;tag=9fc4a2e1'
    uri = "sip:+12125551234@203.0.113.1:5060;user=phone"
    table: dict[str, object] = {}
    for name, data in MESSAGES.items():
        table[f"parse {name}"] = lambda data=data: parse_message(data)
    for name, data in MESSAGES.items():
        table[f"parse+views {name}"] = lambda data=data: _views(parse_message(data))
    for name, msg in parsed.items():
        table[f"to_bytes {name}"] = msg.to_bytes
    table["to_bytes fresh INVITE"] = lambda: parse_message(INVITE).to_bytes()
    table["views (cached)"] = lambda: _views(invite)
    table["Headers.copy"] = headers.copy
    table["Headers.get CSeq"] = lambda: headers.get("CSeq")
    table["Headers.get_all Via"] = lambda: headers.get_all("Via")
    table["Headers.get_all Allow"] = lambda: headers.get_all("Allow")
    table["forward (copy,get,set,insert x2,get_all x2)"] = lambda: _forward(invite)
    table["relay 180 (parse,top_via,pop_first,to_bytes)"] = lambda: _strip_via(RINGING)
    table["parse_via"] = lambda: parse_via(via)
    table["parse_name_addr"] = lambda: parse_name_addr(name_addr)
    table["parse_uri"] = lambda: parse_uri(uri)
    table["build_response 180"] = lambda: build_response(invite, 180, to_tag="abc123")
    table["build_response+to_bytes 100"] = lambda: build_response(invite, 100).to_bytes()
    return table


def measure(func, repeat: int, number: int) -> float:
    # CPU time of this process, not wall time: the figures hold on a shared machine.
    timer = timeit.Timer(func, timer=time.process_time)
    if number <= 0:
        number, _ = timer.autorange()
        number = max(number, 1000)
    return min(timer.repeat(repeat, number)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=0, help="calls per repeat (0: auto)")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    results: dict[str, float] = {}
    for name, func in cases().items():
        if a.only and a.only not in name:
            continue
        results[name] = us = measure(func, a.repeat, a.number)
        print(f"{name:48s} {us:8.2f} us")
    if not a.only:
        # One call at the edge: INVITE, 180, 200, ACK, BYE in, 100/200 for the BYE leg
        # counted as two more responses; each parsed with its views read and serialized.
        per_call = (
            results["parse+views INVITE"] + results["parse+views 180"]
            + 2 * results["parse+views 200"] + results["parse+views ACK"]
            + results["parse+views BYE"] + results["parse+views 180"]
            + results["to_bytes INVITE"] + 3 * results["to_bytes 200"] + results["to_bytes 180"]
            + results["to_bytes ACK"] + results["to_bytes BYE"]
        )  # fmt: skip
        results["sum/call"] = per_call
        print(f"{'sum/call (7 parse+views, 7 to_bytes)':48s} {per_call:8.2f} us")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
