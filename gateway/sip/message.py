"""SIP messages: the parser, the serializer and stream framing (RFC 3261 §7, §18.3).

Theory of operation
-------------------
Sans-I/O: bytes in, `Request`/`Response` objects out, and back with ``to_bytes()``.

`parse_message` does the least work that still rejects what RFC 4475 says must be
rejected.  It finds the end of the header block with ``bytes.find``, decodes it once as
UTF-8 with ``surrogateescape`` (any octet survives a parse/serialize round trip), splits
lines, unfolds continuation lines only when the block has any, and maps each field name
to its canonical long form through one dict lookup (compact forms and any spelling of a
known name included).  Values stay raw text.

It then validates what RFC 4475 says a parser must catch, as cheaply as that can be
done: the start line, and the fields a proxy reads on every message anyway -- Via (the
top one), From, To, Call-ID, CSeq, Max-Forwards, Content-Length -- plus the rarer fields
the torture tests abuse (Contact, Date, Warning, Retry-After).  Most of these checks are
one compiled-expression ``fullmatch`` that builds no objects (`check_name_addr`,
`check_via`, `check_uri`); single-valued fields are counted in the same loop that names
them.  Structured views -- ``msg.top_via``, ``msg.from_tag``, ``msg.parsed_uri``,
``msg.name_addrs("Route")`` -- are built on first use and cached on the message, keyed by
the raw value, so a second call is a dict lookup and a rewritten header is simply a new
key (the cache can never go stale).  Every other field is parsed only by whoever needs
it, with the functions of `gateway.sip.headers`.

Framing is by Content-Length.  On UDP a missing Content-Length means "the rest of the
datagram" and octets beyond it are ignored (dblreq.dat); on a stream it means 0.  A parsed
message always carries exactly one Content-Length field equal to ``len(body)``, at the
position of the first one received (appended when there was none), because ``to_bytes``
writes that field from the body: with that, ``parse(to_bytes(parse(x)))`` equals
``parse(x)``.

Errors are `SipError` only, whatever the octets; ``status`` says how to answer.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TypeVar

from gateway.sip.headers import (
    FAST_NAME_ADDR,
    FAST_REQUEST_URI,
    FAST_VIA,
    MAX_UINT32,
    NameAddr,
    SipError,
    Uri,
    Via,
    check_request_uri,
    from_match,
    is_token,
    match_via,
    name_addr_params,
    name_addr_params_text,
    params_tag,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    small_int,
    split_list,
    via_from_parts,
)

__all__ = [
    "Headers",
    "Request",
    "Response",
    "SipError",
    "StreamFramer",
    "build_response",
    "canonical_name",
    "parse_message",
    "reason_phrase",
]

_T = TypeVar("_T")
_Match = re.Match
_ITEM0 = itemgetter(0)
_NAME_VALUE = itemgetter(1, 2)
_SEPARATORS = [": "] * 64
_CRLFS = ["\r\n"] * 64

# --------------------------------------------------------------------------------------------
# Header names

_CANONICAL_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language",
    "Accept-Resource-Priority", "Alert-Info", "Allow", "Allow-Events", "Answer-Mode",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-ID", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Diversion", "Error-Info", "Event",
    "Expires", "Feature-Caps", "Flow-Timer", "From", "Geolocation", "Geolocation-Error",
    "Geolocation-Routing", "History-Info", "Identity", "Identity-Info", "In-Reply-To",
    "Info-Package", "Join", "Max-Breadth", "Max-Forwards", "MIME-Version", "Min-Expires",
    "Min-SE", "Organization", "P-Access-Network-Info", "P-Asserted-Identity",
    "P-Asserted-Service", "P-Associated-URI", "P-Called-Party-ID",
    "P-Charging-Function-Addresses", "P-Charging-Vector", "P-Early-Media",
    "P-Preferred-Identity", "P-Preferred-Service", "P-Visited-Network-ID", "Path",
    "Permission-Missing", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Recv-Info", "Refer-Sub", "Refer-To",
    "Referred-By", "Reject-Contact", "Remote-Party-ID", "Replaces", "Reply-To",
    "Request-Disposition", "Require", "Resource-Priority", "Retry-After", "Route", "RSeq",
    "Security-Client", "Security-Server", "Security-Verify", "Server", "Service-Route",
    "Session-Expires", "Session-ID", "SIP-ETag", "SIP-If-Match", "Subject",
    "Subscription-State", "Supported", "Suppress-If-Match", "Target-Dialog", "Timestamp", "To",
    "Trigger-Consent", "Unsupported", "User-Agent", "User-to-User", "Via", "Warning",
    "WWW-Authenticate",
)  # fmt: skip

# RFC 3261 §7.3.3 and the IANA registry's compact forms.
_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}  # fmt: skip

# Header fields whose value is a comma-separated list (RFC 3261 §7.3.1), so that get_all
# and pop_first split them.  Not the authentication headers: their commas separate
# auth-params of one value.
_LIST_KEYS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language",
        "Accept-Resource-Priority", "Alert-Info", "Allow", "Allow-Events", "Call-Info",
        "Contact", "Content-Encoding", "Content-Language", "Diversion", "Error-Info",
        "Geolocation", "History-Info", "In-Reply-To", "P-Asserted-Identity",
        "P-Associated-URI", "P-Preferred-Identity", "Path", "Permission-Missing",
        "Proxy-Require", "Reason", "Record-Route", "Recv-Info", "Reject-Contact",
        "Remote-Party-ID", "Require", "Resource-Priority", "Route", "Security-Client",
        "Security-Server", "Security-Verify", "Service-Route", "Supported",
        "Trigger-Consent", "Unsupported", "Via", "Warning",
    )
)  # fmt: skip

# canonical name -> (key, canonical name); the key is the lower-cased canonical name,
# interned, and one object per field name, so that the key lists of `Headers` compare by
# identity first.
_INFO: dict[str, tuple[str, str]] = {n: (sys.intern(n.lower()), n) for n in _CANONICAL_NAMES}
# lower-case spelling -> (key, canonical name)
_BY_LOWER: dict[str, tuple[str, str]] = {info[0]: info for info in _INFO.values()}
_BY_LOWER.update({c: _INFO[n] for c, n in _COMPACT.items()})
# The spellings seen on the wire almost always, so the parser skips ``.lower()``.
_BY_EXACT: dict[str, tuple[str, str]] = dict(_BY_LOWER)
_BY_EXACT.update(_INFO)
_BY_EXACT.update({c.upper(): _INFO[n] for c, n in _COMPACT.items()})
# The same spellings -> key, for lookups by callers (``headers.get("Call-ID")``).
_KEYS: dict[str, str] = {name: info[0] for name, info in _BY_EXACT.items()}
assert all(is_token(n) for n in _CANONICAL_NAMES)  # `Headers._checked` relies on it
_CONTENT_LENGTH = _KEYS["Content-Length"]


def _name_info(name: str) -> tuple[str, str]:
    """(lookup key, name to store) for a field name given by a caller or the wire."""
    info = _BY_EXACT.get(name)
    if info is not None:
        return info
    lower = name.lower()
    info = _BY_LOWER.get(lower)
    if info is not None:
        return info
    return lower, name


def _key(name: str) -> str:
    key = _KEYS.get(name)
    return key if key is not None else _name_info(name)[0]


def canonical_name(name: str) -> str:
    """The long form of a known header name in its usual spelling ("v" -> "Via",
    "call-id" -> "Call-ID"); unknown names are returned unchanged."""
    return _name_info(name)[1]


# --------------------------------------------------------------------------------------------
# Headers


class Headers:
    """Ordered, multi-valued header fields.

    Held as three parallel lists -- `_keys` (the lower-cased canonical name, used for
    every lookup), `_names` (what ``to_bytes`` writes: the canonical long form for known
    fields, the received spelling for unknown ones) and `_values` (the raw unfolded
    text) -- rather than one tuple per field: finding a field is one ``list.index`` or
    ``list.count`` (C, identity compares for known names, whose keys are interned), and a
    parsed message keeps three lists alive instead of a tuple per field, which the cyclic
    garbage collector would otherwise count and walk.  Every method keeps the lists
    aligned.
    """

    __slots__ = ("_keys", "_names", "_values")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: list[str] = []
        self._names: list[str] = []
        self._values: list[str] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_lists(cls, keys: list[str], names: list[str], values: list[str]) -> Headers:
        headers = cls.__new__(cls)
        headers._keys = keys
        headers._names = names
        headers._values = values
        return headers

    def _assign(self, triples: list[tuple[str, str, str]]) -> None:
        self._keys = [t[0] for t in triples]
        self._names = [t[1] for t in triples]
        self._values = [t[2] for t in triples]

    def _triples(self) -> list[tuple[str, str, str]]:
        return list(zip(self._keys, self._names, self._values, strict=True))

    @staticmethod
    def _checked(name: str, value: str) -> tuple[str, str, str]:
        info = _BY_EXACT.get(name)
        if info is None:
            key, stored = _name_info(name)
            if not is_token(stored):
                raise ValueError(f"bad header name: {name!r}")
        else:
            key, stored = info  # canonical names are tokens
        if "\r" in value or "\n" in value:
            raise ValueError(f"header value may not contain CR or LF: {value[:80]!r}")
        return key, stored, value.strip(" \t")

    def get(self, name: str) -> str | None:
        """The first field's value (the whole field, commas included)."""
        key = _KEYS.get(name)
        if key is None:
            key = _name_info(name)[0]
        keys = self._keys
        if key in keys:
            return self._values[keys.index(key)]
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of every field of that name; list headers are split at commas
        outside quotes and ``<...>``, empty elements dropped."""
        key = _KEYS.get(name)
        if key is None:
            key = _name_info(name)[0]
        keys = self._keys
        count = keys.count(key)
        if count == 1:
            value = self._values[keys.index(key)]
            if key not in _LIST_KEYS:
                return [value]
            if "," not in value:
                # what split_list makes of a value without a comma: the value, stripped
                value = value.strip(" \t")
                return [value] if value else []
            return [element for element in split_list(value) if element]
        if not count:
            return []
        values = [v for k, v in zip(keys, self._values, strict=True) if k == key]
        if key not in _LIST_KEYS:
            return values
        return [element for value in values for element in split_list(value) if element]

    def add(self, name: str, value: str) -> None:
        key, stored, value = self._checked(name, value)
        self._keys.append(key)
        self._names.append(stored)
        self._values.append(value)

    def insert(self, name: str, value: str) -> None:
        """Put a field before the first field of that name, or at the top if absent
        (where a proxy adds its Via and Record-Route)."""
        key, stored, value = self._checked(name, value)
        keys = self._keys
        index = keys.index(key) if key in keys else 0
        keys.insert(index, key)
        self._names.insert(index, stored)
        self._values.insert(index, value)

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, where the first one stood."""
        item = self._checked(name, value)
        key = item[0]
        keys = self._keys
        count = keys.count(key)
        if count == 1:
            index = keys.index(key)
            self._names[index] = item[1]
            self._values[index] = item[2]
        elif not count:
            keys.append(key)
            self._names.append(item[1])
            self._values.append(item[2])
        else:
            index = keys.index(key)
            triples = self._triples()
            self._assign(
                [*triples[:index], item, *(t for t in triples[index + 1 :] if t[0] != key)]
            )

    def remove(self, name: str) -> None:
        key = _key(name)
        if key in self._keys:
            self._assign([t for t in self._triples() if t[0] != key])

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value: the first element of the first field for
        list headers (the rest of that field stays), else the first field."""
        key = _key(name)
        keys = self._keys
        if key not in keys:
            return None
        index = keys.index(key)
        values = self._values
        value = values[index]
        if key in _LIST_KEYS:
            if "," not in value:
                # split_list gives the value stripped, or nothing when that is empty
                element = value.strip(" \t")
                del keys[index], self._names[index], values[index]
                return element if element else value
            elements = [e for e in split_list(value) if e]
            if len(elements) > 1:
                values[index] = ", ".join(elements[1:])
                return elements[0]
            del keys[index], self._names[index], values[index]
            return elements[0] if elements else value
        del keys[index], self._names[index], values[index]
        return value

    def copy(self) -> Headers:
        return Headers._from_lists(self._keys.copy(), self._names.copy(), self._values.copy())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self._names, self._values, strict=True)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return _key(name) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._names == other._names and self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(zip(self._names, self._values, strict=True))!r})"


def _first(headers: Headers, key: str) -> str | None:
    """``headers.get`` for a key (the views' lookup)."""
    keys = headers._keys
    if key in keys:
        return headers._values[keys.index(key)]
    return None


# --------------------------------------------------------------------------------------------
# Messages

_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
    469: "Bad Info Package", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large",
    555: "Push Notification Service Not Supported", 580: "Precondition Failure", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted",
    608: "Rejected",
}  # fmt: skip
_CLASS_REASONS = {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error",
                  6: "Global Failure"}  # fmt: skip


def reason_phrase(status: int) -> str:
    """The standard reason phrase for a status code (a generic one for its class)."""
    return _REASONS.get(status) or _CLASS_REASONS.get(status // 100, "Unknown")


class _Message:
    """What requests and responses share: headers, body, serialization and the cached
    structured views of the fields every transaction and proxy reads.

    The views return None when the field is absent and raise `SipError` when it is
    malformed (possible only for a message built or edited by hand: `parse_message`
    checked them).  Objects they return (`Via`, `NameAddr`, `Uri`) are the cached ones:
    to change a field, build a new value and write it with ``headers.set``/``insert``.

    Each view is cached with the raw header text it was made from and is made again when
    the field's text has changed, so the cache can never go stale.  The top Via and the
    From/To tags, which transactions and proxies read on every message, have slots of
    their own; the parser leaves in them what its checks already found (the Via's match,
    the tags' parameter text), so that the first use does not match the text again.
    Everything else goes into `_cache`, keyed by (kind, raw text), made on first use.
    """

    __slots__ = (
        "_cache",
        "_from_raw",
        "_from_tag",
        "_from_text",
        "_to_raw",
        "_to_tag",
        "_to_text",
        "_via",
        "_via_raw",
        "body",
        "headers",
        "version",
    )

    headers: Headers
    body: bytes
    version: str

    # The view slots, all None at first (set in each __init__, which is cheaper than a
    # shared method):
    _cache: dict | None  # (kind, raw text) -> view
    _via_raw: str | None  # the Via field text `_via` was made from
    _via: Via | re.Match[str] | None  # or the match the parser's check left
    _from_raw: str | None
    _from_text: str | None  # header-parameter text whose tag is still to be read
    _from_tag: str | None
    _to_raw: str | None
    _to_text: str | None
    _to_tag: str | None

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Start line, every field as ``Name: value`` in order, Content-Length =
        len(body) (at the first Content-Length field's place, else last), blank line,
        body."""
        body = self.body
        headers = self.headers
        keys = headers._keys
        values = headers._values
        count = len(keys)
        # start line, CRLF, then "name", ": ", "value", CRLF per field, then a CRLF: the
        # fields are laid in by four extended-slice assignments (C loops), not a loop.
        end = 4 * count + 2
        parts: list[str | None] = [None] * (end + 1)
        parts[0] = self._start_line()
        parts[1] = "\r\n"
        parts[2:end:4] = headers._names
        parts[3:end:4] = _SEPARATORS[:count] if count <= 64 else [": "] * count
        parts[4:end:4] = values
        parts[5:end:4] = _CRLFS[:count] if count <= 64 else ["\r\n"] * count
        parts[end] = "\r\n"
        length = str(len(body))
        count = keys.count(_CONTENT_LENGTH)
        if count == 1:
            index = keys.index(_CONTENT_LENGTH)
            if values[index] != length:
                parts[4 * index + 4] = length
        elif not count:
            parts[end] = f"Content-Length: {length}\r\n\r\n"
        else:  # the first one, with the body's length, where it stands; the others go
            index = keys.index(_CONTENT_LENGTH)
            parts[4 * index + 4] = length
            for i in range(index + 1, len(keys)):
                if keys[i] == _CONTENT_LENGTH:
                    parts[4 * i + 2 : 4 * i + 6] = ("", "", "", "")
        return "".join(parts).encode("utf-8", "surrogateescape") + bytes(body)  # type: ignore[arg-type]

    def _cached(self, kind: str, raw: str, parse: Callable[[str], _T]) -> _T:
        """The `kind` view of header text `raw` (made on first use)."""
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        key = (kind, raw)
        value = cache.get(key)
        if value is None:
            value = cache[key] = parse(raw)
        return value

    @property
    def call_id(self) -> str | None:
        keys = self.headers._keys
        if "call-id" in keys:
            return self.headers._values[keys.index("call-id")]
        return None

    @property
    def cseq(self) -> tuple[int, str] | None:
        keys = self.headers._keys
        if "cseq" not in keys:
            return None
        raw = self.headers._values[keys.index("cseq")]
        value = _CSEQS.get(raw)
        return _parse_cseq(raw) if value is None else value

    @property
    def from_addr(self) -> NameAddr | None:
        raw = _first(self.headers, "from")
        return None if raw is None else self._cached("na", raw, parse_name_addr)

    @property
    def to_addr(self) -> NameAddr | None:
        raw = _first(self.headers, "to")
        return None if raw is None else self._cached("na", raw, parse_name_addr)

    @property
    def from_tag(self) -> str | None:
        keys = self.headers._keys
        if "from" not in keys:
            return None
        raw = self.headers._values[keys.index("from")]
        if raw == self._from_raw:
            text = self._from_text
            if text is None:
                return self._from_tag
            tag = self._from_tag = params_tag(text)
            self._from_text = None
            return tag
        tag = name_addr_params(raw).get("tag")
        self._from_raw, self._from_text, self._from_tag = raw, None, tag
        return tag

    @property
    def to_tag(self) -> str | None:
        keys = self.headers._keys
        if "to" not in keys:
            return None
        raw = self.headers._values[keys.index("to")]
        if raw == self._to_raw:
            text = self._to_text
            if text is None:
                return self._to_tag
            tag = self._to_tag = params_tag(text)
            self._to_text = None
            return tag
        tag = name_addr_params(raw).get("tag")
        self._to_raw, self._to_text, self._to_tag = raw, None, tag
        return tag

    @property
    def top_via(self) -> Via | None:
        keys = self.headers._keys
        if "via" not in keys:
            return None
        raw = self.headers._values[keys.index("via")]
        if raw == self._via_raw:
            via = self._via
            if type(via) is Via:
                return via
            # a match the parser's check left: of the Via alone, or of several fields
            pattern = via.re  # type: ignore[union-attr]
            if pattern is _REQUEST_FIELDS or pattern is _REQUEST_CONTACT_FIELDS:
                via = self._via = via_from_parts(*via.group(15, 16, 17, 18))  # type: ignore[union-attr]
            elif pattern is _RESPONSE_FIELDS or pattern is _RESPONSE_CONTACT_FIELDS:
                via = self._via = via_from_parts(*via.group(9, 10, 11, 12))  # type: ignore[union-attr]
            else:
                via = self._via = from_match(via)  # type: ignore[arg-type]
            return via  # type: ignore[return-value]
        via = _parse_top_via(raw)
        self._via_raw, self._via = raw, via
        return via

    @property
    def branch(self) -> str | None:
        via = self.top_via
        return None if via is None else via.params.get("branch")

    @property
    def max_forwards(self) -> int | None:
        raw = _first(self.headers, "max-forwards")
        return None if raw is None else _parse_max_forwards(raw)

    def name_addrs(self, name: str) -> list[NameAddr]:
        """Every element of a name-addr list header (Contact, Route, Record-Route,
        P-Asserted-Identity ...), parsed and cached.  A ``Contact: *`` is skipped."""
        return [
            self._cached("na", element, parse_name_addr)
            for element in self.headers.get_all(name)
            if element != "*"
        ]


class Request(_Message):
    """A SIP request; `uri` is the Request-URI text, `parsed_uri` its structure."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        self.method = method
        self.uri = uri
        self.version = "SIP/2.0"
        self.headers = Headers() if headers is None else headers
        self.body = body
        self._cache = self._via_raw = self._via = None
        self._from_raw = self._from_text = self._from_tag = None
        self._to_raw = self._to_text = self._to_tag = None

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    @property
    def parsed_uri(self) -> Uri:
        """The Request-URI as a `Uri` (cached); SipError(416) for schemes other than
        sip/sips/tel."""
        return self._cached("uri", self.uri, parse_uri)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call_id={self.call_id!r}>"


class Response(_Message):
    """A SIP response; ``reason=None`` gives the standard reason phrase."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        self.version = "SIP/2.0"
        self.headers = Headers() if headers is None else headers
        self.body = body
        self._cache = self._via_raw = self._via = None
        self._from_raw = self._from_text = self._from_tag = None
        self._to_raw = self._to_text = self._to_tag = None

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call_id={self.call_id!r}>"


def _parse_top_via(raw: str) -> Via:
    first = split_list(raw)[0] if "," in raw else raw.strip(" \t")
    return parse_via(first)


def _parse_max_forwards(raw: str) -> int:
    value = _MAX_FORWARDS.get(raw)
    return small_int(raw, 255, "Max-Forwards") if value is None else value


_MAX_FORWARDS = {str(n): n for n in range(256)}
# CSeq values repeat across calls ("1 INVITE", "2 BYE" ...): parsed ones are kept, the
# table emptied when it grows past a bound.  Values are immutable tuples.
_CSEQS: dict[str, tuple[int, str]] = {}


def _parse_cseq(raw: str) -> tuple[int, str]:
    value = parse_cseq(raw)
    if len(_CSEQS) >= 4096:
        _CSEQS.clear()
    _CSEQS[raw] = value
    return value


def build_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """A response to `req` per RFC 3261 §8.2.6: every Via in order, From, To (with
    `to_tag` added when To has none and the status is above 100), Call-ID, CSeq, the
    Timestamp on a 100, then `headers`.  Works on a `SipError.partial` too: a To whose
    tag cannot be read is copied unchanged."""
    keys = req.headers._keys
    names = req.headers._names
    values = req.headers._values
    out_keys: list[str] = []
    out_names: list[str] = []
    out_values: list[str] = []
    if keys.count("via") == 1:
        index = keys.index("via")
        out_keys.append(keys[index])
        out_names.append(names[index])
        out_values.append(values[index])
    else:
        for index, key in enumerate(keys):
            if key == "via":
                out_keys.append(key)
                out_names.append(names[index])
                out_values.append(values[index])
    for key in ("from", "to", "call-id", "cseq"):
        if key in keys:
            index = keys.index(key)
            value = values[index]
            if key == "to" and to_tag is not None and status > 100:
                try:
                    has_tag = req.to_tag is not None
                except SipError:
                    has_tag = True
                if not has_tag:
                    value = f"{value};tag={to_tag}"
            out_keys.append(keys[index])
            out_names.append(names[index])
            out_values.append(value)
    if status == 100 and "timestamp" in keys:
        for index, key in enumerate(keys):
            if key == "timestamp":
                out_keys.append(key)
                out_names.append(names[index])
                out_values.append(values[index])
    response = Response(status, reason, Headers._from_lists(out_keys, out_names, out_values))
    for name, value in headers:
        response.headers.add(name, value)
    return response


# --------------------------------------------------------------------------------------------
# Parsing

_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_REQUIRED_SET = frozenset(_REQUIRED)
# Methods whose request line needs no token check (any token is a method).
_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE",
                      "PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})  # fmt: skip
_SINGLE = frozenset({"from", "to", "call-id", "cseq", "max-forwards"})
# Fields looked at after the header loop; the loop records the first value of each.
_WATCHED = frozenset({*_REQUIRED, "max-forwards", "content-length", "contact", "date",
                      "warning", "retry-after"})  # fmt: skip
# What the header loop needs of a field name's spelling: (key, canonical name, watched?).
# Only spellings in _BY_EXACT; _BY_LOWER's are a subset of them.
_SCAN_INFO = {name: (*info, info[0] in _WATCHED) for name, info in _BY_EXACT.items()}
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
_WARN_CODE_RE = re.compile(r"[0-9]{3}[ \t]")
_FOLDED_LINE_RE = re.compile(r"\r?\n(?![ \t])")
_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]+")


class _BareLF(Exception):
    """The fast CRLF path met a bare LF: the block must be located again leniently."""


def _bad(reason: str, status: int = 400) -> SipError:
    return SipError(reason, status)


def _split_lines(text: str, lenient: bool) -> list[str]:
    """The lines of a header block.  CRLF is the rule; with `lenient` a bare LF ends a
    line too.  A bare CR is never a line end (it could smuggle a header past a peer that
    takes it for one), so it is an error."""
    if lenient:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise _bad("bare CR in header block")
        return text.split("\n")
    lines = text.split("\r\n")
    # A CR or LF left inside a line is a bare one.  Joining the lines and searching the
    # copy (memchr) is several times cheaper than counting either character in the text.
    rest = "".join(lines)
    if "\n" in rest:
        raise _BareLF
    if "\r" in rest:
        raise _bad("bare CR in header block")
    return lines


def _unfolded_lines(text: str) -> list[str]:
    # Split only at line ends not followed by SP/HTAB, then collapse each fold and the
    # white space around it into one SP, as RFC 3261 §7.3.1 says to before interpreting.
    lines = _FOLDED_LINE_RE.split(text)
    if "\n" in lines[0]:
        raise _bad("start line continued on the next line")
    return [lines[0], *(_FOLD_RE.sub(" ", line) if "\n" in line else line for line in lines[1:])]


def _scan(lines: list[str]) -> tuple[Headers, dict[str, str], int | None, str | None] | None:
    """Header lines -> (the fields, first value of each watched field, index of the
    Content-Length field, first problem found), or None when a line is a continuation
    (the caller unfolds and scans again: folding is rare, so the common path never looks
    for it)."""
    keys: list[str] = []
    names: list[str] = []
    values: list[str] = []
    found: dict[str, str] = {}
    length_index = None
    # A bad field is remembered, not raised at once, so that the error can carry the
    # partial message a proxy needs to answer (multi01.dat still gets its 400).
    problem = None
    get = _SCAN_INFO.get
    it = iter(lines)
    next(it)  # the start line
    for line in it:
        # "Name: value" is the usual spelling: splitting at ": " leaves a value that
        # strip() returns as it is, without making another string.
        name, sep, value = line.partition(": ")
        info = get(name) if sep else None
        if info is None:
            name, colon, value = line.partition(":")
            info = get(name) if colon else None
        if info is None:
            if line[:1] in (" ", "\t"):
                return None
            name = name.rstrip(" \t")
            lower = name.lower()
            info = _SCAN_INFO.get(lower)
            if not colon or (info is None and not is_token(name)):
                problem = problem or f"bad header line: {line[:80]!r}"
                continue
            if info is None:
                info = (lower, name, lower in _WATCHED)
        key, stored, watched = info
        value = value.strip(" \t")
        if watched:
            if key not in found:
                found[key] = value
                if key == "content-length":
                    length_index = len(keys)
            elif key in _SINGLE:
                problem = problem or f"more than one {stored} header field"
            elif key == "content-length":
                if value != found[key]:
                    problem = problem or f"conflicting Content-Length values: {found[key]}, {value}"
                continue  # an identical repeat is dropped: to_bytes writes one
        # (plain list.append calls: CPython 3.11 specialises them, bound methods not)
        keys.append(key)
        names.append(stored)
        values.append(value)
    return Headers._from_lists(keys, names, values), found, length_index, problem


def _parse_head(
    head: bytes, lenient: bool = False
) -> tuple[Request | Response, int | None, int | None]:
    """Parse and validate a header block (start line included, final line end excluded).

    Returns the message with an empty body, the Content-Length value (None if absent) and
    the index of its field (None if absent).  Raises `_BareLF` when not `lenient` and the
    block has a bare LF.
    """
    text = head.decode("utf-8", "surrogateescape")
    lines = _split_lines(text, lenient)
    scanned = _scan(lines)
    if scanned is None:
        lines = _unfolded_lines(text)
        scanned = _scan(lines)
        if scanned is None:  # unreachable: unfolding leaves no line starting with SP/HTAB
            raise _bad("malformed line folding")
    headers, found, length_index, problem = scanned

    message = _start(lines[0], headers)
    try:
        if problem is not None:
            raise _bad(problem)
        content_length = _validate(message, found, headers)
    except SipError as error:
        error.partial = message
        raise
    return message, content_length, length_index


def _start(line: str, headers: Headers) -> Request | Response:
    """The message object for a start line; errors carry the partial message when there
    is a request to answer."""
    if line[:4] == "SIP/":
        version, _, rest = line.partition(" ")
        _check_version(version, None)
        code, space, reason = rest[:3], rest[3:4], rest[4:]
        if not (code.isascii() and code.isdigit()) or space not in ("", " "):
            raise _bad(f"bad status line: {line[:80]!r}")
        status = int(code)
        if not 100 <= status <= 699:
            raise _bad(f"status code out of range: {code}")
        response = Response(status, reason, headers)
        response.version = version
        return response

    parts = line.split(" ")
    if len(parts) == 3:
        method, uri, version = parts
        if uri and version == "SIP/2.0" and method in _METHODS:
            return Request(method, uri, headers)  # the usual request line, nothing to check
    request = Request(parts[0], " ".join(parts[1:-1]), headers)
    if len(parts) != 3 or not parts[1]:
        raise SipError(f"bad request line: {line[:80]!r}", partial=request)
    method, _, version = parts
    request.version = version
    if not is_token(method):
        raise SipError(f"bad method: {method[:40]!r}", partial=request)
    _check_version(version, request)
    return request


def _check_version(version: str, partial: Request | None) -> None:
    if version == "SIP/2.0":
        return
    if _VERSION_RE.fullmatch(version) is None:
        raise SipError(f"bad SIP version: {version[:40]!r}", partial=partial)
    if version.upper() != "SIP/2.0":
        raise SipError(f"SIP version not supported: {version}", 505, partial=partial)


def _validate(message: Request | Response, found: dict[str, str], headers: Headers) -> int | None:
    """The checks RFC 4475 asks for, on the fields a proxy reads anyway; leaves what they
    found in the message's view slots.  Returns the Content-Length value, or None when the
    field is absent.

    The checks run in a fixed order, so that the first failing one names the error: the
    Request-URI, CSeq, From, To, Call-ID, the top Via, Max-Forwards, Contact, Date,
    Retry-After, Warning, Content-Length.  The usual message takes a shortcut: its
    Request-URI, From, To, top Via and single Contact are matched at once by one of the
    `_FIELDS` expressions; when that succeeds none of them can fail, and the other checks
    keep their order.  Otherwise every field goes through `gateway.sip.headers` (a fast
    expression, then the full grammar, which alone decides and words a rejection)."""
    if not found.keys() >= _REQUIRED_SET:
        for key in _REQUIRED:
            if key not in found:
                raise _bad(f"missing {canonical_name(key)} header field")
    via = found["via"]
    from_ = found["from"]
    to = found["to"]
    contact = found.get("contact")
    is_request = type(message) is Request
    single_contact = (
        contact is not None
        and contact != "*"
        and "," not in contact
        and headers._keys.count("contact") == 1
    )
    m = None
    if "," not in via:
        if is_request:
            probe = f"{message.uri}\n{from_}\n{to}\n{via}"  # type: ignore[union-attr]
            if single_contact:
                m = _REQUEST_CONTACT_FIELDS.fullmatch(f"{probe}\n{contact}")
                single_contact = m is not None  # else the Contact is checked on its own
            if m is None:
                m = _REQUEST_FIELDS.fullmatch(probe)
            if m is not None:
                # ports the expressions took as 1 to 5 digits may still be out of range
                port = m[5]
                if port is not None and len(port) == 5 and port > "65535":
                    m = None
                else:
                    port = m[17]
                    if port is not None and len(port) == 5 and port > "65535":
                        m = None
        else:
            probe = f"{from_}\n{to}\n{via}"
            if single_contact:
                m = _RESPONSE_CONTACT_FIELDS.fullmatch(f"{probe}\n{contact}")
                single_contact = m is not None
            if m is None:
                m = _RESPONSE_FIELDS.fullmatch(probe)
            if m is not None:
                port = m[11]
                if port is not None and len(port) == 5 and port > "65535":
                    m = None

    if m is None:
        if is_request:
            try:
                check_request_uri(message.uri)  # type: ignore[union-attr]
            except SipError as error:
                raise SipError(f"bad Request-URI: {error.reason}", error.status) from None
        cseq = _CSEQS.get(found["cseq"]) or _parse_cseq(found["cseq"])
        if is_request and cseq[1] != message.method:  # type: ignore[union-attr]
            raise _bad(f"CSeq method {cseq[1]!r} does not match the request method")
        # The header-parameter text stands for the tag until a view wants it.
        message._from_text = name_addr_params_text(from_)
        message._to_text = name_addr_params_text(to)
        _check_call_id(found["call-id"])
        if "," in via:
            vias = split_list(via)
            if "" in vias:
                raise _bad(f"empty element in Via: {via[:80]!r}")
            message._via = match_via(vias[0])
        else:
            message._via = match_via(via)
        single_contact = False
    else:
        cseq = _CSEQS.get(found["cseq"]) or _parse_cseq(found["cseq"])
        if is_request and cseq[1] != message.method:  # type: ignore[union-attr]
            raise _bad(f"CSeq method {cseq[1]!r} does not match the request method")
        message._via = m  # (top_via knows where its FAST_VIA groups are)
        if is_request:
            message._from_text = m[10]
            message._to_text = m[14]
        else:
            message._from_text = m[4]
            message._to_text = m[8]
        _check_call_id(found["call-id"])
    message._from_raw = from_
    message._to_raw = to
    message._via_raw = via

    raw = found.get("max-forwards")
    if raw is not None and raw not in _MAX_FORWARDS:
        _parse_max_forwards(raw)

    if contact is not None and not single_contact:
        keys = headers._keys
        values = (
            (contact,) if keys.count("contact") == 1
            else [v for k, v in zip(keys, headers._values, strict=True) if k == "contact"]
        )  # fmt: skip
        for value in values:
            if value != "*":
                for element in split_list(value) if "," in value else (value,):
                    name_addr_params_text(element)

    raw = found.get("date")
    if raw is not None and not raw.endswith(" GMT"):
        raise _bad(f"Date must be in GMT: {raw[:80]!r}")

    raw = found.get("retry-after")
    if raw is not None:
        small_int(raw.partition(";")[0].partition("(")[0].strip(" \t"), MAX_UINT32, "Retry-After")

    if "warning" in found:
        for key, value in zip(headers._keys, headers._values, strict=True):
            if key == "warning":
                for element in split_list(value):
                    if _WARN_CODE_RE.match(element) is None:
                        raise _bad(f"bad Warning: {element[:80]!r}")

    raw = found.get("content-length")
    if raw is None:
        return None
    if len(raw) < 10 and raw.isdigit() and raw.isascii():
        return int(raw)  # small_int's own fast path
    return small_int(raw, MAX_UINT32, "Content-Length")


def _check_call_id(call_id: str) -> None:
    if not call_id or " " in call_id or "\t" in call_id:
        raise _bad(f"bad Call-ID: {call_id[:80]!r}")


# The Request-URI (requests), From, To, the top Via and a single Contact of the usual
# message, checked in one match: the fast expressions of `gateway.sip.headers` joined by
# "\n", a character none of them can match, so that each part matches its own field and
# captures what it would alone.  Groups -- requests: Request-URI 1-6 (port 5), From 7-10
# (parameters 10), To 11-14 (14), Via 15-18 (port 17), Contact 19-22; responses: From 1-4
# (parameters 4), To 5-8 (8), Via 9-12 (port 11), Contact 13-16.
_REQUEST_FIELDS = re.compile(
    "\n".join((FAST_REQUEST_URI, FAST_NAME_ADDR, FAST_NAME_ADDR, FAST_VIA))
)
_REQUEST_CONTACT_FIELDS = re.compile(f"{_REQUEST_FIELDS.pattern}\n{FAST_NAME_ADDR}")
_RESPONSE_FIELDS = re.compile("\n".join((FAST_NAME_ADDR, FAST_NAME_ADDR, FAST_VIA)))
_RESPONSE_CONTACT_FIELDS = re.compile(f"{_RESPONSE_FIELDS.pattern}\n{FAST_NAME_ADDR}")


def _finish(message: Request | Response, body: bytes, length_index: int | None) -> None:
    message.body = body
    headers = message.headers
    length = str(len(body))
    if length_index is None:
        headers._keys.append(_CONTENT_LENGTH)
        headers._names.append("Content-Length")
        headers._values.append(length)
    elif headers._values[length_index] != length:
        headers._values[length_index] = length  # (its name is always "Content-Length")


def _find_head_end(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """(end of the header block, start of the body) or None.  The block ends at the first
    empty line; bare-LF line ends are tolerated."""
    crlf = data.find(b"\n\r\n", start)
    limit = len(data) if crlf < 0 else crlf
    lf = data.find(b"\n\n", start, limit + 1)
    if lf >= 0:
        end, body = lf, lf + 2
    elif crlf >= 0:
        end, body = crlf, crlf + 3
    else:
        return None
    if end > 0 and data[end - 1] == 13:
        end -= 1
    return end, body


def _skip_blank_lines(data: bytes | bytearray, start: int) -> int:
    n = len(data)
    while start < n:
        byte = data[start]
        if byte == 10:
            start += 1
        elif byte == 13 and start + 1 < n and data[start + 1] == 10:
            start += 2
        else:
            break
    return start


def parse_message(data: bytes) -> Request | Response:
    """Parse one UDP datagram.

    Blank lines before the start line are skipped (RFC 3261 §7.5); the body is the
    Content-Length octets after the header block (the rest of the datagram when the field
    is absent, §18.3) and anything after it is ignored.  Raises `SipError` only.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    start = _skip_blank_lines(data, 0) if data[:1] in (b"\r", b"\n") else 0
    if start >= len(data):
        raise _bad("empty message")
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        try:
            message, length, length_index = _parse_head(data[start:end])
            body_start = end + 4
        except _BareLF:
            end = -1
    if end < 0:
        located = _find_head_end(data, start)
        if located is None:
            # A datagram that ends after its last header line without the empty line
            # (baddn.dat) holds no body; read it rather than reject it for that alone.
            if not data.endswith(b"\n"):
                raise _bad("no end of header block")
            located = (len(data) - (2 if data.endswith(b"\r\n") else 1), len(data))
        end, body_start = located
        message, length, length_index = _parse_head(data[start:end], lenient=True)
    if length is None:
        body = data[body_start:]
    elif length > len(data) - body_start:
        raise SipError(
            f"Content-Length {length} larger than the datagram's {len(data) - body_start}-octet body",
            partial=message,
        )
    else:
        body = data[body_start : body_start + length]
    _finish(message, body, length_index)
    return message


class StreamFramer:
    """Frames messages out of a TCP/TLS byte stream by Content-Length (absent = 0).

    ``feed`` returns the messages completed by the new data.  A framing or parse error
    raises `SipError` (with ``.messages``: the ones framed earlier in the same call); the
    framer then stays failed, since the stream can no longer be trusted, and the
    connection must be closed.  CRLF keep-alives between messages are skipped and counted
    in `keepalives` (each double CRLF is one ping, RFC 5626 §4.4.1).
    """

    def __init__(self, *, max_head: int = 65536, max_body: int = 1 << 20) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.keepalives = 0
        self._buf = bytearray()
        self._scan_from = 0  # where to resume looking for the end of the header block
        self._pending: tuple[Request | Response, int, int | None] | None = None
        self._crlfs = 0
        self._error: SipError | None = None

    def feed(self, data: bytes) -> list[Request | Response]:
        if self._error is not None:
            raise SipError(f"stream already failed: {self._error.reason}", self._error.status)
        self._buf += data
        out: list[Request | Response] = []
        try:
            while True:
                message = self._next()
                if message is None:
                    return out
                out.append(message)
        except SipError as error:
            error.messages = out
            self._error = error
            raise

    def _next(self) -> Request | Response | None:
        buf = self._buf
        if self._pending is None:
            skip = self._skip_crlf()
            if skip:
                del buf[:skip]
                self._scan_from = 0
            if not buf:
                return None
            located = _find_head_end(buf, max(0, self._scan_from - 3))
            # The limit applies to where the block ends, not to how much is buffered, so
            # that the outcome does not depend on how the stream was cut.
            if (len(buf) if located is None else located[0]) > self.max_head:
                raise SipError(f"header block longer than {self.max_head} octets", 513)
            if located is None:
                self._scan_from = len(buf)
                return None
            self._crlfs = 0
            self._scan_from = 0
            end, body_start = located
            message, length, length_index = _parse_head(bytes(buf[:end]), lenient=True)
            length = length or 0
            if length > self.max_body:
                raise SipError(f"Content-Length {length} larger than {self.max_body}", 513)
            del buf[:body_start]
            self._pending = (message, length, length_index)
        message, length, length_index = self._pending
        if len(buf) < length:
            return None
        self._pending = None
        _finish(message, bytes(buf[:length]), length_index)
        del buf[:length]
        return message

    def _skip_crlf(self) -> int:
        buf, n, i = self._buf, len(self._buf), 0
        while i < n:
            byte = buf[i]
            if byte == 13:
                if i + 1 >= n:
                    break  # wait: this CR may begin a CRLF
                if buf[i + 1] != 10:
                    break
                i += 2
                self._crlfs += 1
                if self._crlfs == 2:
                    self.keepalives += 1
                    self._crlfs = 0
            elif byte == 10:
                i += 1
            else:
                break
        return i
