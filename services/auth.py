"""HTTP API authentication: API keys hashed at rest, scopes per role, rate limits per key.

A key reads `sipcc_<key_id>_<secret>`: `key_id` (12 hex digits) is public and finds the
row; the secret (32 random bytes, base64url) is shown once by `sipcc apikey create` and
only its scrypt hash is stored (table `api_keys`, migration 0008). scrypt is in the
standard library (no dependency) and memory-hard, so a stolen table cannot be brute-forced
on GPUs — more than a 256-bit random secret strictly needs, but it keeps "hashed at rest"
true if someone ever sets a weak key by hand. Its ~50 ms cost is paid once per key and
process: a verified key is remembered (by the SHA-256 of the presented key) for
`api_key_cache_seconds`, which is also how long a revoked key may still work; after that
one lookup (no hash) checks it was not revoked or replaced, and while the key store is
unreachable a key already proved keeps working.

Every /v1 router is mounted with `Depends(require_scope("…"))` (services/api.py); a route
of a new router does the same. A key whose scopes include `ops` may read (GET/HEAD) every
route — the operators' read-only role. Answers: 401 (no key, a malformed, unknown,
revoked or wrong key), 403 (a key without the scope), 429 + Retry-After (the key's rate,
or too many failed keys from one client address — which also keeps wrong keys from
costing a hash each).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services import logs, metrics
from services.ratelimit import KeyedBuckets

log = logs.get("auth")

SCOPES: dict[str, str] = {
    "ops": "read-only: GET on every /v1 route (operators, dashboards)",
    "rating": "POST /v1/rate, /v1/quote",
    "e911": "/v1/e911: routes, registered addresses, PSAPs",
    "billing": "invoices, credit notes, events, outages, disputes, payments, accounts, CDRs",
    "referrals": "referral programmes: refer-a-friend, invite codes, affiliates",
    "provisioning": "customers, trunks, numbers, carriers",
}
READ_METHODS = frozenset({"GET", "HEAD"})
KEY_RE = re.compile(r"sipcc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,99}")
# scrypt cost: 2^14 × 8 × 128 B = 16 MiB and ~50 ms per hash (RFC 7914's interactive level).
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
MAX_RATE = 100_000.0


class AuthInputError(ValueError):
    """A key name, scope list or rate that cannot be stored; the message says which."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    rate_per_second: float

    def allows(self, scope: str, method: str) -> bool:
        return scope in self.scopes or ("ops" in self.scopes and method in READ_METHODS)


@dataclass(frozen=True, slots=True)
class StoredKey:
    key: ApiKey
    secret_hash: bytes
    salt: bytes
    revoked: bool = False


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)


def parse_scopes(text: str | list[str]) -> frozenset[str]:
    """'billing,ops' (or a list) → the scopes; 'all' → every scope."""
    items = text.split(",") if isinstance(text, str) else text
    names = {s.strip() for s in items if s.strip()}
    if names == {"all"}:
        return frozenset(SCOPES)
    unknown = sorted(names - SCOPES.keys())
    if unknown or not names:
        what = f"unknown scope {', '.join(map(repr, unknown))}" if unknown else "no scope given"
        raise AuthInputError(f"{what}; known: {', '.join(SCOPES)} (or all)")
    return frozenset(names)


def new_key(name: str, scopes: frozenset[str], rate_per_second: float) -> tuple[str, StoredKey]:
    """A fresh key: (the text to hand out once, what is stored)."""
    if not NAME_RE.fullmatch(name):
        raise AuthInputError(
            f"key name {name!r}: 1-100 characters, letters, digits, space and ._@:- "
            "(starting with a letter or digit)"
        )
    if not 0 < rate_per_second <= MAX_RATE:
        raise AuthInputError(f"rate {rate_per_second}: must be above 0 and at most {MAX_RATE:g}")
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    salt = secrets.token_bytes(16)
    stored = StoredKey(ApiKey(key_id, name, scopes, rate_per_second), hash_secret(secret, salt), salt)
    return f"sipcc_{key_id}_{secret}", stored


class KeyStore(Protocol):
    async def get(self, key_id: str) -> StoredKey | None: ...


class PgKeys:
    """Keys in Postgres (the api_keys table). `pool` is a callable: the node opens its pool
    after the app is built."""

    def __init__(self, pool) -> None:
        self._pool = pool

    async def get(self, key_id: str) -> StoredKey | None:
        row = await self._pool().fetchrow(
            "SELECT key_id, name, scopes, rate_per_second, secret_hash, salt, "
            "revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_id = $1",
            key_id,
        )
        if row is None:
            return None
        key = ApiKey(row["key_id"], row["name"], frozenset(row["scopes"]), row["rate_per_second"])
        return StoredKey(key, bytes(row["secret_hash"]), bytes(row["salt"]), row["revoked"])


class MemoryKeys:
    """Keys held by this process: for an app built without a database (unit tests of
    routes). The same hashing and checks as PgKeys."""

    def __init__(self) -> None:
        self._keys: dict[str, StoredKey] = {}

    def add(self, name: str, scopes: frozenset[str], rate_per_second: float = MAX_RATE) -> str:
        text, stored = new_key(name, scopes, rate_per_second)
        self._keys[stored.key.key_id] = stored
        return text

    async def get(self, key_id: str) -> StoredKey | None:
        return self._keys.get(key_id)


async def create_key(conn, name: str, scopes: frozenset[str], rate_per_second: float) -> str:
    text, s = await asyncio.to_thread(new_key, name, scopes, rate_per_second)
    await conn.execute(
        "INSERT INTO api_keys (key_id, name, secret_hash, salt, scopes, rate_per_second) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        s.key.key_id, s.key.name, s.secret_hash, s.salt, sorted(s.key.scopes), s.key.rate_per_second,
    )  # fmt: skip
    log.info("api key created", key_id=s.key.key_id, name=name, scopes=sorted(scopes))
    return text


async def revoke_key(conn, key_id: str) -> bool:
    done = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return done.endswith(" 1")


async def list_keys(conn) -> list[dict]:
    rows = await conn.fetch(
        "SELECT key_id, name, scopes, rate_per_second, created_at, revoked_at "
        "FROM api_keys ORDER BY created_at, key_id"
    )
    return [dict(r) for r in rows]


class ApiAuth:
    """Checks presented keys; one per app (process)."""

    CACHE_MAX = 10_000

    def __init__(self, store: KeyStore, *, cache_seconds: float = 30, failures_per_minute: int = 30,
                 clock=time.monotonic) -> None:  # fmt: skip
        self.store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[bytes, _Verified] = {}
        self._pending: dict[bytes, asyncio.Future[tuple[StoredKey | None, str]]] = {}
        self._rates = KeyedBuckets(rate=1.0, burst=1.0, max_keys=self.CACHE_MAX)
        self._failures = KeyedBuckets(rate=failures_per_minute / 60, burst=failures_per_minute)

    def _refuse(self, cause: str, client: str, status: int = 401, detail: str = "",
                retry_after: float = 0) -> HTTPException:  # fmt: skip
        metrics.api_auth_refusals_total.labels(cause=cause).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if retry_after:
            headers["Retry-After"] = str(max(1, round(retry_after + 0.5)))
        if status != 403:
            log.info("api request refused", cause=cause, client=client)
        return HTTPException(status, detail or "a valid API key is required "
                             "(Authorization: Bearer sipcc_…)", headers=headers)  # fmt: skip

    def cached(self, presented: str) -> ApiKey | None:
        """The key, if this process verified it within its cache time; else None, and the
        caller goes the full way (`authenticate`), which gives every refusal its answer."""
        hit = self._cache.get(hashlib.sha256(presented.encode()).digest())
        return hit.key if hit is not None and hit.until > self.clock() else None

    def within_rate(self, key: ApiKey) -> bool:
        """Takes a request's worth of the key's rate; False when there is none left."""
        rate = key.rate_per_second
        return self._rates.take(key.key_id, self.clock(), rate=rate, burst=max(1.0, rate))

    async def authenticate(self, presented: str | None, client: str) -> ApiKey:
        key = await self._verify(presented, client, self.clock())
        if not self.within_rate(key):
            wait = self._rates.retry_after(key.key_id, self.clock(), rate=key.rate_per_second)
            raise self._refuse("rate_limited", client, 429,
                               f"API key {key.key_id} is over its {key.rate_per_second:g} "
                               "requests per second", wait)  # fmt: skip
        return key

    async def _verify(self, presented: str | None, client: str, now: float) -> ApiKey:
        if not presented:
            raise self._refuse("missing", client)
        digest = hashlib.sha256(presented.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None and hit.until > now:
            return hit.key
        m = KEY_RE.fullmatch(presented)
        if m is None:
            raise self._refuse("malformed", client)
        # Past here a key costs a lookup and a hash: an address that sent too many bad ones
        # waits (keys it already proved, above, still work).
        wait = self._failures.retry_after(client, now)
        if wait:
            raise self._refuse("throttled", client, 429, "too many failed API keys from this "
                               "address; wait", wait)  # fmt: skip
        # One check per key at a time: when a busy key's entry expires, the requests that
        # arrive meanwhile wait for that check instead of each starting its own (at 2,000
        # requests/s that was hundreds of 50 ms hashes queued on 6 threads: 1.7 s stalls).
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._check(m.group(1), m.group(2), hit))
            self._pending[digest] = pending
            pending.add_done_callback(lambda _: self._pending.pop(digest, None))
        stored, cause = await asyncio.shield(pending)
        if stored is None:
            self._failures.take(client, now)
            raise self._refuse(cause, client)
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = _Verified(stored.key, stored.secret_hash, now + self.cache_seconds)
        return stored.key

    async def _check(self, key_id: str, secret: str, known: _Verified | None,
                     ) -> tuple[StoredKey | None, str]:  # fmt: skip
        """The stored key, or None and why not. A key this process already verified is
        checked again for revocation or replacement only: its secret was proved, and the
        stored hash it was proved against is the same."""
        try:
            stored = await self.store.get(key_id)
        except Exception as exc:
            if known is None:
                raise
            # The key store is away (Postgres down): a key proved before keeps working —
            # a revocation is a write to that same store, so none can have happened here.
            log.warning("api key store unreachable; a verified key stays valid",
                        key_id=key_id, error=repr(exc))  # fmt: skip
            return StoredKey(known.key, known.secret_hash, b""), ""
        if stored is None:
            return None, "unknown"
        if stored.revoked:
            return None, "revoked"
        if known is not None and hmac.compare_digest(known.secret_hash, stored.secret_hash):
            return stored, ""
        # The hash runs in a thread: the edge may share this process's loop.
        got = await asyncio.to_thread(hash_secret, secret, stored.salt)
        if hmac.compare_digest(got, stored.secret_hash):
            return stored, ""
        return None, "wrong"


@dataclass(frozen=True, slots=True)
class _Verified:
    key: ApiKey
    secret_hash: bytes  # the stored hash the presented secret was proved against
    until: float


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key, `sipcc_<id>_<secret>`, from `sipcc apikey create`",
)

AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "no API key, or not a valid one"},
    403: {"description": "the API key lacks the scope this route needs"},
    429: {"description": "the API key is over its rate, or too many failed keys; see Retry-After"},
}


def require_scope(scope: str):
    """A FastAPI dependency: the request carries a valid key with `scope` (or `ops` for a
    read). Use at router level: `APIRouter(dependencies=[Depends(require_scope("billing"))])`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(request: Request,
                    cred: HTTPAuthorizationCredentials | None = Security(_bearer)) -> ApiKey:  # fmt: skip
        auth: ApiAuth = request.app.state.api_auth
        client = request.client.host if request.client else "-"
        key = await auth.authenticate(cred.credentials if cred else None, client)
        if not key.allows(scope, request.method):
            raise auth._refuse("scope", client, 403,
                               f"API key {key.key_id} lacks the scope {scope!r}")  # fmt: skip
        request.state.api_key = key
        return key

    return check
