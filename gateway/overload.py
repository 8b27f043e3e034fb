"""Overload control: refuse new calls cheaply before the edge falls behind.

Measured without it (docs/BENCHMARKS.md, "Edge behaviour under overload"): one step past
its capacity the edge's UDP socket overflows, INVITEs are answered only on their second
or third retransmission, both sides retransmit, the retransmissions are more work, and
the failed share jumps from 0 to 45–90 %. A 503 with Retry-After costs a parse and one
datagram — a twentieth of a call — so refusing the excess early keeps the calls that are
admitted whole, and tells the PBX to try its other trunk (RFC 3261 §21.5.4; the same
idea as RFC 7339's overload control, without needing the peer to support it).

Three signals, each configurable and each counted by cause:
- ``cps``: a token bucket of new calls per second — the operator's known capacity
  (Kamailio's ratelimit/pike equivalent);
- ``lag``: the event loop answers late (smoothed loop lag over a limit), whatever the cause;
- ``pending``: too many calls waiting for their routing decision (Redis or the rater slow).

911 is never shed (rule E7): the caller of `admit` passes emergency calls straight through.
Pure logic with an injected clock, so it is tested without a loop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OverloadPolicy:
    max_cps: float = 0.0  # 0: no rate limit
    burst: float = 0.0  # bucket size; 0: one second's worth
    max_lag_seconds: float = 0.0  # 0: ignore loop lag
    max_pending: int = 0  # 0: no limit on calls awaiting routing
    retry_after_seconds: int = 5

    @property
    def enabled(self) -> bool:
        return bool(self.max_cps or self.max_lag_seconds or self.max_pending)


class Overload:
    # Weight of the newest lag sample: a single late tick (a GC, a burst) should not shed
    # calls, a loop that stays late for a few ticks should.
    LAG_SMOOTHING = 0.3

    def __init__(self, policy: OverloadPolicy, now: float) -> None:
        self.policy = policy
        self._capacity = policy.burst or max(policy.max_cps, 1.0)
        self._tokens = self._capacity
        self._stamp = now
        self.lag = 0.0
        self.pending = 0

    def note_lag(self, lag: float) -> None:
        self.lag += self.LAG_SMOOTHING * (lag - self.lag)

    def admit(self, now: float) -> str | None:
        """None to take the call, else the cause it is refused for."""
        p = self.policy
        if p.max_pending and self.pending >= p.max_pending:
            return "pending"
        if p.max_lag_seconds and self.lag > p.max_lag_seconds:
            return "lag"
        if p.max_cps:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * p.max_cps)
            self._stamp = now
            if self._tokens < 1.0:
                return "cps"
            self._tokens -= 1.0
        return None
