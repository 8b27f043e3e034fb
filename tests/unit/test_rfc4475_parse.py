"""RFC 4475 torture messages through parse_message and StreamFramer.

Every row of /work/shared/testdata/rfc4475/MANIFEST.csv is a test: `valid`, `transaction`,
`application` and `backward` messages must parse (with the semantic points of the
manifest's note that are visible at parse level checked below), except the application
tests whose expected 400 is a parse-level matter (insuf, multi01, mcl01); `invalid`
messages must raise SipError with the status the note names (any SipError for the two
responses, which a proxy drops).  Files are read as bytes, never as text.

Rule-free: protocol conformance, no SPEC.md rule.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.sip.headers import SipError, parse_via
from gateway.sip.message import Request, Response, StreamFramer, parse_message

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "rfc4475"
if not (DATA / "MANIFEST.csv").is_file():
    pytest.fail(f"RFC 4475 test data missing: expected {DATA}/MANIFEST.csv", pytrace=False)

with (DATA / "MANIFEST.csv").open(newline="", encoding="utf-8") as manifest:
    ROWS = list(csv.DictReader(manifest))

MUST_PARSE = {"valid", "transaction", "application", "backward"}
# Application tests whose expected answer (400) comes from the parser itself.
PARSE_LEVEL_400 = {"insuf.dat", "multi01.dat", "mcl01.dat"}

# Why each invalid message must be rejected: a word the SipError's reason must contain,
# so that a message refused for the wrong reason does not pass.
REJECT_REASON = {
    "badinv01.dat": "via",
    "clerr.dat": "content-length",
    "ncl.dat": "content-length",
    "scalar02.dat": "cseq",
    "scalarlg.dat": "cseq",
    "quotbal.dat": "name-addr",
    "ltgtruri.dat": "request-uri",
    "lwsruri.dat": "request line",
    "lwsstart.dat": "request line",
    "trws.dat": "request line",
    "escruri.dat": "headers are not allowed",
    "baddate.dat": "date",
    "regbadct.dat": "name-addr",
    "badaspec.dat": "name-addr",
    "baddn.dat": "name-addr",
    "badvers.dat": "version",
    "mismatch01.dat": "cseq method",
    "mismatch02.dat": "cseq method",
    "bigcode.dat": "status",
    "insuf.dat": "missing",
    "multi01.dat": "more than one",
    "mcl01.dat": "content-length",
}


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def snapshot(message: Request | Response) -> tuple:
    start = (
        (message.method, message.uri)
        if isinstance(message, Request)
        else (message.status, message.reason)
    )
    return (type(message).__name__, *start, message.version, list(message.headers), message.body)


def row_id(row: dict[str, str]) -> str:
    return f"{row['file']}-{row['expected']}"


def test_manifest_covers_all_files() -> None:
    assert len(ROWS) == 49
    assert {row["file"] for row in ROWS} == {p.name for p in DATA.glob("*.dat")}
    assert (
        set(REJECT_REASON)
        == {row["file"] for row in ROWS if row["expected"] == "invalid"} | PARSE_LEVEL_400
    )


# --------------------------------------------------------------------------------------------
# Semantic checks of the notes, per file


def _wsinv(m: Request | Response) -> None:
    assert m.method == "INVITE"
    assert m.max_forwards == 68  # "0068"
    assert m.cseq == (9, "INVITE")  # folded "0009\r\n  INVITE"
    assert len(m.headers.get_all("Via")) == 3
    assert m.top_via.transport == "UDP" and m.branch == "390skdjuw"
    assert m.to_tag == "1918181833n"
    assert m.from_tag == "98asjd8"
    assert m.from_addr.display == 'J Rosenberg \\"'
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.headers.get("Subject") == ""
    (contact,) = m.name_addrs("Contact")
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.parsed_uri.params == {"unknownparam": None}
    assert len(m.body) == 150


def _intmeth(m: Request | Response) -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq == (139122385, method)
    assert m.to_addr.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.parsed_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.parsed_uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.from_tag == "_token~1'+`*%!-."
    assert m.from_addr.display == "token1~` token2'+_ token3*%!.-"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def _esc01(m: Request | Response) -> None:
    assert m.parsed_uri.user_unescaped == "sips:user@example.com"
    assert m.parsed_uri.host == "example.net"
    assert m.to_addr.uri.user_unescaped == "user"
    assert m.from_addr.uri.user_unescaped == "I have spaces"
    (contact,) = m.name_addrs("Contact")
    assert contact.uri.user_unescaped == "caller"
    # Kept raw for forwarding; one level of unescaping only (not valueA).
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert m.to_bytes().count(b"v%61lue%25%34%31") == 1


def _escnull(m: Request | Response) -> None:
    assert m.to_addr.uri.user_unescaped == "null-\x00-null"
    first, second = m.name_addrs("Contact")
    assert first.uri.user_unescaped == "\x00"
    assert second.uri.user_unescaped == "\x00\x00"
    assert not first.uri.equivalent(second.uri)


def _esc02(m: Request | Response) -> None:
    assert m.method == "RE%47IST%45R"  # not REGISTER
    assert len(m.name_addrs("Contact")) == 2
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.to_addr.display == "%Z%45"
    assert m.branch == "z9hG4bK209%fzsnel234"


def _lwsdisp(m: Request | Response) -> None:
    assert m.from_addr.display == "caller" and m.from_tag == "323"


def _longreq(m: Request | Response) -> None:
    assert len(m.headers.get_all("Via")) == 34
    assert m.top_via.host == "sip33.example.com"
    assert m.to_addr.uri.port == 6000
    assert len(m.from_tag) > 100
    assert "shortvalue" in m.to_addr.uri.params.values()
    assert m.call_id.startswith("longreq.onereallyreally")
    assert len(m.body) == 150


def _dblreq(m: Request | Response) -> None:
    assert m.method == "REGISTER"
    assert m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # compact "I:"
    assert b"INVITE" not in m.to_bytes()


def _semiuri(m: Request | Response) -> None:
    assert m.parsed_uri.user == "user;par=u%40example.net"
    assert m.parsed_uri.user_unescaped == "user;par=u@example.net"
    assert m.parsed_uri.host == "example.com"
    assert len(m.headers.get_all("Accept")) == 6


def _transports(m: Request | Response) -> None:
    vias = m.headers.get_all("Via")
    assert [parse_via(v).transport for v in vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def _mpart01(m: Request | Response) -> None:
    assert len(m.body) == 553
    assert b"\x00" in m.body
    assert m.headers.get("Content-Type").startswith("multipart/mixed;boundary=")


def _unreason(m: Request | Response) -> None:
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def _noreason(m: Request | Response) -> None:
    assert (m.status, m.reason) == (100, "")
    assert m.to_bytes().startswith(b"SIP/2.0 100 \r\n")


def _badbranch(m: Request | Response) -> None:
    assert m.branch == "z9hG4bK"  # transaction layer: bare magic cookie


def _unknown_scheme(m: Request | Response) -> None:
    with pytest.raises(SipError) as info:
        _ = m.parsed_uri
    assert info.value.status == 416


def _unksm2(m: Request | Response) -> None:
    assert (m.to_addr.uri.scheme, m.to_addr.uri.opaque) == ("isbn", "2983792873")
    assert m.from_addr.uri.scheme == "http"
    assert m.name_addrs("Contact")[0].uri.scheme == "name"


def _bext01(m: Request | Response) -> None:
    assert m.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def _invut(m: Request | Response) -> None:
    assert m.headers.get("Content-Type") == "application/unknownformat"
    assert len(m.body) == 40


def _regaut01(m: Request | Response) -> None:
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def _bcast(m: Request | Response) -> None:
    assert parse_via(m.headers.get_all("Via")[1]).host == "255.255.255.255"


def _zeromf(m: Request | Response) -> None:
    assert m.max_forwards == 0


def _cparam01(m: Request | Response) -> None:
    (contact,) = m.name_addrs("Contact")
    assert contact.params == {"unknownparam": None}
    assert contact.uri.params == {}


def _cparam02(m: Request | Response) -> None:
    (contact,) = m.name_addrs("Contact")
    assert contact.params == {}
    assert contact.uri.params == {"unknownparam": None}


def _regescrt(m: Request | Response) -> None:
    (contact,) = m.name_addrs("Contact")
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert m.headers.get("Route") is None  # never turned into a real header


def _sdp01(m: Request | Response) -> None:
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]


def _inv2543(m: Request | Response) -> None:
    assert m.max_forwards is None
    assert m.from_tag is None and m.branch is None
    assert m.body.startswith(b"v=0") and m.body.endswith(b"RTP/AVP 0\r\n")
    assert m.headers.get("Content-Length") == str(len(m.body))


CHECKS: dict[str, Callable[[Request | Response], None]] = {
    "wsinv.dat": _wsinv,
    "intmeth.dat": _intmeth,
    "esc01.dat": _esc01,
    "escnull.dat": _escnull,
    "esc02.dat": _esc02,
    "lwsdisp.dat": _lwsdisp,
    "longreq.dat": _longreq,
    "dblreq.dat": _dblreq,
    "semiuri.dat": _semiuri,
    "transports.dat": _transports,
    "mpart01.dat": _mpart01,
    "unreason.dat": _unreason,
    "noreason.dat": _noreason,
    "badbranch.dat": _badbranch,
    "unkscm.dat": _unknown_scheme,
    "novelsc.dat": _unknown_scheme,
    "unksm2.dat": _unksm2,
    "bext01.dat": _bext01,
    "invut.dat": _invut,
    "regaut01.dat": _regaut01,
    "bcast.dat": _bcast,
    "zeromf.dat": _zeromf,
    "cparam01.dat": _cparam01,
    "cparam02.dat": _cparam02,
    "regescrt.dat": _regescrt,
    "sdp01.dat": _sdp01,
    "inv2543.dat": _inv2543,
}


def expected_statuses(row: dict[str, str]) -> set[int]:
    return {int(code) for code in re.findall(r"\b([4-6]\d\d)\b", row["expect_note"])}


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_rfc4475_message(row: dict[str, str]) -> None:
    name, expected = row["file"], row["expected"]
    data = load(name)
    if expected in MUST_PARSE and name not in PARSE_LEVEL_400:
        message = parse_message(data)
        # serialize∘parse round-trips
        assert snapshot(parse_message(message.to_bytes())) == snapshot(message)
        check = CHECKS.get(name)
        if check is not None:
            check(message)
        return

    assert expected == "invalid" or name in PARSE_LEVEL_400, row
    with pytest.raises(SipError) as info:
        parse_message(data)
    error = info.value
    assert REJECT_REASON[name] in error.reason.lower(), error.reason
    if data.startswith(b"SIP/"):
        return  # a bad response is dropped whatever the status
    statuses = expected_statuses(row)
    assert statuses, f"no status in the note of {name}: {row['expect_note']!r}"
    assert error.status in statuses
    # The fields could be read, so the request can be answered.
    assert isinstance(error.partial, Request)


def test_expected_statuses_from_notes() -> None:
    by_file = {row["file"]: expected_statuses(row) for row in ROWS}
    assert by_file["badvers.dat"] == {505}
    assert by_file["mismatch02.dat"] == {501, 400}
    assert by_file["ncl.dat"] == {400}


def test_every_check_is_for_a_file_that_parses() -> None:
    parse_rows = {
        row["file"]
        for row in ROWS
        if row["expected"] in MUST_PARSE and row["file"] not in PARSE_LEVEL_400
    }
    assert set(CHECKS) <= parse_rows


# --------------------------------------------------------------------------------------------
# The same files over a stream, in random-sized chunks


def frame(data: bytes, chunks: list[int] | None) -> tuple[list[tuple], object]:
    """Feed `data` to a fresh framer, whole or cut at `chunks` sizes; returns the snapshots
    of the framed messages and the error status (None when no error)."""
    framer = StreamFramer()
    out: list[tuple] = []
    pieces = [data]
    if chunks is not None:
        pieces, pos = [], 0
        for size in chunks:
            pieces.append(data[pos : pos + size])
            pos += size
        pieces.append(data[pos:])
    try:
        for piece in pieces:
            out.extend(snapshot(m) for m in framer.feed(piece))
    except SipError as error:
        # Messages framed before the error in the same feed() come with the error.
        out.extend(snapshot(m) for m in error.messages)
        return out, ("error", error.status)
    return out, None


def has_content_length(data: bytes) -> bool:
    head = data.split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?im)^(content-length|l)[ \t]*:", head) is not None


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_rfc4475_stream_chunks(row: dict[str, str]) -> None:
    name = row["file"]
    data = load(name)
    whole = frame(data, None)
    rng = random.Random(name)
    for _ in range(25):
        chunks = [rng.randint(1, 40) for _ in range(len(data) // 10)]
        assert frame(data, chunks) == whole
    assert frame(data, [1] * len(data)) == whole

    messages, error = whole
    try:
        datagram = parse_message(data)
    except SipError:
        # Rejected as a datagram: on a stream it is rejected too, or the framer is still
        # waiting for the rest (clerr: the body is announced longer than what came;
        # baddn: no empty line yet).  Either way nothing is delivered.
        assert messages == [], messages
        return
    if has_content_length(data):
        # Framed by Content-Length, the stream's first message is the datagram's.
        assert messages[:1] == [snapshot(datagram)]
    else:
        # inv2543: no Content-Length, so on a stream the body is empty, and the SDP that
        # follows, having no empty line, is an unfinished next message.
        assert name == "inv2543.dat"
        assert len(messages) == 1 and messages[0][-1] == b"" and error is None
