"""Token buckets (services/ratelimit.py) and API key checks (services/auth.py) without I/O."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from services import auth
from services.ratelimit import KeyedBuckets


@given(rate=st.floats(0.5, 500), burst=st.floats(1, 100),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))  # fmt: skip
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_time(rate, burst, gaps) -> None:
    b = KeyedBuckets(rate, burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        admitted += b.take("k", now)
    assert admitted <= burst + rate * now + 1e-9


def test_buckets_are_per_key_and_memory_is_bounded() -> None:
    b = KeyedBuckets(rate=1, burst=2, max_keys=3)
    assert [b.take("a", 0), b.take("a", 0), b.take("a", 0)] == [True, True, False]
    assert b.take("b", 0)  # another key has its own bucket
    assert b.retry_after("a", 0) == pytest.approx(1.0)
    assert b.take("a", 1.0)  # refilled at the rate
    for k in "cdefg":
        b.take(k, 2)
    assert len(b) == 3  # the least recently used were forgotten


def test_scopes_parse_and_refuse_unknown_names() -> None:
    assert auth.parse_scopes("billing, ops") == {"billing", "ops"}
    assert auth.parse_scopes("all") == frozenset(auth.SCOPES)
    with pytest.raises(auth.AuthInputError, match=r"unknown scope 'root'.*known: ops"):
        auth.parse_scopes("billing,root")
    with pytest.raises(auth.AuthInputError, match="no scope"):
        auth.parse_scopes(" , ")
    with pytest.raises(auth.AuthInputError, match="key name"):
        auth.new_key("bad\nname", frozenset({"ops"}), 1)
    with pytest.raises(auth.AuthInputError, match="rate"):
        auth.new_key("ok", frozenset({"ops"}), 0)


def test_ops_reads_everything_and_writes_nothing() -> None:
    ops = auth.ApiKey("0" * 12, "grafana", frozenset({"ops"}), 10)
    assert ops.allows("billing", "GET") and ops.allows("e911", "HEAD")
    assert not ops.allows("billing", "POST") and not ops.allows("rating", "PUT")
    billing = auth.ApiKey("1" * 12, "erp", frozenset({"billing"}), 10)
    assert billing.allows("billing", "POST") and not billing.allows("e911", "GET")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def status(checker: auth.ApiAuth, presented: str | None, client: str = "198.51.100.7"):
    try:
        return (await checker.authenticate(presented, client)).name
    except HTTPException as exc:
        return exc.status_code, exc.headers.get("Retry-After")


async def test_keys_verify_and_are_stored_only_hashed() -> None:
    keys, clock = auth.MemoryKeys(), Clock()
    key = keys.add("billing-app", frozenset({"billing"}), rate_per_second=2)
    key_id, secret = auth.KEY_RE.fullmatch(key).groups()
    stored = await keys.get(key_id)
    assert secret.encode() not in stored.secret_hash and len(stored.secret_hash) == 32
    checker = auth.ApiAuth(keys, failures_per_minute=3, clock=clock)
    assert await status(checker, key) == "billing-app"
    # A wrong secret for a real id, a malformed key, no key: 401, never which one.
    assert await status(checker, key[:-1] + ("A" if key[-1] != "A" else "B")) == (401, None)
    assert await status(checker, "sipcc_nope") == (401, None)
    assert await status(checker, None) == (401, None)
    # Three failures (wrong, unknown, wrong) from one address use up its allowance: 429
    # before any lookup or hash, even for a good key not verified yet; a key this process
    # already verified still works; another address is not affected.
    assert await status(checker, "sipcc_000000000000_" + "A" * 43) == (401, None)
    assert await status(checker, key[:-2] + "AA" if key[-2:] != "AA" else key[:-2] + "BB") == (401, None)
    other = keys.add("erp", frozenset({"ops"}))
    assert (await status(checker, other))[0] == 429
    assert await status(checker, key) == "billing-app"
    assert await status(checker, other, client="203.0.113.9") == "erp"
    clock.now += 20  # one failure's worth refilled (3 a minute)
    assert await status(checker, other) == "erp"


async def test_a_key_over_its_rate_gets_429_with_retry_after() -> None:
    keys, clock = auth.MemoryKeys(), Clock()
    key = keys.add("slow", frozenset({"ops"}), rate_per_second=2)
    checker = auth.ApiAuth(keys, clock=clock)
    assert [await status(checker, key) for _ in range(3)] == ["slow", "slow", (429, "1")]
    clock.now += 0.5
    assert await status(checker, key) == "slow"


class CountingKeys(auth.MemoryKeys):
    """MemoryKeys that count lookups and can be made unreachable, like Postgres going away."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.down = False

    async def get(self, key_id: str):
        self.lookups += 1
        if self.down:
            raise OSError("connection refused")
        return await super().get(key_id)


async def test_an_expired_key_is_checked_once_for_all_waiting_requests(monkeypatch) -> None:
    """When a busy key's cache entry expires, the requests that arrive meanwhile share one
    check; a key proved before costs a lookup, not another scrypt hash (at 2,000 requests/s
    each of them hashing was 1.7 s stalls, bench/rater_bench.py)."""
    import asyncio

    keys, clock = CountingKeys(), Clock()
    key = keys.add("rater-client", frozenset({"rating"}))
    hashes = []
    real = auth.hash_secret
    monkeypatch.setattr(auth, "hash_secret", lambda s, salt: hashes.append(1) or real(s, salt))
    checker = auth.ApiAuth(keys, cache_seconds=30, clock=clock)
    assert await asyncio.gather(*(status(checker, key) for _ in range(50))) == ["rater-client"] * 50
    assert (keys.lookups, len(hashes)) == (1, 1)
    clock.now += 31  # expired: checked again for revocation, by one lookup and no hash
    assert await asyncio.gather(*(status(checker, key) for _ in range(50))) == ["rater-client"] * 50
    assert (keys.lookups, len(hashes)) == (2, 1)
    # The key store away: the key proved before keeps working (a revocation is a write to
    # that same store); a key never proved here gets no answer but the store's error.
    keys.down = True
    clock.now += 31
    assert await status(checker, key) == "rater-client"
    other = keys.add("new-client", frozenset({"rating"}))
    with pytest.raises(OSError):
        await checker.authenticate(other, "198.51.100.7")
    keys.down = False
    # Revoked: refused once the entry expires, however many ask at once.
    key_id = auth.KEY_RE.fullmatch(key).group(1)
    stored = await keys.get(key_id)
    keys._keys[key_id] = auth.StoredKey(stored.key, stored.secret_hash, stored.salt, revoked=True)
    assert await status(checker, key) == "rater-client"  # still within its 30 s
    clock.now += 31
    assert await asyncio.gather(*(status(checker, key) for _ in range(5))) == [(401, None)] * 5


async def test_a_replaced_key_is_hashed_again() -> None:
    """A key id whose stored hash changed (re-keyed by hand) is not trusted on the old proof."""
    keys, clock = CountingKeys(), Clock()
    key = keys.add("erp", frozenset({"ops"}))
    key_id = auth.KEY_RE.fullmatch(key).group(1)
    checker = auth.ApiAuth(keys, cache_seconds=30, clock=clock)
    assert await status(checker, key) == "erp"
    stored = await keys.get(key_id)
    salt = b"another salt 16b"
    keys._keys[key_id] = auth.StoredKey(stored.key, auth.hash_secret("x" * 43, salt), salt)
    clock.now += 31
    assert await status(checker, key) == (401, None)
