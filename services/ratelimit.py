"""Token buckets keyed by who is asking (a SIP source address, an API key), in bounded memory.

Pure logic with an injected clock (a float in seconds), so the SIP guard and the HTTP API
share one implementation and it is tested without sleeping. Memory is bounded: when more
than `max_keys` keys are tracked, the least recently used is forgotten — a forgotten key
starts again with a full bucket, which errs towards admitting, never towards wrongly
banning someone. A flood from many spoofed sources can only push other sources back to a
full bucket, never make the table grow.
"""

from __future__ import annotations

from collections import OrderedDict


class KeyedBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._state: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def take(self, key: object, now: float, cost: float = 1.0, *, rate: float | None = None,
             burst: float | None = None) -> bool:  # fmt: skip
        """Spend `cost` tokens of `key`'s bucket; False (nothing spent) when it lacks them.
        `rate`/`burst` override the defaults for this key (per-key limits)."""
        rate = self.rate if rate is None else rate
        burst = self.burst if burst is None else burst
        tokens, stamp = self._state.pop(key, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        self._state[key] = (tokens, now)
        if len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return ok

    def retry_after(self, key: object, now: float, cost: float = 1.0, *,
                    rate: float | None = None) -> float:  # fmt: skip
        """Seconds until `key` has `cost` tokens again (0 when it has them now)."""
        rate = self.rate if rate is None else rate
        tokens, stamp = self._state.get(key, (cost, now))
        missing = cost - (tokens + max(0.0, now - stamp) * rate)
        return max(0.0, missing / rate)

    def forget(self, key: object) -> None:
        self._state.pop(key, None)

    def __len__(self) -> int:
        return len(self._state)
