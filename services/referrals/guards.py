"""Abuse guards: self-referral, code guessing, spam.

- Self-referral: a referral or a code is refused when both sides share a payment identity
  (a card fingerprint, an account) or a service address. Both are kept only as keyed
  hashes of their normalised text, so the check works without storing either.
- Guessing codes: attempts are counted per client and per remote address in a fixed
  window (Redis, shared by every API process); a code is compared in constant time.
- Spam: a referrer may send at most `daily_cap` invitations a day (F3 and the source's
  "ITP does not support spamming").
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import redis.asyncio as aioredis

from services import metrics
from services.referrals.errors import ReferralError

_SPACES = re.compile(r"[\s,.#-]+")


def identity_key(value: str | None) -> str | None:
    """A stable hash of a payment identity or an address, after normalising case, spacing
    and punctuation ("12 Main St., Apt 4" = "12 main st apt 4")."""
    if value is None or not value.strip():
        return None
    norm = _SPACES.sub(" ", value.casefold()).strip()
    return hashlib.sha256(norm.encode()).hexdigest()


def same_code(given: str, stored: str) -> bool:
    """Constant-time comparison: a wrong code takes as long whatever prefix it shares."""
    return hmac.compare_digest(given.encode(), stored.encode())


class AttemptLimiter:
    """At most `limit` attempts per key per `window` seconds."""

    def __init__(self, redis: aioredis.Redis | None, prefix: str, limit: int, window: int) -> None:
        self.redis = redis
        self.prefix = prefix + "referrals:attempts:"
        self.limit = limit
        self.window = window
        self._local: dict[str, tuple[int, float]] = {}  # without Redis: this process only

    async def hit(self, *keys: str) -> None:
        """Count one attempt under each key; refuse (429) when any key is over its limit."""
        for key in keys:
            count = await self._incr(key)
            if count > self.limit:
                metrics.referral_refusals_total.labels(guard="code_rate_limit").inc()
                raise ReferralError(
                    f"too many invite-code attempts; try again in {self.window} s",
                    rule="F5", status=429,
                )  # fmt: skip

    async def _incr(self, key: str) -> int:
        if self.redis is not None:
            full = self.prefix + key
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(full)
            pipe.expire(full, self.window, nx=True)
            count, _ = await pipe.execute()
            return int(count)
        now = time.monotonic()
        count, since = self._local.get(key, (0, now))
        if now - since >= self.window:
            count, since = 0, now
        self._local[key] = (count + 1, since)
        return count + 1
