"""Property tests of the SIP message layer (hypothesis).

- generated valid requests and responses (random methods, header names in long, compact
  and odd-case spellings, values with quotes, escapes, non-UTF-8 octets and folding,
  bodies of arbitrary octets) parse to what was generated, and serialize∘parse
  round-trips;
- arbitrary octets, and mutations of the RFC 4475 messages, raise nothing but SipError
  (from parse_message and StreamFramer.feed), and whatever of them parses round-trips;
- StreamFramer gives the same messages however the stream is cut.

Each property is bounded (max_examples) so the suite stays fast.
Rule-free: protocol robustness, no SPEC.md rule.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.headers import SipError, quote_display
from gateway.sip.message import Request, Response, StreamFramer, canonical_name, parse_message

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "rfc4475"
if not DATA.is_dir():
    pytest.fail(f"RFC 4475 test data missing: expected {DATA}", pytrace=False)
CORPUS = sorted(DATA.glob("*.dat"))

BOUNDED = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
ALNUM = string.ascii_letters + string.digits
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
words = st.text(ALNUM, min_size=1, max_size=10)
METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
           "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"]  # fmt: skip
methods = st.sampled_from(METHODS) | tokens
hosts = st.one_of(
    st.builds(".".join, st.lists(words, min_size=1, max_size=3)),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
    st.just("[2001:db8::1]"),
)


def spellings(name: str, compact: str | None = None) -> st.SearchStrategy[str]:
    options = [st.just(name), st.just(name.lower()), st.just(name.upper())]
    if compact:
        options += [st.just(compact), st.just(compact.upper())]
    return st.one_of(options)


# Header values: any octets but CR/LF, without white space at either end (the parser
# strips it); decoded the way the parser does, so non-UTF-8 octets are included.
raw_values = st.binary(max_size=30).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
)
quoted_texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=15
)


@st.composite
def folded(draw: st.DrawFn, value: bytes) -> tuple[bytes, bytes]:
    """(wire form with an optional fold, value the parser must see)."""
    if len(value) < 2 or not draw(st.booleans()):
        return value, value
    cut = draw(st.integers(1, len(value) - 1))
    left, right = value[:cut], value[cut:]
    wire = left + b"\r\n" + draw(st.sampled_from([b" ", b"\t", b"   ", b" \t"])) + right
    expected = (left.rstrip(b" \t") + b" " + right.lstrip(b" \t")).strip(b" \t")
    return wire, expected


@st.composite
def name_addr(draw: st.DrawFn, tag: bool) -> str:
    uri = f"sip:{draw(words)}@{draw(hosts)}"
    params = f";tag={draw(tokens)}" if tag else ""
    form = draw(st.sampled_from(["spec", "bare", "token", "quoted"]))
    if form == "spec":
        return uri + params
    display = ""
    if form == "token":
        display = " ".join(draw(st.lists(tokens, min_size=1, max_size=3))) + draw(
            st.sampled_from(["", " "])
        )
    elif form == "quoted":
        display = quote_display(draw(quoted_texts)) + " "
    return f"{display}<{uri}>{params}"


@st.composite
def messages(draw: st.DrawFn, with_length: bool | None = None) -> tuple[bytes, dict]:
    """A valid message as bytes, and what parsing must yield."""
    is_request = draw(st.booleans())
    method = draw(methods)
    if is_request:
        uri = f"sip:{draw(words)}@{draw(hosts)}" + draw(st.sampled_from(["", ";lr", ";user=phone"]))
        start = f"{method} {uri} SIP/2.0"
    else:
        status = draw(st.integers(100, 699))
        reason = draw(
            st.text(
                st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
            )
        )
        start = f"SIP/2.0 {status} {reason}"

    fields: list[tuple[str, str, bytes, bytes]] = []  # (spelled, canonical, wire, expected)

    def add(spelled: str, value: str) -> None:
        data = value.encode()
        fields.append((spelled, canonical_name(spelled), data, data))

    branch = "z9hG4bK" + draw(tokens)
    via = f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS', 'SCTP']))} {draw(hosts)}"
    via += draw(st.sampled_from(["", ":5060", ":5061"])) + f";branch={branch}"
    via += draw(st.sampled_from(["", ";rport", ";rport=1234;received=192.0.2.1"]))
    add(draw(spellings("Via", "v")), via)
    add(draw(spellings("From", "f")), draw(name_addr(tag=True)))
    add(draw(spellings("To", "t")), draw(name_addr(tag=draw(st.booleans()))))
    add(draw(spellings("Call-ID", "i")), draw(words) + "@" + draw(hosts))
    cseq = draw(st.integers(0, 2**32 - 1))
    add(draw(spellings("CSeq")), f"{cseq} {method}")
    if draw(st.booleans()):
        add(draw(spellings("Max-Forwards")), str(draw(st.integers(0, 255))))

    extra_names = st.one_of(
        st.sampled_from(
            ["Subject", "s", "User-Agent", "Allow", "Supported", "k", "Accept", "Route",
             "Record-Route", "P-Asserted-Identity", "Server", "Organization"]
        ),
        tokens.map(lambda t: "X-" + t),
    )  # fmt: skip
    for _ in range(draw(st.integers(0, 6))):
        spelled = draw(extra_names)
        wire, expected = draw(folded(draw(raw_values)))
        fields.append((spelled, canonical_name(spelled), wire, expected))
    fields = draw(st.permutations(fields))

    body = draw(st.binary(max_size=200))
    if with_length is None:
        with_length = draw(st.booleans())
    spelled_length = draw(spellings("Content-Length", "l"))
    lines = [start.encode()]
    for spelled, _, wire, _ in fields:
        separator = draw(st.sampled_from([b": ", b":", b" : ", b":\t"]))
        lines.append(spelled.encode() + separator + wire)
    if with_length:
        lines.append(spelled_length.encode() + f": {len(body)}".encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    expected_headers = [
        (canonical, value.decode("utf-8", "surrogateescape")) for _, canonical, _, value in fields
    ]
    expected_headers.append(("Content-Length", str(len(body))))
    expected = {
        "start": (method, uri) if is_request else (status, reason),
        "headers": expected_headers,
        "body": body,
    }
    return data, expected


def snapshot(message: Request | Response) -> tuple:
    start = (
        (message.method, message.uri)
        if isinstance(message, Request)
        else (message.status, message.reason)
    )
    return (type(message).__name__, *start, message.version, list(message.headers), message.body)


def round_trips(message: Request | Response) -> None:
    assert snapshot(parse_message(message.to_bytes())) == snapshot(message)


def parse_or_sip_error(data: bytes) -> Request | Response | None:
    try:
        return parse_message(data)
    except SipError:
        return None


def frame_or_sip_error(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for chunk in chunks:
            for message in framer.feed(chunk):
                round_trips(message)
    except SipError:
        pass


def frame(data: bytes, sizes: list[int]) -> tuple[list[tuple], int | None]:
    framer = StreamFramer()
    out: list[tuple] = []
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            out.extend(snapshot(m) for m in framer.feed(data[pos : pos + size]))
            pos += size
    except SipError as error:
        out.extend(snapshot(m) for m in error.messages)
        return out, error.status
    return out, None


# --------------------------------------------------------------------------------------------
# Valid messages


@BOUNDED
@given(messages())
def test_generated_messages_parse_as_generated_and_round_trip(
    generated: tuple[bytes, dict],
) -> None:
    data, expected = generated
    message = parse_message(data)
    if isinstance(message, Request):
        assert (message.method, message.uri) == expected["start"]
    else:
        assert (message.status, message.reason) == expected["start"]
    assert list(message.headers) == expected["headers"]
    assert message.body == expected["body"]
    round_trips(message)
    # The cached structured views agree with a fresh parse of the same text.
    assert message.branch is not None and message.branch.startswith("z9hG4bK")
    assert message.cseq is not None and message.from_tag is not None


# --------------------------------------------------------------------------------------------
# Hostile input


@BOUNDED
@given(st.binary(max_size=2000))
def test_arbitrary_octets_raise_only_sip_error(data: bytes) -> None:
    message = parse_or_sip_error(data)
    if message is not None:
        round_trips(message)
    frame_or_sip_error([data])


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)).read_bytes())
    interesting = st.sampled_from(
        [b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"%",
         b"%00", b"\x00", b"\xff", b"\xc3", b"=", b"@", b"?", b"/", b"[", b"]", b"-1",
         b"4294967296", b"9" * 400, b"\r\n ", b"\r\n\r\n", b"SIP/2.0", b"l: 0\r\n",
         b"Via: ", b"To: ", b"Content-Length: 99999\r\n"]
    )  # fmt: skip
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(interesting | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
        else:
            del data[pos:]
    return bytes(data)


@BOUNDED
@given(mutated_corpus(), st.lists(st.integers(1, 64), max_size=20))
def test_mutated_torture_messages_raise_only_sip_error(data: bytes, sizes: list[int]) -> None:
    message = parse_or_sip_error(data)
    if message is not None:
        round_trips(message)
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    frame_or_sip_error(chunks)


# --------------------------------------------------------------------------------------------
# Stream framing


@BOUNDED
@given(
    st.lists(messages(with_length=True), min_size=1, max_size=4),
    st.lists(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]), min_size=4, max_size=4),
    st.lists(st.integers(1, 200), max_size=40),
)
def test_stream_framing_is_chunking_invariant(
    generated: list[tuple[bytes, dict]], gaps: list[bytes], sizes: list[int]
) -> None:
    stream = b"".join(gap + data for gap, (data, _) in zip(gaps, generated, strict=False))
    expected = [snapshot(parse_message(data)) for data, _ in generated]
    assert frame(stream, []) == (expected, None)
    assert frame(stream, sizes) == (expected, None)


@BOUNDED
@given(mutated_corpus(), st.lists(st.integers(1, 50), max_size=30))
def test_stream_framing_of_hostile_input_is_chunking_invariant(
    data: bytes, sizes: list[int]
) -> None:
    assert frame(data, sizes) == frame(data, [])
