"""SIP digest authentication, server side (RFC 3261 §22, RFC 7616, RFC 8760).

Theory of operation
-------------------
A trunk that is not identified by its source IP proves who it is with HTTP Digest: the
proxy answers 401/407 with one challenge per algorithm (`DigestAuthenticator.challenge`,
SHA-256 first as RFC 8760 §2.4 asks), the client resends the request with an
Authorization / Proxy-Authorization header whose ``response`` is

    HA1 = H(username ":" realm ":" password)
    HA2 = H(method ":" digest-uri)
    response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)

and `DigestAuthenticator.verify` recomputes it.  Sans-I/O: no sockets, no asyncio; the
clock is injected and credentials come from a caller-supplied ``lookup``.

*Credentials at rest* are HA1 values only (`Credential`, `make_credential`): HA1 is all the
server needs, and a leaked table does not reveal the password (it is still
password-equivalent for that realm, hence hidden from ``repr``).

*Nonces are stateless to issue*: ``base64url(timestamp_ms ‖ 12 random octets ‖
HMAC-SHA256(secret, realm ‖ timestamp ‖ random)[:16])``.  Anyone can be handed a
challenge without the server remembering it, so a flood of unauthenticated requests costs
no memory.  On verification the MAC proves the nonce is ours (``hmac.compare_digest``), the
timestamp gives its age.  A forged nonce is refused outright; an expired one whose digest
is otherwise correct is refused with ``stale=True`` so that the client retries with a fresh
nonce without asking its user for the password again (RFC 2617 §3.2.1 / RFC 7616 §3.3:
stale only when the client evidently knows the password).

*Replay protection* needs state, but only for nonces that have already been used
successfully: the highest nonce-count seen per nonce lives in an LRU ``OrderedDict``
bounded by ``max_tracked_nonces``; a request must carry a strictly higher ``nc``.  Entries
whose nonce expired are dropped (cheaply from the LRU end on every success, fully at most
once per ``nonce_ttl``, or on demand with `DigestAuthenticator.prune`).  When the bound
forces out a nonce that is still fresh, forgetting its count would re-open it for replay,
so the authenticator remembers the newest issue time it ever evicted and answers any
untracked nonce issued at or before it as stale: the client simply gets a new nonce.  The
table is per instance: instances sharing a secret must see all uses of a nonce (sticky
routing), or a request captured at one could be replayed at another.

*Nothing is revealed and nothing raises*: `verify` returns an `AuthResult` for any input,
naming what is wrong; an unknown user and a wrong password give the same result (a digest
is computed against a dummy HA1 for the unknown user too, so they also cost the same).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.sip.headers import parse_uri, quote_display, split_list
from gateway.sip.message import Request

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthResult",
    "Credential",
    "DigestAuthenticator",
    "compute_response",
    "credentials_username",
    "ha1",
    "make_credential",
]

# RFC 8760 names -> hashlib names.  The "-sess" variants are not offered: SIP UAs rarely
# implement them and they add nothing for a proxy that never hands out HA1.
_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:  # SHA-512/256 depends on the OpenSSL build
        return False
    return True


SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(
    alg for alg, name in _HASHLIB_NAMES.items() if _available(name)
)

_HEX_LEN = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}
_DUMMY_HA1 = {alg: "0" * n for alg, n in _HEX_LEN.items()}

_MAX_HEADER = 8192  # no honest Authorization header comes near this; caps parsing work
_CLOCK_SKEW_MS = 5_000  # tolerated for nonces "from the future" (clock steps, peer nodes)
_TS = struct.Struct(">Q")
_RAND_LEN = 12
_MAC_LEN = 16
_NONCE_RAW_LEN = _TS.size + _RAND_LEN + _MAC_LEN  # 36 octets -> 48 base64 chars, no padding
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{48}")
_NONCE_LABEL = b"sipcc digest nonce\x00"
_OPAQUE_LABEL = b"sipcc digest opaque\x00"

# auth-param = token LWS "=" LWS ( token / quoted-string ); unquoted values are taken
# loosely (anything but white space, quote and comma) because UAs send unquoted nc,
# algorithm and sometimes qop, and being strict there would buy nothing.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SCHEME_RE = re.compile(rf"[ \t]*({_TOKEN})(?:[ \t]+(.*))?", re.S)
_PARAM_RE = re.compile(rf'({_TOKEN})[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^ \t",]+))', re.S)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")


def _b(text: str) -> bytes:
    """Octets of header text.  The message layer decodes with surrogateescape, so that is
    how the original octets come back; a lone surrogate it could not have produced falls
    back to surrogatepass rather than raising."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _canonical_algorithm(algorithm: str) -> str:
    alg = algorithm.upper()
    if alg not in SUPPORTED_ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}")
    return alg


def _h(algorithm: str, data: bytes) -> str:
    return hashlib.new(_HASHLIB_NAMES[algorithm], data).hexdigest()


# --------------------------------------------------------------------------------------------
# Credentials and the digest computation


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Hex ``H(username:realm:password)`` for `algorithm` (case-insensitive)."""
    alg = _canonical_algorithm(algorithm)
    return _h(alg, b":".join((_b(username), _b(realm), _b(password))))


@dataclass(frozen=True, slots=True)
class Credential:
    """A stored credential: HA1 per algorithm (keys are algorithm names, e.g. "SHA-256").

    HA1 lets anyone authenticate in this realm, so it is kept out of ``repr`` (and thus
    out of logs and tracebacks)."""

    username: str
    realm: str
    ha1: dict[str, str] = field(repr=False)


def make_credential(
    username: str, realm: str, password: str, algorithms: Iterable[str] = ("SHA-256", "MD5")
) -> Credential:
    """Hash `password` for each algorithm; the plaintext is not kept."""
    return Credential(
        username,
        realm,
        {_canonical_algorithm(a): ha1(username, realm, password, a) for a in algorithms},
    )


def compute_response(
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    algorithm: str = "MD5",
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The digest ``response`` (RFC 7616 §3.4.1) from a stored HA1.

    With `qop` (only "auth" is meaningful here) ``H(HA1:nonce:nc:cnonce:qop:HA2)``;
    without it the RFC 2069 form ``H(HA1:nonce:HA2)``."""
    alg = _canonical_algorithm(algorithm)
    ha2 = _h(alg, _b(method) + b":" + _b(uri))
    if qop is None:
        parts = [ha1_hex.lower(), nonce, ha2]
    else:
        parts = [ha1_hex.lower(), nonce, nc or "", cnonce or "", qop, ha2]
    return _h(alg, b":".join(_b(p) for p in parts))


# --------------------------------------------------------------------------------------------
# Parsing an Authorization / Proxy-Authorization value


def _malformed(what: str) -> str:
    return f"malformed Authorization: {what}"


def _parse_credentials(value: object) -> dict[str, str] | str:
    """auth-params of a Digest credentials value, names lower-cased and quoted strings
    unescaped; or a reason string saying what is wrong.  Never raises."""
    if not isinstance(value, str):
        return _malformed("not text")
    if len(value) > _MAX_HEADER:
        return _malformed("too long")
    m = _SCHEME_RE.fullmatch(value)
    if m is None:
        return _malformed("no auth scheme" if not value.strip(" \t") else "bad auth scheme")
    if m[1].lower() != "digest":
        return _malformed(f"scheme is not Digest: {m[1][:20]!r}")
    params: dict[str, str] = {}
    # split_list respects quoted strings, so a comma inside "..." stays in its value.
    for element in split_list(m[2] or ""):
        if not element:
            continue  # #rule lists may hold empty elements
        p = _PARAM_RE.fullmatch(element)
        if p is None:
            return _malformed(f"bad parameter {element[:40]!r}")
        name = p[1].lower()
        if name in params:
            # two values for one name would let a middlebox and us read different things
            return _malformed(f"duplicate {name}")
        params[name] = _QUOTED_PAIR_RE.sub(r"\1", p[2]) if p[2] is not None else p[3]
    if not params:
        return _malformed("no parameters")
    return params


def credentials_username(value: object) -> str | None:
    """The username a Digest credentials value claims (not verified), or None; never raises.
    For counting failures per username (gateway/guard.py)."""
    params = _parse_credentials(value)
    return params.get("username") if isinstance(params, dict) else None


# --------------------------------------------------------------------------------------------
# The authenticator


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of `DigestAuthenticator.verify`.

    `username` is set only when the digest proved knowledge of the credential (``ok``,
    stale nonce, replayed count); `stale` asks the caller to challenge again with
    ``challenge(stale=True)``; `reason` is for logs, never for the wire."""

    ok: bool
    username: str | None
    stale: bool
    reason: str


def _fail(reason: str) -> AuthResult:
    return AuthResult(False, None, False, reason)


_OK = "ok"
_BAD_CREDENTIALS = "bad credentials"
_STALE = "stale nonce"
_REPLAYED = "replayed nonce count"


class DigestAuthenticator:
    """Issues digest challenges and verifies credentials for one realm.

    Not thread-safe: like the rest of gateway.sip it is driven from one event loop."""

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        clock: Callable[[], float] = time.time,
        max_tracked_nonces: int = 100_000,
        allow_no_qop: bool = False,
    ) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        if not 0 < nonce_ttl < 1e9:  # also refuses NaN and infinity
            raise ValueError("nonce_ttl must be a positive number of seconds")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        algs = tuple(_canonical_algorithm(a) for a in algorithms)
        if not algs or len(set(algs)) != len(algs):
            raise ValueError("algorithms must be a non-empty list without repeats")
        self.realm = realm
        self._quoted_realm = quote_display(realm)  # also rejects CR/LF in the realm
        self._secret = bytes(secret)
        self.nonce_ttl = nonce_ttl
        self.algorithms = algs
        self.allow_no_qop = allow_no_qop
        self._clock = clock
        self._max_tracked = max_tracked_nonces
        self._ttl_ms = int(nonce_ttl * 1000)
        self._realm_b = _b(realm)
        self.opaque = base64.urlsafe_b64encode(
            hmac.digest(self._secret, _OPAQUE_LABEL + self._realm_b, "sha256")[:12]
        ).decode()
        # nonce (ts ‖ random) -> [highest nc, issue time ms]; LRU order, oldest first.
        self._seen: OrderedDict[bytes, list[int]] = OrderedDict()
        # Newest issue time of a still-fresh nonce the bound forced out (see module doc).
        self._evicted_up_to_ms = -1
        self._next_sweep_ms = 0

    # -- nonces --------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return min(max(int(self._clock() * 1000), 0), 2**64 - 1)

    def _mac(self, body: bytes) -> bytes:
        # The realm is inside the MAC so that two realms sharing a secret cannot accept
        # each other's nonces.
        mac = hmac.digest(self._secret, _NONCE_LABEL + self._realm_b + b"\x00" + body, "sha256")
        return mac[:_MAC_LEN]

    def _new_nonce(self) -> str:
        # Never issue a nonce at or before the eviction watermark: it would be answered
        # stale on first use and the client would loop on a frozen or coarse clock.
        issued = max(self._now_ms(), self._evicted_up_to_ms + 1)
        body = _TS.pack(issued) + secrets.token_bytes(_RAND_LEN)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode()

    def _open_nonce(self, nonce: str) -> tuple[bytes, int] | None:
        """(key, issue time ms) of a nonce we issued, or None for anything else."""
        if _NONCE_RE.fullmatch(nonce) is None:
            return None
        raw = base64.urlsafe_b64decode(nonce)
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return body, _TS.unpack_from(body)[0]

    def _fresh(self, issued_ms: int, now_ms: int) -> bool:
        return -_CLOCK_SKEW_MS <= now_ms - issued_ms <= self._ttl_ms

    # -- challenges ----------------------------------------------------------------------

    def challenge(self, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm in preference
        order.  They share one nonce: the nonce is not bound to an algorithm, and the
        client answers only one of them."""
        nonce = self._new_nonce()
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm={self._quoted_realm}, nonce="{nonce}", opaque="{self.opaque}", '
            f'algorithm={alg}, qop="auth"{tail}'
            for alg in self.algorithms
        ]

    # -- verification --------------------------------------------------------------------

    def verify(
        self,
        method: str,
        header_value: str,
        lookup: Callable[[str, str], Credential | None],
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check one Authorization / Proxy-Authorization value for a request `method`.

        ``lookup(username, realm)`` returns the stored credential or None; it is called
        only for well-formed credentials carrying a genuine nonce (exceptions it raises
        propagate: they are the caller's, not the input's).  With `request_uri` the
        ``uri`` parameter must name the same URI (RFC 3261 §22.4)."""
        params = _parse_credentials(header_value)
        if isinstance(params, str):
            return _fail(params)
        if not isinstance(method, str) or not method:
            return _fail("bad method")

        for name in ("username", "realm", "nonce", "uri", "response"):
            if name not in params:
                return _fail(_malformed(f"missing {name}"))
        username, nonce, uri = params["username"], params["nonce"], params["uri"]
        if params["realm"] != self.realm:
            return _fail("wrong realm")

        # RFC 3261 §22.4 / RFC 7616 §3.4: no algorithm parameter means MD5.
        algorithm = params.get("algorithm", "MD5")
        # ASCII only: str.upper() maps e.g. "\u017f" to "S", which is not a spelling of a name.
        algorithm = algorithm.upper() if algorithm.isascii() else ""
        if algorithm not in self.algorithms:
            return _fail(f"unsupported algorithm: {params.get('algorithm', 'MD5')[:20]!r}")
        if params.get("userhash", "false").lower() != "false":
            return _fail("userhash not supported")

        qop = params.get("qop")
        nc_text = cnonce = None
        nc = 0
        if qop is None:
            # RFC 2069 form: no client nonce and no count, so no replay protection within
            # the nonce lifetime.  Off unless the operator accepts that.
            if not self.allow_no_qop:
                return _fail(_malformed("missing qop"))
        else:
            if qop.lower() != "auth":
                return _fail(f"unsupported qop: {qop[:20]!r}")
            for name in ("cnonce", "nc"):
                if not params.get(name):
                    return _fail(_malformed(f"missing {name}"))
            cnonce, nc_text = params["cnonce"], params["nc"]
            if _NC_RE.fullmatch(nc_text) is None or (nc := int(nc_text, 16)) == 0:
                return _fail(_malformed("bad nc"))

        response = params["response"]
        if _HEX_RE.fullmatch(response) is None or len(response) != _HEX_LEN[algorithm]:
            return _fail(_malformed("bad response"))
        if request_uri is not None and not _same_uri(uri, request_uri):
            return _fail("uri mismatch")

        opened = self._open_nonce(nonce)
        if opened is None:
            return _fail("invalid nonce")
        key, issued_ms = opened
        opaque = params.get("opaque")
        if opaque is not None and opaque != self.opaque:
            return _fail("opaque mismatch")

        # Unknown user, a credential without this algorithm and a wrong password must be
        # indistinguishable: all three compute a digest and fail with the same reason.
        credential = lookup(username, self.realm)
        stored = None
        if (
            isinstance(credential, Credential)
            and credential.username == username
            and credential.realm == self.realm
        ):
            stored = {k.upper(): v for k, v in credential.ha1.items()}.get(algorithm)
        if not isinstance(stored, str) or _HEX_RE.fullmatch(stored) is None:
            stored = None
        expected = compute_response(
            stored or _DUMMY_HA1[algorithm],
            nonce,
            method,
            uri,
            algorithm=algorithm,
            nc=nc_text,
            cnonce=cnonce,
            qop=qop,
        )
        matches = hmac.compare_digest(expected.encode(), response.lower().encode())
        if stored is None or not matches:
            return _fail(_BAD_CREDENTIALS)

        now_ms = self._now_ms()
        if not self._fresh(issued_ms, now_ms):
            self._seen.pop(key, None)
            return AuthResult(False, username, True, _STALE)
        if qop is None:
            return AuthResult(True, username, False, _OK)
        return self._count(key, issued_ms, nc, now_ms, username)

    def verify_request(
        self,
        request: Request,
        lookup: Callable[[str, str], Credential | None],
        *,
        proxy: bool = False,
    ) -> AuthResult:
        """Verify the credentials of `request` for this realm: Proxy-Authorization when
        `proxy`, else Authorization.  A request may carry credentials for several realms
        (RFC 3261 §22.3); only ours are tried, first success wins."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        first: AuthResult | None = None
        for value in request.headers.get_all(header):
            params = _parse_credentials(value)
            if isinstance(params, dict) and params.get("realm") != self.realm:
                continue
            result = self.verify(request.method, value, lookup, request_uri=request.uri)
            if result.ok:
                return result
            first = first or result
        return first or _fail(f"no {header} for realm")

    # -- replay table --------------------------------------------------------------------

    def _count(self, key: bytes, issued_ms: int, nc: int, now_ms: int, username: str) -> AuthResult:
        seen = self._seen
        entry = seen.get(key)
        if entry is None:
            if issued_ms <= self._evicted_up_to_ms:
                # Possibly a nonce whose count we were forced to forget: refuse as stale
                # rather than accept a count we can no longer check.
                return AuthResult(False, username, True, _STALE)
            seen[key] = [nc, issued_ms]
        else:
            if nc <= entry[0]:
                return AuthResult(False, username, False, _REPLAYED)
            entry[0] = nc
            seen.move_to_end(key)
        self._expire(now_ms)
        while len(seen) > self._max_tracked:
            _, (_, old_issued) = seen.popitem(last=False)
            if self._fresh(old_issued, now_ms):
                self._evicted_up_to_ms = max(self._evicted_up_to_ms, old_issued)
        return AuthResult(True, username, False, _OK)

    def _expire(self, now_ms: int) -> None:
        """Drop expired entries from the LRU end (amortised O(1)), and sweep the whole
        table at most once per nonce lifetime for expired entries stuck behind live ones."""
        seen = self._seen
        while seen:
            issued = next(iter(seen.values()))[1]
            if self._fresh(issued, now_ms):
                break
            seen.popitem(last=False)
        if now_ms >= self._next_sweep_ms:
            self._prune(now_ms)
            self._next_sweep_ms = now_ms + self._ttl_ms

    def prune(self) -> int:
        """Forget the counts of every expired nonce now; returns how many were dropped.
        Optional: the table is swept on its own at most once per nonce lifetime."""
        return self._prune(self._now_ms())

    def _prune(self, now_ms: int) -> int:
        dead = [k for k, (_, issued) in self._seen.items() if not self._fresh(issued, now_ms)]
        for k in dead:
            del self._seen[k]
        return len(dead)

    @property
    def tracked_nonces(self) -> int:
        """How many nonce counts are remembered (for metrics and tests)."""
        return len(self._seen)


def _same_uri(digest_uri: str, request_uri: str) -> bool:
    """The digest-uri names the Request-URI: same text, or equivalent SIP URIs by RFC 3261
    §19.1.4 (a UA may re-case the host or re-escape the user part)."""
    if digest_uri == request_uri:
        return True
    try:
        return parse_uri(digest_uri).equivalent(parse_uri(request_uri))
    except ValueError:  # SipError, or anything else a hostile URI could provoke
        return False
