"""Structured SIP header fields: Via, URIs, name-addr, CSeq (RFC 3261 §19, §20, §25).

Theory of operation
-------------------
`gateway.sip.message` keeps every header value as the raw (unfolded) text it arrived
with; this module turns one such value into a small dataclass when someone asks for it.
Each grammar is a single compiled regular expression that *validates and splits in one
pass*, so a malformed value costs a failed ``fullmatch`` rather than a hand-written
scanner walking characters in Python.  The expressions are written so that their
alternatives do not overlap (tokens, quoted strings and separators use disjoint
character classes), which keeps matching linear even on hostile input.

The message parser only needs to know that a value is well formed: `check_via`,
`check_name_addr` and `check_uri` run the same expressions without building objects and
hand back the build itself, deferred (a `partial` over the match), which the message
caches; an object is thus built at most once, and only if someone uses it.

Parsed objects keep the wire text of each part (escapes, parameter values, quotes), and
``str(obj)`` writes those back in a canonical layout (no optional white space, a
name-addr always in ``<...>``).  Only what carries no meaning is normalised: parameter
*names* (RFC 3261 §7.3.1, §19.1.4) and the URI scheme are lower-cased, a Via transport is
upper-cased, and an IPv6 host is held without its brackets (ready for a socket address)
and bracketed again on output.

Every parse function raises `SipError` (a `ValueError`) and nothing else, whatever the
input: numbers are length-checked before ``int()`` so that a 5,000-digit field cannot
trip Python's integer-string limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import unquote

__all__ = [
    "NameAddr",
    "SipError",
    "Uri",
    "Via",
    "check_name_addr",
    "check_uri",
    "check_via",
    "name_addr_params",
    "parse_cseq",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "quote_display",
    "split_list",
    "unescape",
]

MAX_UINT32 = 2**32 - 1


class SipError(ValueError):
    """The one error type of the SIP parser.

    ``status`` is the response a UAS or proxy should send for the offending request (400,
    416, 505 ...); for a bad response the caller drops it.  ``partial`` holds the message
    as far as it could be split (start line and header fields, no body) when the error was
    found after the header block was read, so that a proxy can still answer it with
    `build_response`.  ``messages`` lists the complete messages a `StreamFramer` had
    already framed in the same ``feed`` call before the error.
    """

    def __init__(self, reason: str, status: int = 400, *, partial: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial
        self.messages: list = []

    def __repr__(self) -> str:
        return f"SipError({self.reason!r}, {self.status})"


# --------------------------------------------------------------------------------------------
# Grammar pieces (RFC 3261 §25.1).  LWS has already been unfolded to SP/HTAB by the
# message layer, so "linear white space" here is only [ \t].

_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = rf"[{_TOKEN_CHARS}]+"
_WS = r"[ \t]*"
# quoted-pair may escape any octet but CR/LF (intmeth.dat escapes a NUL).  Written as the
# "unrolled loop" ``"normal* (escape normal*)*"``: the same language as
# ``"(?:[^"\\]|\\.)*"`` and the same (only) match, but runs of plain characters are one
# charset loop instead of an alternation per character, several times faster in `re`.
_QUOTED = r'"[^"\\\r\n]*(?:\\[^\r\n][^"\\\r\n]*)*"'
# generic-param values: token / host / quoted-string.  ':' and brackets admit the IPv6
# forms that Via received= and maddr= carry with or without brackets.
_PVALUE = rf"(?:{_QUOTED}|[{_TOKEN_CHARS}:\[\]]+)"
_PARAMS = rf"(?:{_WS};{_WS}{_TOKEN}(?:{_WS}={_WS}{_PVALUE})?)*"
_PARAM_RE = re.compile(rf"{_WS};{_WS}({_TOKEN})(?:{_WS}={_WS}({_PVALUE}))?", re.S)
_TOKEN_RE = re.compile(_TOKEN)

_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+"
# user: unreserved / escaped / user-unreserved; password drops ';' '?' '/'.
_USER = r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/]+"
_PASSWORD = r"[A-Za-z0-9\-_.!~*'()%&=+$,]*"
_UPCHAR = r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]"
_UPARAMS = rf"(?:;{_UPCHAR}+(?:={_UPCHAR}*)?)*"
_UPARAM_RE = re.compile(rf";({_UPCHAR}+)(?:=({_UPCHAR}*))?")

_SIP_REST_RE = re.compile(
    rf"(?:({_USER})(?::({_PASSWORD}))?@)?({_HOST})(?::([0-9]{{1,5}}))?({_UPARAMS})"
    r"(?:\?([!-~\x80-\U0010ffff]*))?"
)
_TEL_REST_RE = re.compile(rf"([0-9A-Fa-f*#+\-.()]+)({_UPARAMS})")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
# Opaque URIs of other schemes: any visible character except the ones that would end a
# header field element or an angle-bracketed URI.
_OPAQUE_RE = re.compile(r'[^\x00-\x20\x7f<>"]*')

# An unquoted display name is tokens separated by LWS (baddn.dat: no comma); we also let
# non-ASCII letters through unquoted, which many UAs send and which cannot be mistaken for
# a separator.
_DISPLAY_TOKEN = rf"[{_TOKEN_CHARS}\x80-\U0010ffff]+"
_NAME_ADDR_RE = re.compile(
    rf"{_WS}(?:(?:({_QUOTED})|({_DISPLAY_TOKEN}(?:[ \t]+{_DISPLAY_TOKEN})*))?{_WS}"
    r"<([A-Za-z][A-Za-z0-9+\-.]*:[^\x00-\x20<>]*)>"
    rf'|([A-Za-z][A-Za-z0-9+\-.]*:[^\x00-\x20;,?<>"]*))({_PARAMS}){_WS}',
    re.S,
)
_VIA_RE = re.compile(
    rf"{_WS}({_TOKEN}){_WS}/{_WS}({_TOKEN}){_WS}/{_WS}({_TOKEN})[ \t]+({_HOST})"
    rf"(?:{_WS}:{_WS}([0-9]{{1,5}}))?({_PARAMS}){_WS}",
    re.S,
)
_CSEQ_RE = re.compile(rf"{_WS}([0-9]+)[ \t]+({_TOKEN}){_WS}")

# Fast paths.  Each expression below accepts a subset of the one it shadows -- the shape
# almost every UA sends: no optional white space, unquoted parameter values -- and, where
# both match, captures the same texts (same alternatives in the same order, so the same
# parse), with fewer groups and no alternation per character.  A value the fast expression
# rejects goes through the full grammar, which gives the verdict and the error; a value it
# accepts the full grammar accepts too.  tests/unit/test_sip_headers.py checks both
# properties on generated values.
#
# Their quantifiers are possessive (``*+``, ``++``, ``?+``: no backtracking into them),
# which `re` runs faster; that changes nothing here because each one is followed by a
# character its own class cannot hold (a name by '=' or ';', a value by ';', a URI by
# '>', a host by ':' or ';' ...), so giving characters back could never lead to a match.
# The pattern texts (FAST_*) are exported so that the message layer can check several
# fields in one match, joined by "\n", which none of them can hold.
_FAST_PARAMS = rf"(?:;[{_TOKEN_CHARS}]++(?:=[{_TOKEN_CHARS}:\[\]]++)?+)*+"
_FAST_HOST = r"[A-Za-z0-9_\-.]++|\[[0-9A-Fa-f:.]++\]"  # _HOST, alternatives swapped
# _VIA_RE without LWS, for the protocol every via-parm carries.  (transport, host, port,
# params)
FAST_VIA = rf"SIP/2\.0/([{_TOKEN_CHARS}]++) ({_FAST_HOST})(?::([0-9]{{1,5}}))?+({_FAST_PARAMS})"
_VIA_FAST_RE = re.compile(FAST_VIA)
# _NAME_ADDR_RE's name-addr branch without LWS at the ends (the bare ``<`` first: most
# From/To/Contact values have no display name).  [^\x00-\x20<>] is spelled as the ranges
# it leaves, which `re` tests faster.  (quoted display, token display, URI, params)
_DISPLAY_TOKEN_POSS = rf"[{_TOKEN_CHARS}\x80-\U0010ffff]++"
FAST_NAME_ADDR = (
    rf"(?:<|(?:({_QUOTED})|({_DISPLAY_TOKEN_POSS}(?:[ \t]+{_DISPLAY_TOKEN_POSS})*+))"
    rf"[ \t]*+<)([A-Za-z][A-Za-z0-9+\-.]*+:[!-;=?-\U0010ffff]*+)>({_FAST_PARAMS})"
)
_NAME_ADDR_FAST_RE = re.compile(FAST_NAME_ADDR)
# _SCHEME_RE + _SIP_REST_RE in one expression for sip/sips (the scheme is matched
# case-insensitively, as _uri_match lower-cases it).  (scheme, user, password, host, port,
# params, headers)
_SIP_URI_RE = re.compile(rf"([Ss][Ii][Pp][Ss]?):{_SIP_REST_RE.pattern}")
# The same without '?' anywhere -- the user part may hold one, so it is left out of the
# user's characters -- which is what a Request-URI looks like: no ?headers (escruri.dat).
# On a string without '?' the two expressions make the same choices, so the groups agree.
# (scheme, user, password, host, port, params)
_UPCHARS = _UPCHAR[1:-1]
FAST_REQUEST_URI = (
    rf"([Ss][Ii][Pp][Ss]?+):(?:([{_USER[1:-2].replace('?', '')}]++)"
    rf"(?::([{_PASSWORD[1:-2]}]*+))?+@)?+({_FAST_HOST})(?::([0-9]{{1,5}}))?+"
    rf"((?:;[{_UPCHARS}]++(?:=[{_UPCHARS}]*+)?+)*+)"
)
_RURI_FAST_RE = re.compile(FAST_REQUEST_URI)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_NEEDS_ESCAPE_RE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
# One element of a comma-separated header value: everything up to a comma that is
# neither inside a quoted string nor inside <...>.  Unterminated quotes or brackets run
# to the end, so the expression always consumes up to a top-level comma or the end.
_ELEMENT_RE = re.compile(r'(?:[^",<]+|"(?:[^"\\]|\\.)*(?:"|\\?\Z)|<[^>]*(?:>|\Z))*', re.S)


def _params(text: str, regex: re.Pattern[str] = _PARAM_RE) -> dict[str, str | None]:
    """Parameters of text already validated by a grammar expression.  Without quotes or
    white space the grammar leaves ';' and '=' no other role, so plain splitting is exact
    (and much faster than running the expression again)."""
    if not text:
        return {}
    if '"' in text or " " in text or "\t" in text:
        return {m[1].lower(): m[2] for m in regex.finditer(text)}
    return _split_params(text)


header_params = _params  # for the message layer: the parameters of a checked text


def params_tag(text: str) -> str | None:
    """``_params(text).get("tag")``, without building the dict for the usual one-param
    text."""
    if not text:
        return None
    if text.count(";") == 1 and '"' not in text and " " not in text and "\t" not in text:
        name, eq, value = text[1:].partition("=")
        return (value if eq else None) if name.lower() == "tag" else None
    return _params(text).get("tag")


def _split_params(text: str) -> dict[str, str | None]:
    """`_params` of a non-empty text without quotes or white space."""
    params: dict[str, str | None] = {}
    for part in text.split(";")[1:]:
        name, eq, value = part.partition("=")
        params[name.lower()] = value if eq else None
    return params


def _params_str(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _host_str(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _unbracket(host: str) -> str:
    return host[1:-1] if host[:1] == "[" else host


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    port = int(text)  # at most 5 digits, guaranteed by the expressions
    if port > 65535:
        raise SipError(f"port out of range: {text}")
    return port


def small_int(text: str, limit: int, what: str) -> int:
    """``int(text)`` for 1*DIGIT no larger than `limit`, else SipError(400).

    Leading zeros are legal (wsinv.dat sends Max-Forwards 0068); the length check comes
    before ``int()`` so that huge inputs never reach Python's digit limit.
    """
    if len(text) < 10 and text.isdigit() and text.isascii():
        number = int(text)
        if number <= limit:
            return number
    digits = text.lstrip("0")
    if not text.isascii() or not text.isdigit():
        raise SipError(f"bad {what}: {text[:40]}")
    if len(digits) > len(str(limit)) or (digits and int(digits) > limit):
        raise SipError(f"{what} too large: {text[:40]}")
    return int(digits) if digits else 0


def unescape(text: str) -> str:
    """Decode %HH escapes once (esc01: ``v%61lue%25%34%31`` is ``value%41``, not
    ``valueA``); invalid escapes stay as they are, octets that are not UTF-8 survive as
    surrogates so that %00 or %FF never truncate or collide."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value into stripped elements, respecting quoted
    strings and ``<...>``.  Empty elements are kept (callers decide whether they are an
    error); malformed input never raises."""
    if '"' not in value and "<" not in value:
        return [part.strip(" \t") for part in value.split(",")]
    out = []
    pos, end = 0, len(value)
    match = _ELEMENT_RE.match
    while True:
        stop = match(value, pos).end()
        out.append(value[pos:stop].strip(" \t"))
        if stop >= end:
            return out
        pos = stop + 1


def quote_display(display: str) -> str:
    """A display name as a quoted-string, escaping what qdtext may not hold."""
    if "\r" in display or "\n" in display:
        raise ValueError("display name may not contain CR or LF")
    if _NEEDS_ESCAPE_RE.search(display):
        display = _NEEDS_ESCAPE_RE.sub(lambda m: "\\" + m[0], display)
    return f'"{display}"'


# --------------------------------------------------------------------------------------------
# URIs


@dataclass(slots=True)
class Uri:
    """A SIP/SIPS/tel URI (or, as `opaque`, the text of another scheme).

    `user`, `password`, parameter values and `headers` are the wire text, %-escapes
    included: compare users with `user_unescaped` or `equivalent`.  For ``tel:`` the
    number is in `user` and `host` is empty.  `host` holds an IPv6 address without
    brackets.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None  # the part after "scheme:" of a URI we do not interpret

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            text = f"tel:{self.user or ''}"
        else:
            text = f"{self.scheme}:"
            if self.user is not None:
                text += self.user
                if self.password is not None:
                    text += ":" + self.password
                text += "@"
            text += _host_str(self.host)
            if self.port is not None:
                text += f":{self.port}"
        if self.params:
            text += _params_str(self.params)
        if self.headers is not None:
            text += "?" + self.headers
        return text

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    def equivalent(self, other: Uri) -> bool:
        """URI equality by RFC 3261 §19.1.4: escapes decoded, host and parameter names
        case-insensitive, user/ttl/method/maddr/transport must agree when either side
        has them, other parameters only when both do, headers must agree."""
        if self.opaque is not None or other.opaque is not None:
            return (self.scheme, self.opaque) == (other.scheme, other.opaque)
        if (
            self.scheme != other.scheme
            or self.user_unescaped != other.user_unescaped
            or _unesc(self.password) != _unesc(other.password)
            or self.host.lower() != other.host.lower()
            or self.port != other.port
        ):
            return False
        mine, theirs = _norm_params(self.params), _norm_params(other.params)
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if mine.get(name) != theirs.get(name):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return _norm_headers(self.headers) == _norm_headers(other.headers)


def _unesc(text: str | None) -> str | None:
    return None if text is None else unescape(text)


def _norm_params(params: dict[str, str | None]) -> dict[str, str | None]:
    return {
        unescape(k).lower(): None if v is None else unescape(v).lower() for k, v in params.items()
    }


def _norm_headers(headers: str | None) -> set[str]:
    return set() if not headers else {unescape(h) for h in headers.split("&")}


def parse_uri(text: str) -> Uri:
    """Parse a sip:, sips: or tel: URI.  Syntax errors raise SipError(400); a
    well-formed URI of any other scheme raises SipError(416)."""
    return _parse_uri(text, opaque_ok=False)


def _uri_match(text: str, *, opaque_ok: bool) -> tuple[str, re.Match[str] | None, str]:
    """(scheme, match of the part after the scheme or None for an opaque URI, rest)."""
    m = _SCHEME_RE.match(text)
    if m is None:
        raise SipError(f"bad URI: {text[:80]!r}")
    scheme = m[1].lower()
    rest = text[m.end() :]
    if scheme in ("sip", "sips"):
        p = _SIP_REST_RE.fullmatch(rest)
    elif scheme == "tel":
        p = _TEL_REST_RE.fullmatch(rest)
    else:
        if not opaque_ok:
            raise SipError(f"unsupported URI scheme: {scheme}", 416)
        if not rest or _OPAQUE_RE.fullmatch(rest) is None:
            raise SipError(f"bad URI: {text[:80]!r}")
        return scheme, None, rest
    if p is None:
        raise SipError(f"bad {scheme} URI: {text[:80]!r}")
    return scheme, p, rest


def _parse_uri(text: str, *, opaque_ok: bool) -> Uri:
    m = _RURI_FAST_RE.fullmatch(text)
    if m is not None:
        return _sip_uri(*m.groups())
    m = _SIP_URI_RE.fullmatch(text)
    if m is not None:
        return _sip_uri(*m.groups())
    return _uri_from_match(*_uri_match(text.strip(" \t"), opaque_ok=opaque_ok))


def _sip_uri(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: str | None,
    params: str,
    headers: str | None = None,
) -> Uri:
    """The `Uri` of the groups of a `_SIP_URI_RE` or `_RURI_FAST_RE` match (what
    `_uri_from_match` builds from the two-step match of the same text)."""
    if port is not None:
        number = int(port)  # at most 5 digits
        if number > 65535:
            raise SipError(f"port out of range: {port}")
    else:
        number = None
    if params:
        # URI parameters repeat (";lr", ";user=phone", ";transport=tcp"): keep the parsed
        # ones, hand out copies.
        parsed = _URI_PARAMS.get(params)
        if parsed is None:
            if len(_URI_PARAMS) >= 2048:
                _URI_PARAMS.clear()
            parsed = _URI_PARAMS[params] = _split_params(params)
        parsed = parsed.copy()
    else:
        parsed = {}
    return Uri(
        _SCHEMES.get(scheme) or scheme.lower(),
        user,
        password,
        host[1:-1] if host[0] == "[" else host,
        number,
        parsed,
        headers,
    )


_SCHEMES = {"sip": "sip", "sips": "sips", "SIP": "sip", "SIPS": "sips"}
_URI_PARAMS: dict[str, dict[str, str | None]] = {}


def _uri_from_match(scheme: str, p: re.Match[str] | None, rest: str) -> Uri:
    if p is None:
        return Uri(scheme, None, None, "", None, {}, None, rest)
    if scheme == "tel":
        return Uri("tel", p[1], None, "", None, _params(p[2], _UPARAM_RE), None)
    user, password, host, port, params, headers = p.groups()
    return Uri(
        scheme, user, password, _unbracket(host), _port(port), _params(params, _UPARAM_RE), headers
    )


def check_uri(text: str, *, allow_headers: bool = True) -> Callable[[], Uri]:
    """Raise SipError unless `text` is a well-formed URI: sip/sips/tel by their grammar,
    other schemes as opaque text.  With ``allow_headers=False`` a ``?headers`` part of a
    SIP URI is an error too (RFC 3261 §19.1.1: not allowed in a Request-URI, escruri.dat).
    Builds no `Uri`: the cheap check the message parser runs on the Request-URI.  Returns
    what `parse_uri` would, as a function to call if the `Uri` is ever wanted."""
    scheme, p, rest = _uri_match(text, opaque_ok=True)
    if p is None:
        return partial(parse_uri, text)  # raises the 416 when asked
    if scheme != "tel":
        _port(p[4])
        if p[6] is not None and not allow_headers:
            raise SipError(f"headers are not allowed in this URI: {text[:80]!r}")
    return partial(_uri_from_match, scheme, p, rest)


# --------------------------------------------------------------------------------------------
# name-addr / addr-spec (From, To, Contact, Route, Record-Route, P-Asserted-Identity ...)


@dataclass(slots=True)
class NameAddr:
    """``[display] <uri> *(;param)`` or ``addr-spec *(;param)``.

    `display` is the display name with quotes and quoted-pairs removed; `params` are the
    header parameters (those after the URI), never the URI's own.  ``str()`` always
    writes the name-addr form, which is valid whatever the URI holds.
    """

    display: str | None
    uri: Uri
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        text = f"<{self.uri}>"
        if self.display is not None:
            text = f"{quote_display(self.display)} {text}"
        return text + _params_str(self.params)


def _name_addr_match(value: str) -> re.Match[str]:
    m = _NAME_ADDR_RE.fullmatch(value)
    if m is None:
        raise SipError(f"bad name-addr: {value[:80]!r}")
    return m


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr or addr-spec with its header parameters.

    Rejects (400) what RFC 4475 asks a parser to catch: an unterminated quoted string
    (quotbal), whitespace inside ``<...>`` (badaspec), an unquoted display name with
    non-token characters (baddn), and an addr-spec whose URI holds ``?``, ``,`` or a
    parameter list that is not one (regbadct, badinv01).  URIs of schemes other than
    sip/sips/tel are accepted as opaque (unksm2.dat: ``To: isbn:2983792873``).
    """
    m = _NAME_ADDR_FAST_RE.fullmatch(value)
    if m is not None:
        quoted, display, text, params = m.groups()
    else:
        quoted, display, bracketed, spec, params = _name_addr_match(value).groups()
        text = bracketed if bracketed is not None else spec
    if quoted is not None:
        display = quoted[1:-1]
        if "\\" in display:
            display = _QUOTED_PAIR_RE.sub(r"\1", display)
    return NameAddr(display, _parse_uri(text, opaque_ok=True), _params(params))


def name_addr_params_text(value: str) -> str:
    """The header-parameter text (``;tag=...``) of a name-addr/addr-spec, raising
    SipError as `check_name_addr` does; ``_params(text)`` is what `name_addr_params`
    returns."""
    m = _NAME_ADDR_FAST_RE.fullmatch(value)
    if m is not None:
        return m[4]
    return _name_addr_match(value)[5]


def check_name_addr(value: str) -> Callable[[], dict[str, str | None]]:
    """Raise SipError unless `value` is a well-formed name-addr/addr-spec; the URI inside
    is checked only for a scheme and the absence of white space.  The cheap check the
    message parser runs on every From, To and Contact; returns what `name_addr_params`
    would, as a function to call if the parameters are ever wanted."""
    return partial(_params, _name_addr_match(value)[5])


def name_addr_params(value: str) -> dict[str, str | None]:
    """The header parameters of a name-addr/addr-spec (``tag`` ...), checking the value
    as `check_name_addr` does, without parsing the URI."""
    return _params(_name_addr_match(value)[5])


# --------------------------------------------------------------------------------------------
# Via


@dataclass(slots=True)
class Via:
    """One via-parm: ``SIP/2.0/UDP host:port;params``.

    `transport` is upper-cased; `host` holds an IPv6 address without brackets; parameter
    names are lower-cased and values kept as received (``rport`` with no value is
    ``None`` in `params`, so test presence with `has_rport`).
    """

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value, or None when absent or still empty (RFC 3581)."""
        value = self.params.get("rport")
        if value is None or not (value.isascii() and value.isdigit()) or len(value) > 5:
            return None
        return int(value)

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        text = f"{self.protocol}/{self.transport} {_host_str(_unbracket(self.host))}"
        if self.port is not None:
            text += f":{self.port}"
        return text + _params_str(self.params)


def _via_match(value: str) -> re.Match[str]:
    m = _VIA_RE.fullmatch(value)
    if m is None:
        raise SipError(f"bad Via: {value[:80]!r}")
    return m


def parse_via(value: str) -> Via:
    """Parse one via-parm (callers split a comma list first, e.g. with
    ``Headers.get_all``).  LWS around ``/``, ``:``, ``;`` and ``=`` is allowed, as
    wsinv.dat exercises."""
    m = _VIA_FAST_RE.fullmatch(value)
    if m is not None:
        return _via_from_fast(m)
    return _via_from_match(_via_match(value))


def _via_from_match(m: re.Match[str]) -> Via:
    name, version, transport, host, port, params = m.groups()
    return Via(
        transport.upper(), _unbracket(host), _port(port), _params(params), f"{name}/{version}"
    )


def _via_from_fast(m: re.Match[str]) -> Via:
    return via_from_parts(*m.groups())


def via_from_parts(transport: str, host: str, port: str | None, params: str) -> Via:
    """The `Via` of the groups of a `FAST_VIA` match."""
    if port is not None:
        number = int(port)  # at most 5 digits
        if number > 65535:
            raise SipError(f"port out of range: {port}")
    else:
        number = None
    return Via(
        transport.upper(),
        host[1:-1] if host[0] == "[" else host,
        number,
        _split_params(params) if params else {},
    )


def match_via(value: str) -> re.Match[str]:
    """Raise SipError unless `value` is one well-formed via-parm (as `check_via`); the
    match, for `from_match`."""
    m = _VIA_FAST_RE.fullmatch(value)
    if m is None or (m[3] is not None and len(m[3]) == 5 and m[3] > "65535"):
        m = _via_match(value)
        _port(m[5])
    return m


def check_request_uri(text: str) -> None:
    """``check_uri(text, allow_headers=False)``, building nothing."""
    m = _RURI_FAST_RE.fullmatch(text)
    if m is None or (m[5] is not None and len(m[5]) == 5 and m[5] > "65535"):
        check_uri(text, allow_headers=False)


def from_match(m: re.Match[str]) -> Via:
    """The `Via` a `match_via` match stands for."""
    # (compared by identity: hashing a compiled pattern hashes its whole code)
    return _via_from_fast(m) if m.re is _VIA_FAST_RE else _via_from_match(m)


def check_via(value: str) -> Callable[[], Via]:
    """Raise SipError unless `value` is one well-formed via-parm, without building the
    `Via`; returns what `parse_via` would, as a function to call if it is ever wanted."""
    m = _via_match(value)
    _port(m[5])
    return partial(_via_from_match, m)


# --------------------------------------------------------------------------------------------
# CSeq


def parse_cseq(value: str) -> tuple[int, str]:
    """``1*DIGIT LWS Method`` with the number at most 2**32-1 (RFC 3261 §8.1.1.5)."""
    m = _CSEQ_RE.fullmatch(value)
    if m is None:
        raise SipError(f"bad CSeq: {value[:80]!r}")
    return small_int(m[1], MAX_UINT32, "CSeq"), m[2]


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None
