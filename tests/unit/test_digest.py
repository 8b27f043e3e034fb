"""SIP digest authentication of trunks (gateway.sip.digest).

Rule A8: a trunk is identified by its source IP or authenticated by digest.  The expected
digests here are computed independently with hashlib from the RFC 7616 formulas, and the
module is checked against the published RFC 7616 §3.9.1 example.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.digest import (
    SUPPORTED_ALGORITHMS,
    AuthResult,
    Credential,
    DigestAuthenticator,
    compute_response,
    ha1,
    make_credential,
)
from gateway.sip.message import Headers, Request

REALM = "sip.example.net"
SECRET = b"0123456789abcdef0123456789abcdef"
USER, PASSWORD = "trunk-42", "s3cr3t pa$$"
URI = "sip:+15551234567@sip.example.net;user=phone"
HASHLIB = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def H(algorithm: str, text: str) -> str:  # named as in the RFC
    return hashlib.new(HASHLIB[algorithm], text.encode()).hexdigest()


def challenge_params(value: str) -> dict[str, str]:
    """A deliberately naive parser of our own values (they hold no escapes)."""
    return {
        m[1].lower(): m[2] if m[2] is not None else m[3]
        for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^",\s]+))', value)
    }


def authorization(
    challenge: str,
    *,
    username: str = USER,
    password: str = PASSWORD,
    method: str = "INVITE",
    uri: str = URI,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    realm: str | None = None,
    algorithm: str | None = None,
) -> str:
    """What a UAC sends back, computed with hashlib (RFC 7616 §3.4.1)."""
    ch = challenge_params(challenge)
    alg = algorithm or ch["algorithm"]
    realm = realm if realm is not None else ch["realm"]
    nonce, nc_hex = ch["nonce"], f"{nc:08x}"
    ha1_ = H(alg, f"{username}:{realm}:{password}")
    ha2 = H(alg, f"{method}:{uri}")
    response = H(alg, f"{ha1_}:{nonce}:{nc_hex}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={alg}, cnonce="{cnonce}", opaque="{ch["opaque"]}", '
        f"qop=auth, nc={nc_hex}"
    )


def store(*creds: Credential):
    table = {(c.username, c.realm): c for c in creds}
    return lambda username, realm: table.get((username, realm))


LOOKUP = store(make_credential(USER, REALM, PASSWORD, algorithms=("SHA-256", "MD5")))


def make_auth(**kwargs) -> tuple[DigestAuthenticator, Clock]:
    clock = kwargs.pop("clock", None) or Clock()
    return DigestAuthenticator(REALM, SECRET, clock=clock, **kwargs), clock


def first_challenge(auth: DigestAuthenticator, algorithm: str = "SHA-256") -> str:
    return next(v for v in auth.challenge() if f"algorithm={algorithm}," in v)


# --------------------------------------------------------------------------------------------
# The digest computation


RFC7616 = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    ("algorithm", "published"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, published: str) -> None:
    e = RFC7616
    stored = ha1(e["username"], e["realm"], e["password"], algorithm)
    assert stored == H(algorithm, "Mufasa:http-auth@example.org:Circle of Life")
    response = compute_response(
        stored,
        e["nonce"],
        "GET",
        "/dir/index.html",
        algorithm=algorithm,
        nc="00000001",
        cnonce=e["cnonce"],
        qop="auth",
    )
    assert response == published


@pytest.mark.rule("A8")
def test_rfc2069_response_without_qop() -> None:
    stored = ha1("u", "r", "p", "md5")
    ha2 = H("MD5", "REGISTER:sip:r")
    assert compute_response(stored, "n", "REGISTER", "sip:r") == H("MD5", f"{stored}:n:{ha2}")


@pytest.mark.rule("A8")
def test_make_credential_keeps_only_ha1() -> None:
    cred = make_credential(USER, REALM, PASSWORD)
    assert cred.ha1 == {
        "SHA-256": H("SHA-256", f"{USER}:{REALM}:{PASSWORD}"),
        "MD5": H("MD5", f"{USER}:{REALM}:{PASSWORD}"),
    }
    assert [f.name for f in dataclasses.fields(cred)] == ["username", "realm", "ha1"]
    assert PASSWORD not in repr(cred)
    assert cred.ha1["MD5"] not in repr(cred)  # HA1 is password-equivalent: keep it out of logs
    with pytest.raises(ValueError):
        make_credential(USER, REALM, PASSWORD, algorithms=("SHA-1",))


# --------------------------------------------------------------------------------------------
# Challenges


@pytest.mark.rule("A8")
def test_challenge_one_value_per_algorithm_sha256_first() -> None:
    auth, _ = make_auth()
    values = auth.challenge()
    assert [challenge_params(v)["algorithm"] for v in values] == ["SHA-256", "MD5"]
    for v in values:
        assert re.fullmatch(
            r'Digest realm="sip\.example\.net", nonce="[A-Za-z0-9_-]+", opaque="[A-Za-z0-9_-]+", '
            r'algorithm=(SHA-256|MD5), qop="auth"',
            v,
        ), v
    assert all("stale" not in v for v in values)
    assert all(v.endswith(", stale=true") for v in auth.challenge(stale=True))
    # stateless nonces are still unique
    assert challenge_params(auth.challenge()[0])["nonce"] != challenge_params(values[0])["nonce"]


@pytest.mark.rule("A8")
def test_challenge_quotes_realm() -> None:
    auth = DigestAuthenticator('a "quoted" realm', SECRET)
    assert auth.challenge()[0].startswith(r'Digest realm="a \"quoted\" realm", ')


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": b"short"},
        {"algorithms": ("SHA-1",)},
        {"algorithms": ()},
        {"algorithms": ("MD5", "md5")},
        {"nonce_ttl": 0},
        {"nonce_ttl": float("inf")},
        {"max_tracked_nonces": 0},
        {"realm": "bad\r\nrealm"},
    ],
)
def test_constructor_rejects_bad_configuration(kwargs: dict) -> None:
    args = {"realm": REALM, "secret": SECRET} | kwargs
    with pytest.raises(ValueError):
        DigestAuthenticator(args.pop("realm"), args.pop("secret"), **args)


# --------------------------------------------------------------------------------------------
# Full exchanges


@pytest.mark.rule("A8")
@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_full_exchange(algorithm: str) -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth, algorithm))
    result = auth.verify("INVITE", header, LOOKUP, request_uri=URI)
    assert result == AuthResult(True, USER, False, "ok")


@pytest.mark.rule("A8")
@pytest.mark.skipif("SHA-512-256" not in SUPPORTED_ALGORITHMS, reason="platform: this hashlib has no SHA-512/256")
def test_full_exchange_sha512_256() -> None:
    auth, _ = make_auth(algorithms=("SHA-512-256",))
    lookup = store(make_credential(USER, REALM, PASSWORD, algorithms=("SHA-512-256",)))
    header = authorization(auth.challenge()[0])
    assert auth.verify("INVITE", header, lookup, request_uri=URI).ok


@pytest.mark.rule("A8")
def test_verify_request_picks_our_realm_and_header() -> None:
    auth, _ = make_auth()
    other = authorization(first_challenge(auth), realm="elsewhere")
    for proxy, name in ((False, "Authorization"), (True, "Proxy-Authorization")):
        ours = authorization(first_challenge(auth))
        req = Request("INVITE", URI, Headers([(name, other), (name, ours)]))
        assert auth.verify_request(req, LOOKUP, proxy=proxy) == AuthResult(True, USER, False, "ok")
    req = Request("INVITE", URI, Headers([("Authorization", other)]))
    result = auth.verify_request(req, LOOKUP)
    assert not result.ok and result.reason == "no Authorization for realm"
    # credentials in the wrong header do not count
    req = Request("INVITE", URI, Headers([("Authorization", authorization(first_challenge(auth)))]))
    assert not auth.verify_request(req, LOOKUP, proxy=True).ok


@pytest.mark.rule("A8")
def test_missing_algorithm_means_md5() -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth, "MD5")).replace(", algorithm=MD5", "")
    assert auth.verify("INVITE", header, LOOKUP).ok
    sha_only, _ = make_auth(algorithms=("SHA-256",))
    header = authorization(sha_only.challenge()[0], algorithm="MD5").replace(", algorithm=MD5", "")
    assert sha_only.verify("INVITE", header, LOOKUP).reason == "unsupported algorithm: 'MD5'"


@pytest.mark.rule("A8")
def test_header_syntax_variants_are_accepted() -> None:
    """Any parameter order, any case of names, scheme and algorithm, quoted nc/qop,
    escapes and commas inside quoted strings, uppercase hex response."""
    username = 'odd "user", with comma\\'
    lookup = store(make_credential(username, REALM, PASSWORD))
    auth, _ = make_auth()
    ch = challenge_params(first_challenge(auth))
    nonce, alg = ch["nonce"], "SHA-256"
    uri = "sip:a,b@sip.example.net"
    ha2 = H(alg, f"INVITE:{uri}")
    response = H(alg, f"{H(alg, f'{username}:{REALM}:{PASSWORD}')}:{nonce}:00000001:c,n:auth:{ha2}")
    escaped = username.replace("\\", "\\\\").replace('"', '\\"')
    header = (
        f'dIgEsT  QOP="auth" ,NC="00000001",Algorithm=sha-256, RESPONSE="{response.upper()}",'
        f' cnonce="c,n",uri = "{uri}", Nonce="{nonce}",,Realm="{REALM}", USERNAME="{escaped}"'
    )
    result = auth.verify("INVITE", header, lookup, request_uri=uri)
    assert result.ok and result.username == username


@pytest.mark.rule("A8")
def test_equivalent_request_uri_is_accepted() -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth), uri="sip:bob@SIP.Example.NET")
    assert auth.verify("INVITE", header, LOOKUP, request_uri="sip:bob@sip.example.net").ok


@pytest.mark.rule("A8")
def test_rfc2069_style_only_when_allowed() -> None:
    for allowed in (False, True):
        auth, _ = make_auth(allow_no_qop=allowed)
        nonce = challenge_params(first_challenge(auth))["nonce"]
        ha1_ = H("SHA-256", f"{USER}:{REALM}:{PASSWORD}")
        response = H("SHA-256", f"{ha1_}:{nonce}:{H('SHA-256', f'INVITE:{URI}')}")
        header = (
            f'Digest username="{USER}", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
            f'response="{response}", algorithm=SHA-256'
        )
        result = auth.verify("INVITE", header, LOOKUP, request_uri=URI)
        if allowed:
            assert result == AuthResult(True, USER, False, "ok")
        else:
            assert result == AuthResult(False, None, False, "malformed Authorization: missing qop")


# --------------------------------------------------------------------------------------------
# Nonces: expiry and forgery


@pytest.mark.rule("A8")
def test_expired_nonce_is_stale_and_fresh_one_works() -> None:
    auth, clock = make_auth(nonce_ttl=60)
    challenge = first_challenge(auth)
    clock.now += 60
    assert auth.verify("INVITE", authorization(challenge, nc=1), LOOKUP).ok  # still alive
    clock.now += 1
    result = auth.verify("INVITE", authorization(challenge, nc=2), LOOKUP)
    assert result == AuthResult(False, USER, True, "stale nonce")
    # the client retries with the nonce of a stale=true challenge, same password
    retry = auth.challenge(stale=True)[0]
    assert retry.endswith(", stale=true")
    assert auth.verify("INVITE", authorization(retry), LOOKUP).ok


@pytest.mark.rule("A8")
def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    """stale=true tells the client its password is right (RFC 2617 §3.2.1), so a wrong
    one must not get it, or the client would retry without asking its user."""
    auth, clock = make_auth(nonce_ttl=60)
    header = authorization(first_challenge(auth), password="wrong")
    clock.now += 61
    assert auth.verify("INVITE", header, LOOKUP) == AuthResult(
        False, None, False, "bad credentials"
    )


@pytest.mark.rule("A8")
def test_nonce_from_the_future_is_stale() -> None:
    clock = Clock()
    auth, _ = make_auth(clock=clock)
    header = authorization(first_challenge(auth))
    clock.now -= 3600  # the clock stepped back an hour
    assert auth.verify("INVITE", header, LOOKUP).stale


def forge(nonce: str) -> list[str]:
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[0] ^= 1  # shift the timestamp: the MAC no longer matches
    tampered_ts = base64.urlsafe_b64encode(bytes(raw)).decode()
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[-1] ^= 0x80
    tampered_mac = base64.urlsafe_b64encode(bytes(raw)).decode()
    return [tampered_ts, tampered_mac, "A" * 48, "abc", nonce + "A", nonce[:-1] + "=", ""]


@pytest.mark.rule("A8")
def test_forged_nonces_are_refused_not_stale() -> None:
    auth, clock = make_auth()
    nonce = challenge_params(first_challenge(auth))["nonce"]
    other_secret = DigestAuthenticator(REALM, b"another secret of 32 bytes......", clock=clock)
    other_realm = DigestAuthenticator("other.example.net", SECRET, clock=clock)
    candidates = [
        *forge(nonce),
        challenge_params(other_secret.challenge()[0])["nonce"],
        challenge_params(other_realm.challenge()[0])["nonce"],
    ]
    for forged in candidates:
        challenge = re.sub(r'nonce="[^"]*"', f'nonce="{forged}"', first_challenge(auth))
        result = auth.verify("INVITE", authorization(challenge), LOOKUP)
        assert result == AuthResult(False, None, False, "invalid nonce"), forged
    clock.now += 10_000  # even once "expired", a forged nonce is never stale
    forged = forge(challenge_params(first_challenge(auth))["nonce"])[0]
    header = authorization(re.sub(r'nonce="[^"]*"', f'nonce="{forged}"', first_challenge(auth)))
    assert auth.verify("INVITE", header, LOOKUP) == AuthResult(False, None, False, "invalid nonce")


@pytest.mark.rule("A8")
def test_opaque_must_match_when_present() -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth))
    assert auth.verify(
        "INVITE", re.sub(r'opaque="[^"]*"', 'opaque="x"', header), LOOKUP
    ).reason == ("opaque mismatch")
    assert auth.verify("INVITE", re.sub(r', opaque="[^"]*"', "", header), LOOKUP).ok


# --------------------------------------------------------------------------------------------
# Replay protection


@pytest.mark.rule("A8")
def test_replayed_nonce_count_is_refused_higher_accepted() -> None:
    auth, _ = make_auth()
    challenge = first_challenge(auth)

    def attempt(nc: int) -> AuthResult:
        return auth.verify("INVITE", authorization(challenge, nc=nc), LOOKUP, request_uri=URI)

    assert attempt(1).ok
    assert attempt(1) == AuthResult(False, USER, False, "replayed nonce count")
    assert attempt(2).ok
    assert attempt(1).reason == "replayed nonce count"
    assert attempt(2).reason == "replayed nonce count"
    assert attempt(7).ok  # counts may skip, never go back
    assert attempt(5).reason == "replayed nonce count"
    # a byte-identical replay of an accepted request is refused too
    header = authorization(challenge, nc=8)
    assert auth.verify("INVITE", header, LOOKUP).ok
    assert auth.verify("INVITE", header, LOOKUP).reason == "replayed nonce count"
    # another nonce has its own count
    assert auth.verify("INVITE", authorization(first_challenge(auth), nc=1), LOOKUP).ok


@pytest.mark.rule("A8")
def test_failed_attempts_do_not_consume_counts() -> None:
    auth, _ = make_auth()
    challenge = first_challenge(auth)
    assert not auth.verify("INVITE", authorization(challenge, password="x"), LOOKUP).ok
    assert auth.tracked_nonces == 0
    assert auth.verify("INVITE", authorization(challenge, nc=1), LOOKUP).ok


@pytest.mark.rule("A8")
def test_lru_bound_holds_and_evicted_nonce_is_not_reopened() -> None:
    auth, clock = make_auth(max_tracked_nonces=3)
    challenges = []
    for i in range(10):
        clock.now += 0.01
        challenges.append(first_challenge(auth))
        assert auth.verify("INVITE", authorization(challenges[-1]), LOOKUP).ok
        assert auth.tracked_nonces == min(i + 1, 3)
    # the newest nonces are still tracked: replay caught
    assert auth.verify("INVITE", authorization(challenges[-1]), LOOKUP).reason == (
        "replayed nonce count"
    )
    # an evicted one cannot be replayed either: its count is forgotten, so it is stale
    result = auth.verify("INVITE", authorization(challenges[0]), LOOKUP)
    assert result == AuthResult(False, USER, True, "stale nonce")
    # and a brand-new nonce still works, even on a clock that has not moved
    assert auth.verify("INVITE", authorization(first_challenge(auth)), LOOKUP).ok
    assert auth.tracked_nonces == 3


@pytest.mark.rule("A8")
def test_lru_keeps_recently_used_nonce() -> None:
    auth, _ = make_auth(max_tracked_nonces=2)
    a, b, c = (first_challenge(auth) for _ in range(3))
    assert auth.verify("INVITE", authorization(a, nc=1), LOOKUP).ok
    assert auth.verify("INVITE", authorization(b, nc=1), LOOKUP).ok
    assert auth.verify("INVITE", authorization(a, nc=2), LOOKUP).ok  # a is now most recent
    assert auth.verify("INVITE", authorization(c, nc=1), LOOKUP).ok  # evicts b
    assert auth.verify("INVITE", authorization(a, nc=3), LOOKUP).ok
    assert auth.verify("INVITE", authorization(a, nc=3), LOOKUP).reason == "replayed nonce count"
    # b's count was forgotten while its nonce was alive: stale, not replayable
    assert auth.verify("INVITE", authorization(b, nc=1), LOOKUP).stale
    # the clock has not moved, yet a nonce issued now is trackable and works
    assert auth.verify("INVITE", authorization(first_challenge(auth)), LOOKUP).ok


@pytest.mark.rule("A8")
def test_expired_entries_are_dropped() -> None:
    auth, clock = make_auth(nonce_ttl=60)
    for _ in range(5):
        assert auth.verify("INVITE", authorization(first_challenge(auth)), LOOKUP).ok
    assert auth.tracked_nonces == 5
    clock.now += 30
    assert auth.prune() == 0
    clock.now += 31
    # the next success drops the expired counts on its own
    assert auth.verify("INVITE", authorization(first_challenge(auth)), LOOKUP).ok
    assert auth.tracked_nonces == 1
    clock.now += 61
    assert auth.prune() == 1 and auth.tracked_nonces == 0


# --------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.rule("A8")
def test_wrong_realm_uri_method() -> None:
    auth, _ = make_auth()
    ch = first_challenge(auth)
    assert auth.verify("INVITE", authorization(ch, realm="evil.example"), LOOKUP).reason == (
        "wrong realm"
    )
    header = authorization(ch, uri="sip:other@sip.example.net")
    assert auth.verify("INVITE", header, LOOKUP, request_uri=URI) == AuthResult(
        False, None, False, "uri mismatch"
    )
    # a response computed for REGISTER does not authorize an INVITE
    header = authorization(ch, method="REGISTER")
    assert auth.verify("INVITE", header, LOOKUP, request_uri=URI) == AuthResult(
        False, None, False, "bad credentials"
    )


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    "algorithm", ["MD5-sess", "SHA-256-sess", "SHA-1", "SHA-512-256", "ſha-256"]
)
def test_unsupported_algorithm(algorithm: str) -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth), algorithm="SHA-256").replace(
        "algorithm=SHA-256", f"algorithm={algorithm}"
    )
    result = auth.verify("INVITE", header, LOOKUP)
    assert result == AuthResult(False, None, False, f"unsupported algorithm: {algorithm!r}")


@pytest.mark.rule("A8")
def test_unsupported_qop_and_userhash() -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth))
    assert auth.verify("INVITE", header.replace("qop=auth", "qop=auth-int"), LOOKUP).reason == (
        "unsupported qop: 'auth-int'"
    )
    assert auth.verify("INVITE", header + ", userhash=true", LOOKUP).reason == (
        "userhash not supported"
    )


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    "name", ["username", "realm", "nonce", "uri", "response", "cnonce", "nc", "qop"]
)
def test_missing_fields(name: str) -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth))
    stripped = re.sub(rf'(, )?\b{name}=("[^"]*"|[^,]*)', "", header)
    assert stripped != header
    result = auth.verify("INVITE", stripped, LOOKUP)
    assert result == AuthResult(False, None, False, f"malformed Authorization: missing {name}")


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "malformed Authorization: no auth scheme"),
        ("   ", "malformed Authorization: no auth scheme"),
        ("Digest", "malformed Authorization: no parameters"),
        ("Digest ,, ,", "malformed Authorization: no parameters"),
        ("Basic dXNlcjpwYXNz", "malformed Authorization: scheme is not Digest: 'Basic'"),
        (
            'Digest username="unterminated',
            "malformed Authorization: bad parameter 'username=\"unterminated'",
        ),
        ("Digest username", "malformed Authorization: bad parameter 'username'"),
        ("Digest =x", "malformed Authorization: bad parameter '=x'"),
        (
            'Digest username="a" realm="b"',
            'malformed Authorization: bad parameter \'username="a" realm="b"\'',
        ),
        ('Digest username="a", USERNAME="b"', "malformed Authorization: duplicate username"),
        ("=Digest", "malformed Authorization: bad auth scheme"),
        ("Digest " + "a=b, " * 3000, "malformed Authorization: too long"),
    ],
)
def test_garbage_header_values(value: str, reason: str) -> None:
    auth, _ = make_auth()
    assert auth.verify("INVITE", value, LOOKUP) == AuthResult(False, None, False, reason)


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("nc=00000001", "nc=zz", "malformed Authorization: bad nc"),
        ("nc=00000001", "nc=000000001", "malformed Authorization: bad nc"),
        ("nc=00000001", "nc=00000000", "malformed Authorization: bad nc"),
        ('cnonce="0a4f113b"', 'cnonce=""', "malformed Authorization: missing cnonce"),
        ('response="', 'response="zz', "malformed Authorization: bad response"),
        ('response="', 'response="0', "malformed Authorization: bad response"),
    ],
)
def test_bad_field_values(old: str, new: str, reason: str) -> None:
    auth, _ = make_auth()
    header = authorization(first_challenge(auth)).replace(old, new)
    assert auth.verify("INVITE", header, LOOKUP) == AuthResult(False, None, False, reason)


@pytest.mark.rule("A8")
def test_unknown_user_and_wrong_password_are_indistinguishable() -> None:
    auth, _ = make_auth()
    calls = []

    def lookup(username: str, realm: str) -> Credential | None:
        calls.append((username, realm))
        return LOOKUP(username, realm)

    unknown = auth.verify("INVITE", authorization(first_challenge(auth), username="nobody"), lookup)
    wrong = auth.verify("INVITE", authorization(first_challenge(auth), password="nope"), lookup)
    assert unknown == wrong == AuthResult(False, None, False, "bad credentials")
    assert calls == [("nobody", REALM), (USER, REALM)]  # both did the same work
    # a stored credential without the algorithm used looks the same too
    md5_only = store(make_credential(USER, REALM, PASSWORD, algorithms=("MD5",)))
    assert auth.verify("INVITE", authorization(first_challenge(auth)), md5_only) == wrong
    # and so does a lookup that hands back someone else's record
    alice = make_credential("alice", REALM, PASSWORD)
    assert auth.verify("INVITE", authorization(first_challenge(auth)), lambda u, r: alice) == wrong


@pytest.mark.rule("A8")
def test_dummy_ha1_of_unknown_users_is_not_a_password() -> None:
    """Unknown users are checked against a dummy HA1 (equal work); a client that knows it
    must still be refused."""
    auth, _ = make_auth()
    nonce = challenge_params(first_challenge(auth))["nonce"]
    ha2 = H("SHA-256", f"INVITE:{URI}")
    response = H("SHA-256", f"{'0' * 64}:{nonce}:00000001:c:auth:{ha2}")
    header = (
        f'Digest username="nobody", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
        f'response="{response}", algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001'
    )
    assert auth.verify("INVITE", header, LOOKUP) == AuthResult(
        False, None, False, "bad credentials"
    )


# --------------------------------------------------------------------------------------------
# Hostile input never raises


def _assert_clean(result: AuthResult) -> None:
    assert isinstance(result, AuthResult)
    assert isinstance(result.reason, str) and result.reason


@pytest.mark.rule("A8")
@settings(max_examples=400, deadline=None)
@given(method=st.text(max_size=20), value=st.text(), uri=st.none() | st.text(max_size=60))
def test_arbitrary_text_never_raises(method: str, value: str, uri: str | None) -> None:
    auth = DigestAuthenticator(REALM, SECRET)
    _assert_clean(auth.verify(method, value, LOOKUP, request_uri=uri))
    result = auth.verify(method, "Digest " + value, LOOKUP, request_uri=uri)
    _assert_clean(result)
    assert not result.ok


_FIELDS = ("username", "realm", "nonce", "uri", "response", "cnonce", "nc", "qop", "algorithm",
           "opaque", "userhash", "stale")  # fmt: skip
_any_text = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\,= \t'), max_size=30
)
_value = st.one_of(
    _any_text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    _any_text,
    st.sampled_from(["00000001", "auth", "MD5", "SHA-256", "ffffffff", REALM, "true"]),
)


@pytest.mark.rule("A8")
@settings(max_examples=400, deadline=None)
@given(
    params=st.lists(st.tuples(st.sampled_from(_FIELDS) | _any_text, _value), max_size=12),
    surrogate=st.sampled_from(["", "\udcff", "\ud800"]),
    use_real_nonce=st.booleans(),
)
def test_structured_garbage_never_raises(
    params: list[tuple[str, str]], surrogate: str, use_real_nonce: bool
) -> None:
    auth = DigestAuthenticator(REALM, SECRET)
    if use_real_nonce:
        params = [*params, ("nonce", '"' + challenge_params(auth.challenge()[0])["nonce"] + '"')]
    value = "Digest " + ", ".join(f"{k}={v}" for k, v in params) + surrogate
    result = auth.verify("INVITE" + surrogate, value, LOOKUP, request_uri=URI + surrogate)
    _assert_clean(result)
    assert not result.ok


@pytest.mark.rule("A8")
def test_non_utf8_octets_in_username_round_trip() -> None:
    """The message layer decodes with surrogateescape; the digest is over the octets."""
    username = b"caf\xe9".decode("utf-8", "surrogateescape")  # Latin-1 from an old UA
    lookup = store(make_credential(username, REALM, PASSWORD))
    auth, _ = make_auth()
    nonce = challenge_params(first_challenge(auth))["nonce"]

    def h(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    ha1_ = h(b"caf\xe9:" + REALM.encode() + b":" + PASSWORD.encode())
    ha2 = h(f"INVITE:{URI}".encode())
    response = h(f"{ha1_}:{nonce}:00000001:c:auth:{ha2}".encode())
    header = (
        f'Digest username="{username}", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
        f'response="{response}", algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001'
    )
    assert auth.verify("INVITE", header, lookup).ok
