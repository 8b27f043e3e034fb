#!/usr/bin/env python3
"""Fuzz the SIP parser: feed generated and mutated inputs to parse_message and
StreamFramer, and count how each one ended.

Theory of operation: every input comes from a seeded `random.Random`, so a run is
reproducible from (--seed, --count).  Seeds are the RFC 4475 torture messages plus a few
ordinary messages; each input is one of

- a mutation of a seed (1-8 edits: byte flips, inserted separators, CRLFs and folds,
  oversized or negative numbers, deleted/duplicated/swapped ranges, splices of two seeds,
  truncation, case changes);
- a message assembled from a grammar-shaped vocabulary of start lines, header names,
  values and separators, valid or not;
- random octets (uniform, or drawn from the characters SIP uses).

Each input goes to `parse_message`; the outcome is "parsed", "SipError" (by status) or
"other exception" -- the last is a bug, printed with its traceback and saved under
--save-dir.  A parsed message must also round-trip (parse(to_bytes(m)) equal to m), or it
is counted as a round-trip failure.  Every --framer-every-th input is also fed to a
`StreamFramer` in random chunks, with the same three-way count.  The slowest input is
reported, to catch expressions that backtrack badly.

    .venv/bin/python bench/fuzz_parser.py --count 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import platform
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.sip.message import (  # noqa: E402  (the repo root goes on sys.path first)
    Request,
    Response,
    SipError,
    StreamFramer,
    parse_message,
)

CORPUS_DIR = ROOT.parent / "shared" / "testdata" / "rfc4475"

ORDINARY = [
    b"INVITE sip:+17275550100@gw.example.net;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:+18135550199@pbx.example.com>;tag=1928301774\r\n'
    b"To: <sip:+17275550100@gw.example.net;user=phone>\r\n"
    b"Call-ID: a84b4c76e66710@pbx.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+18135550199@198.51.100.10:5060>\r\n"
    b"P-Asserted-Identity: <tel:+18135550199;oli=27>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 31\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKnashds8;received=2001:db8::1;rport=5070\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"To: sip:alice@atlanta.example.com;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'Warning: 399 p1.example.com "a, b"\r\n'
    b"l: 0\r\n\r\n",
    b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKreg\r\n"
    b"f: <sip:u@example.com>;tag=1\r\nt: <sip:u@example.com>\r\ni: reg-1@10.0.0.1\r\n"
    b"CSeq: 2 REGISTER\r\nm: *\r\nExpires: 0\r\n"
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nl: 0\r\n\r\n",
]

INTERESTING = [
    b"\r\n", b"\r", b"\n", b"\r\n\r\n", b"\r\n ", b"\r\n\t", b" ", b"  ", b"\t", b":", b";",
    b",", b"<", b">", b'"', b"\\", b"\\\"", b"%", b"%00", b"%G0", b"\x00", b"\xff", b"\xc3",
    b"\xed\xa0\x80", b"=", b"@", b"?", b"&", b"/", b"[", b"]", b"[::1]", b"*", b"-1", b"0",
    b"00000000000000000000001", b"4294967295", b"4294967296", b"99999", b"65536",
    b"9" * 64, b"9" * 5000, b"SIP/2.0", b"SIP/2.1", b"sip:", b"sips:", b"tel:+1", b"z9hG4bK",
    b"l: 0\r\n", b"Content-Length: 99999\r\n", b"Via: SIP/2.0/UDP h\r\n", b"To: <sip:a@b>\r\n",
    b"CSeq: 1 INVITE\r\n", b";tag=", b";branch=", b";rport", b";received=",
]  # fmt: skip
NAMES = [
    b"Via", b"v", b"VIA", b"From", b"f", b"To", b"t", b"Call-ID", b"i", b"CSeq", b"cseq",
    b"Max-Forwards", b"Content-Length", b"l", b"Contact", b"m", b"Route", b"Record-Route",
    b"Date", b"Warning", b"Retry-After", b"Expires", b"Subject", b"X-Custom", b"C%6Fntact",
    b"Bad Name", b"", b"\xff", b"Via ", b" Via",
]  # fmt: skip
VALUES = [
    b"SIP/2.0/UDP host;branch=z9hG4bK1", b"SIP/2.0/UDP [2001:db8::1]:5060;rport",
    b"SIP  /  2.0 / TCP h ; branch = x", b"<sip:a@b>;tag=1", b'"A \\" B" <sip:a@b>',
    b"A B <sip:a@b>", b"sip:a@b;tag=2", b"<tel:+17275550100;oli=27>", b"isbn:123",
    b'"unterminated <sip:a@b>', b"< sip:a@b >", b"a, b <sip:x@y>", b"1 INVITE",
    b"4294967296 INVITE", b"70", b"256", b"0", b"-5", b"abc", b"x@y", b"*",
    b"Fri, 01 Jan 2010 16:00:00 EST", b"Fri, 01 Jan 2010 16:00:00 GMT", b"399 h \"t\"",
    b"1812 h \"t\"", b"120 (x);duration=5", b"", b";;,;,,", b"sip:a@b?Route=%3Csip:c%3E",
]  # fmt: skip
START_LINES = [
    b"INVITE sip:a@b SIP/2.0", b"OPTIONS sips:a@[::1]:5061;transport=tls SIP/2.0",
    b"ACK tel:+15550100 SIP/2.0", b"FOO soap.beep://h:1 SIP/2.0", b"SIP/2.0 200 OK",
    b"SIP/2.0 100 ", b"SIP/2.0 999 X", b"SIP/2.0 4294967301 X", b"INVITE  sip:a@b SIP/2.0",
    b"INVITE <sip:a@b> SIP/2.0", b"INVITE sip:a@b SIP/7.0", b"INVITE sip:a@b", b"",
]  # fmt: skip
SEPARATORS = [b": ", b":", b" : ", b":\t", b"", b"::", b":\r\n "]
SIP_CHARS = bytes(range(32, 127)) + b"\r\n\r\n\r\n\t\x00\xff"


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    # Mostly one or two edits, so that many inputs still parse and reach the deeper code.
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5, 8))):
        n = len(buf)
        pos = rng.randrange(n + 1)
        op = rng.randrange(11)
        if op == 0 and n:
            buf[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[min(pos, n - 1)] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = rng.choice(INTERESTING)
        elif op == 3:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 4:
            del buf[pos : pos + rng.randint(1, 32)]
        elif op == 5:
            buf[pos:pos] = buf[pos : pos + rng.randint(1, 128)] * rng.randint(1, 4)
        elif op == 6 and n > 2:
            a, b = sorted(rng.sample(range(n), 2))
            buf[a:b] = buf[a:b][::-1]
        elif op == 7:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 8:
            del buf[pos:]
        elif op == 9:
            # Replace a run of digits by something numeric and hostile.
            digits = [i for i in range(n) if 48 <= buf[i] <= 57]
            if digits:
                i = rng.choice(digits)
                j = i
                while j < n and 48 <= buf[j] <= 57:
                    j += 1
                buf[i:j] = rng.choice([b"-1", b"4294967296", b"9" * 30, b"0", b"00", b"65536"])
        else:
            # Flip the case of a stretch, e.g. a header name.
            end = min(n, pos + rng.randint(1, 12))
            buf[pos:end] = bytes(buf[pos:end]).swapcase()
    return bytes(buf)


def assemble(rng: random.Random) -> bytes:
    lines = [rng.choice(START_LINES)]
    for _ in range(rng.randint(0, 12)):
        value = rng.choice(VALUES)
        if rng.random() < 0.2:
            value = mutate(rng, value, [value])
        lines.append(rng.choice(NAMES) + rng.choice(SEPARATORS) + value)
    if rng.random() < 0.1:
        rng.shuffle(lines)
    body = rng.randbytes(rng.randint(0, 64)) if rng.random() < 0.5 else b""
    end = rng.choice([b"\r\n\r\n", b"\r\n\r\n", b"\n\n", b"\r\n", b""])
    return b"\r\n".join(lines) + end + body


def random_octets(rng: random.Random) -> bytes:
    size = rng.randint(0, 512)
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return bytes(rng.choice(SIP_CHARS) for _ in range(size))


def snapshot(message: Request | Response) -> tuple:
    start = (
        (message.method, message.uri)
        if isinstance(message, Request)
        else (message.status, message.reason)
    )
    return (start, message.version, list(message.headers), message.body)


def retime(slowest: list[tuple[float, bytes]]) -> dict[str, int]:
    """A single timing is at the mercy of GC pauses and the scheduler: re-time the
    slowest inputs (median of 21 runs) and report the worst of them."""
    worst = (0.0, b"")
    for _, data in slowest:
        runs = []
        for _ in range(21):
            t0 = time.perf_counter()
            try:
                parse_message(data)
            except SipError:
                pass
            runs.append(time.perf_counter() - t0)
        median = sorted(runs)[10]
        worst = max(worst, (median, data))
    return {"median_microseconds": round(worst[0] * 1e6), "octets": len(worst[1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--framer-every", type=int, default=4, metavar="N",
                        help="also feed every N-th input to a StreamFramer (0: never)")  # fmt: skip
    parser.add_argument("--save-dir", type=Path, default=Path("/tmp/sipcc-fuzz-crashes"))
    parser.add_argument("--progress", type=int, default=100_000, metavar="N")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON too")
    args = parser.parse_args()

    if not CORPUS_DIR.is_dir():
        print(f"RFC 4475 corpus missing: {CORPUS_DIR}", file=sys.stderr)
        return 2
    seeds = [p.read_bytes() for p in sorted(CORPUS_DIR.glob("*.dat"))] + ORDINARY
    rng = random.Random(args.seed)

    kinds: collections.Counter[str] = collections.Counter()
    parse_outcome: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    framer_outcome: collections.Counter[str] = collections.Counter()
    framed_messages = 0
    other: collections.Counter[str] = collections.Counter()
    roundtrip_failures = 0
    slowest: list[tuple[float, bytes]] = []  # a few of the slowest, re-timed at the end
    started = time.perf_counter()

    def report_bug(where: str, data: bytes, error: BaseException | None) -> None:
        key = f"{where}: {type(error).__name__ if error else 'round-trip mismatch'}"
        other[key] += 1
        if other[key] <= 3:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            path = args.save_dir / f"{hashlib.sha1(data).hexdigest()[:16]}.bin"
            path.write_bytes(data)
            print(f"!! {key} on {path}", file=sys.stderr)
            if error is not None:
                traceback.print_exception(error, file=sys.stderr)

    for index in range(args.count):
        pick = rng.random()
        if pick < 0.6:
            kind, data = "mutated", mutate(rng, rng.choice(seeds), seeds)
        elif pick < 0.85:
            kind, data = "assembled", assemble(rng)
        else:
            kind, data = "random", random_octets(rng)
        kinds[kind] += 1

        t0 = time.perf_counter()
        try:
            message = parse_message(data)
        except SipError as error:
            parse_outcome["SipError"] += 1
            statuses[error.status] += 1
        except Exception as error:  # the bug this script exists to find
            parse_outcome["other exception"] += 1
            report_bug("parse_message", data, error)
        else:
            parse_outcome["parsed"] += 1
            try:
                if snapshot(parse_message(message.to_bytes())) != snapshot(message):
                    roundtrip_failures += 1
                    report_bug("round-trip", data, None)
            except Exception as error:
                roundtrip_failures += 1
                report_bug("round-trip", data, error)
        elapsed = time.perf_counter() - t0
        if len(slowest) < 5 or elapsed > slowest[0][0]:
            slowest.append((elapsed, data))
            slowest.sort(key=lambda pair: pair[0])
            del slowest[:-5]

        if args.framer_every and index % args.framer_every == 0:
            framer = StreamFramer()
            pos = 0
            try:
                while pos < len(data):
                    step = rng.randint(1, 200)
                    framed_messages += len(framer.feed(data[pos : pos + step]))
                    pos += step
            except SipError:
                framer_outcome["SipError"] += 1
            except Exception as error:
                framer_outcome["other exception"] += 1
                report_bug("StreamFramer.feed", data, error)
            else:
                framer_outcome["no error"] += 1

        if args.progress and (index + 1) % args.progress == 0:
            rate = (index + 1) / (time.perf_counter() - started)
            print(f"  {index + 1:>9,} inputs  {rate:,.0f}/s  {dict(parse_outcome)}", flush=True)

    seconds = time.perf_counter() - started
    summary = {
        "count": args.count,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "python": platform.python_version(),
        "inputs": dict(kinds),
        "parse_message": {
            "parsed": parse_outcome["parsed"],
            "SipError": parse_outcome["SipError"],
            "other exception": parse_outcome["other exception"],
        },
        "SipError statuses": dict(sorted(statuses.items())),
        "round-trip failures": roundtrip_failures,
        "StreamFramer": {
            "fed": sum(framer_outcome.values()),
            "no error": framer_outcome["no error"],
            "SipError": framer_outcome["SipError"],
            "other exception": framer_outcome["other exception"],
            "messages framed": framed_messages,
        },
        "other exceptions by kind": dict(other),
        "slowest input": retime(slowest),
    }
    print(f"fuzzed {args.count:,} inputs in {seconds:.1f} s (seed {args.seed})")
    for key, value in summary.items():
        if key not in ("count", "seed", "seconds"):
            print(f"  {key}: {value}")
    if args.json:
        print(json.dumps(summary))
    bugs = parse_outcome["other exception"] + framer_outcome["other exception"]
    return 1 if bugs or roundtrip_failures else 0


if __name__ == "__main__":
    sys.exit(main())
