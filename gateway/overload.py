"""Overload control: refuse new calls cheaply before the edge falls behind.

Measured without it (docs/BENCHMARKS.md, "Edge behaviour under overload"): one step past
its capacity the edge's UDP socket overflows, INVITEs are answered only on their second
or third retransmission, both sides retransmit, the retransmissions are more work, and
the failed share jumps from 0 to 45–90 %. A 503 with Retry-After costs a parse and one
datagram — a twentieth of a call — so refusing the excess early keeps the calls that are
admitted whole, and tells the PBX to try its other trunk (RFC 3261 §21.5.4; the same
idea as RFC 7339's overload control, without needing the peer to support it).

Five signals, each configurable and each counted by cause:
- ``cpu``: the process's own CPU share, smoothed, over a target — a feedback loop that
  sheds the fraction of new calls needed to bring it back (Kamailio ratelimit's
  FEEDBACK pipe). Measured first: at the edge's limit the loop lag stays small while the
  UDP socket overflows, so lag alone comes too late; the CPU share is what saturates;
- ``cps``: a token bucket of new calls per second — the operator's known capacity;
- ``lag``: the event loop answers late (smoothed loop lag over a limit), whatever the cause
  (a CPU-starved process never reaches its CPU target, but it is late);
- ``pending``: too many calls waiting for their routing decision (Redis or the rater slow);
- ``backlog``: the UDP socket holds more unread octets than a limit. This is the cliff
  itself: with the cores shared (two workers and SIPp on two cores) neither worker reaches
  its CPU target and the loop's turns stay short, yet datagrams queue in the socket until
  every INVITE is answered late and retransmitted (docs/BENCHMARKS.md, runs U, X, Y). The
  queue is read from the kernel (SO_MEMINFO) every 0.1 s; the default, 512 KiB, is about
  400 small datagrams, ~0.1 s of a worker's traffic at 1000 calls/s — shed well before a
  request waits T1 (0.5 s) and its sender retransmits.

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
    cpu_target: float = 0.0  # share of one core; 0: no CPU feedback
    max_backlog_bytes: int = 0  # unread octets in the UDP socket; 0: ignore
    retry_after_seconds: int = 5

    @property
    def enabled(self) -> bool:
        return bool(self.max_cps or self.max_lag_seconds or self.max_pending or self.cpu_target
                    or self.max_backlog_bytes)


class Overload:
    # Weight of the newest lag sample: a single late tick (a GC, a burst) should not shed
    # calls, a loop that stays late for a few ticks should.
    LAG_SMOOTHING = 0.3
    # The CPU share is sampled every 0.1 s; one sample swings ±10 points at a steady load, so
    # it is smoothed over most of a second. A first version (weight 0.5, target 0.85) shed
    # 6–25 % of the calls at 400 calls/s, a rate the edge carries at ~85–90 % of a core
    # (docs/BENCHMARKS.md, run L); the default target is therefore a core all but full.
    CPU_SMOOTHING = 0.15
    # How fast the shed fraction follows the CPU error, per sample: up fast (a process pinned
    # at a full core sheds half its new calls within ~4 s), down slowly, so it settles
    # instead of swinging between shedding too much and too little (simulated and measured).
    CPU_GAIN_UP = 3.0
    CPU_GAIN_DOWN = 0.5

    def __init__(self, policy: OverloadPolicy, now: float) -> None:
        self.policy = policy
        self._capacity = policy.burst or max(policy.max_cps, 1.0)
        self._tokens = self._capacity
        self._stamp = now
        self.lag = 0.0
        self.backlog = 0
        self.pending = 0
        self.cpu = 0.0
        self.shed_fraction = 0.0
        self._owed = 0.0  # calls to shed, accumulated fraction by fraction (no randomness)

    def note_lag(self, lag: float) -> None:
        self.lag += self.LAG_SMOOTHING * (lag - self.lag)

    def note_backlog(self, octets: int) -> None:
        """Octets waiting unread in the UDP socket(s) now. Not smoothed: a queue that deep
        is already the delay every request in it will see."""
        self.backlog = octets

    def note_cpu(self, share: float) -> None:
        """The process's CPU time over wall time since the last sample (1.0: a full core)."""
        p = self.policy
        if not p.cpu_target:
            return
        self.cpu += self.CPU_SMOOTHING * (share - self.cpu)
        error = (self.cpu - p.cpu_target) / p.cpu_target
        gain = self.CPU_GAIN_UP if error > 0 else self.CPU_GAIN_DOWN
        self.shed_fraction = min(0.95, max(0.0, self.shed_fraction + gain * error))

    def admit(self, now: float) -> str | None:
        """None to take the call, else the cause it is refused for."""
        p = self.policy
        if p.max_pending and self.pending >= p.max_pending:
            return "pending"
        if p.max_lag_seconds and self.lag > p.max_lag_seconds:
            return "lag"
        if p.max_backlog_bytes and self.backlog > p.max_backlog_bytes:
            return "backlog"
        if self.shed_fraction:
            self._owed += self.shed_fraction
            if self._owed >= 1.0:
                self._owed -= 1.0
                return "cpu"
        if p.max_cps:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * p.max_cps)
            self._stamp = now
            if self._tokens < 1.0:
                return "cps"
            self._tokens -= 1.0
        return None
