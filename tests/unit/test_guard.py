"""The SIP flood/scan guard (gateway/guard.py): pure policy, fake clock, no sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.guard import Guard, GuardPolicy
from gateway.sip.message import parse_message


def options(agent: str | None = None, user: str = "100") -> object:
    ua = f"User-Agent: {agent}\r\n" if agent else ""
    return parse_message(
        f"OPTIONS sip:{user}@198.51.100.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        f"From: <sip:{user}@203.0.113.5>;tag=a\r\nTo: <sip:{user}@198.51.100.1>\r\n"
        f"Call-ID: x@y\r\nCSeq: 1 OPTIONS\r\n{ua}Content-Length: 0\r\n\r\n".encode()
    )


def test_scanner_user_agents_are_banned_at_sight_and_then_everything_is_dropped() -> None:
    g = Guard(GuardPolicy(ban_seconds=60))
    assert g.check("203.0.113.5", options("Linphone/5.2"), 0) is None
    assert g.check("203.0.113.6", options("friendly-scanner"), 0) == "scanner"
    assert g.check("203.0.113.6", options("sipcli/v1.8"), 0) == "banned"
    assert g.check("203.0.113.6", options("Linphone/5.2"), 30) == "banned"  # changing UA: no help
    # A ban runs from the last packet seen: 30 + 60.
    assert g.check("203.0.113.6", options(), 89) == "banned"
    assert g.check("203.0.113.6", options(), 150) is None
    assert g.check("203.0.113.7", options("SIPVicious 0.3"), 0) == "scanner"


def test_a_flood_bans_its_source_only_and_trusted_sources_are_never_limited() -> None:
    g = Guard(GuardPolicy(rate=10, burst=20, ban_seconds=60), trusted=lambda ip: ip == "127.0.0.2")
    causes = [g.check("203.0.113.5", options(), 0.0) for _ in range(21)]
    assert causes[:20] == [None] * 20 and causes[20] == "flood"
    assert g.check("203.0.113.5", options(), 5) == "banned"  # refilled, but banned
    assert g.check("203.0.113.9", options(), 0.0) is None  # another source is fine
    assert all(g.check("127.0.0.2", options(), 0.0) is None for _ in range(500))
    # A trusted source with a scanner's UA is dropped? No: a provisioned PBX is never cut off.
    assert g.check("127.0.0.2", options("friendly-scanner"), 0.0) is None


@given(st.lists(st.floats(0, 0.2), min_size=1, max_size=300))
def test_a_source_is_banned_exactly_when_it_outruns_its_bucket(gaps) -> None:
    rate, burst = 20.0, 5.0
    g = Guard(GuardPolicy(rate=rate, burst=burst, ban_seconds=1e6))
    now, tokens, banned = 0.0, burst, False
    for gap in gaps:
        now += gap
        tokens = min(burst, tokens + gap * rate)
        cause = g.check("198.51.100.9", options(), now)
        if banned:
            assert cause == "banned"
        elif tokens >= 1:
            tokens -= 1
            assert cause is None
        else:
            banned = True
            assert cause == "flood"


def test_digest_failures_ban_the_source_and_lock_the_username() -> None:
    g = Guard(GuardPolicy(max_auth_failures=3, max_user_failures=5, auth_window=300,
                          lockout_seconds=900, ban_seconds=60))  # fmt: skip
    for _ in range(3):
        g.auth_failed("203.0.113.5", "acme", 0)
    assert not g.banned("203.0.113.5", 0)
    g.auth_failed("203.0.113.5", "acme", 0)  # the 4th within the window
    assert g.banned("203.0.113.5", 1) and g.check("203.0.113.5", options(), 1) == "banned"
    # Guesses for one username from many addresses (a botnet) lock the username out.
    assert not g.locked("acme", 1)
    for i in range(2):
        g.auth_failed(f"198.51.100.{i}", "acme", 1)
    assert g.locked("acme", 2) and not g.locked("other", 2)
    assert not g.locked("acme", 902)
    # Failures spread over time refill: 3 per 300 s never bans.
    g2 = Guard(GuardPolicy(max_auth_failures=3, auth_window=300))
    for k in range(20):
        g2.auth_failed("203.0.113.8", None, k * 100.0)
    assert not g2.banned("203.0.113.8", 2000)


def test_a_source_that_proved_credentials_is_exempt_from_the_flood_limit() -> None:
    g = Guard(GuardPolicy(rate=1, burst=2))
    g.auth_ok("203.0.113.5", 0)
    assert all(g.check("203.0.113.5", options(), 0) is None for _ in range(100))


def test_memory_is_bounded_under_a_spoofed_source_flood() -> None:
    g = Guard(GuardPolicy(rate=1, burst=1, max_tracked=1000, max_banned=100))
    for i in range(5000):
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        g.check(ip, options(), 0)
        g.check(ip, options(), 0)  # the second bans
    assert len(g._banned) == 100 and len(g._flood) <= 1000
