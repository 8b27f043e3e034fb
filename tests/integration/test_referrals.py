"""Referral programmes walked through time against real Postgres, Redis and a real SMTP
server on loopback (aiosmtpd): SPEC F1–F6, issue 8's 'Done when'."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from rater.money import round_internal
from services.referrals import affiliates, invite_codes, outbox, refer_a_friend
from services.referrals.adjustments import invoice_adjustments
from services.referrals.customers import Profile, save_profile
from services.referrals.errors import ReferralError
from services.referrals.guards import AttemptLimiter
from services.referrals.refer_a_friend import SignUp
from tests.support.node import free_port

D = Decimal
DAY0 = date(2026, 1, 10)
LINK = "https://signup.test/?coupon="


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield outbox.SmtpSender("127.0.0.1", controller.port, "referrals@sipcc.test"), inbox
    controller.stop()


async def customers(conn, *ids: str) -> None:
    await conn.execute(
        "INSERT INTO rate_plans (id, name, interstate_per_minute, intrastate_per_minute, "
        "local_per_minute) VALUES ('plan', 'plan', 0.01, 0.01, 0) ON CONFLICT DO NOTHING"
    )
    for cid in ids:
        await conn.execute(
            "INSERT INTO customers (id, name, rate_plan_id) VALUES ($1, $2, 'plan')",
            cid, f"Customer {cid}",
        )  # fmt: skip


def coupon_of(message) -> str:
    body = message.get_payload(decode=True).decode()
    return re.search(re.escape(LINK) + r"(\S+)", body).group(1)


async def refer_and_sign_up(pg, smtp, referrer: str, friend: str, fee: str, day: date) -> int:
    sender, inbox = smtp
    await refer_a_friend.refer(pg, referrer, f"{friend}@mail.test", day, link_base=LINK,
                               daily_cap=20)  # fmt: skip
    sent = await outbox.deliver_pending(pg, sender, None)
    assert sent["sent"] >= 1 and sent["failed"] == 0
    (msg,) = [m for m in inbox.messages if m["To"] == f"{friend}@mail.test"]
    out = await refer_a_friend.sign_up(pg, coupon_of(msg), SignUp(friend, D(fee)), day)
    return out["referral_id"]


async def status(pg, ref_id: int) -> tuple:
    r = await pg.fetchrow("SELECT status, settled_on, forfeit_reason FROM raf_referrals "
                          "WHERE id = $1", ref_id)  # fmt: skip
    return tuple(r)


# --- refer-a-friend -----------------------------------------------------------------------


@pytest.mark.rule("F2")
async def test_credit_posts_on_day_90_not_89_and_reaches_both_invoices(pg, smtp) -> None:
    await customers(pg, "alice", "bob")
    ref = await refer_and_sign_up(pg, smtp, "alice", "bob", "24.99", DAY0)  # the Global Plan

    assert await refer_a_friend.settle(pg, DAY0 + timedelta(days=89)) == {"credited": 0,
                                                                         "forfeited": 0}  # fmt: skip
    assert (await status(pg, ref))[0] == "signed_up"
    assert await refer_a_friend.settle(pg, DAY0 + timedelta(days=90)) == {"credited": 1,
                                                                         "forfeited": 0}  # fmt: skip
    assert await status(pg, ref) == ("credited", date(2026, 4, 10), None)
    assert await refer_a_friend.settle(pg, DAY0 + timedelta(days=91)) == {"credited": 0,
                                                                         "forfeited": 0}  # fmt: skip

    # The friend's January invoice: the basic fee is free (F1); February's is not.
    jan = await invoice_adjustments(pg, "bob", date(2026, 1, 1), date(2026, 1, 31),
                                    basic_fee=D("24.99"))  # fmt: skip
    assert [(a.kind, a.amount, a.rule) for a in jan] == [
        ("referral_first_month_free", D("-24.99"), "F1")]  # fmt: skip
    assert await invoice_adjustments(pg, "bob", date(2026, 2, 1), date(2026, 2, 28),
                                     basic_fee=D("24.99")) == []  # fmt: skip
    # The referrer's March invoice has no credit yet; April's has the rule's $49.98 (not the
    # chart's $48.98).
    assert await invoice_adjustments(pg, "alice", date(2026, 3, 1), date(2026, 3, 31),
                                     basic_fee=D("19.99")) == []  # fmt: skip
    april = await invoice_adjustments(pg, "alice", date(2026, 4, 1), date(2026, 4, 30),
                                      basic_fee=D("19.99"), chargeable=D("100"))  # fmt: skip
    assert [(a.kind, a.amount, a.rule) for a in april] == [("referral_credit", D("-49.98"), "F2")]
    # Running the April invoice again changes nothing; May has nothing left to credit.
    again = await invoice_adjustments(pg, "alice", date(2026, 4, 1), date(2026, 4, 30),
                                      basic_fee=D("19.99"), chargeable=D("100"))  # fmt: skip
    assert again == april
    assert await invoice_adjustments(pg, "alice", date(2026, 5, 1), date(2026, 5, 31),
                                     basic_fee=D("19.99"), chargeable=D("100")) == []  # fmt: skip


@pytest.mark.rule("F2")
async def test_credit_larger_than_the_invoice_carries_to_the_next(pg, smtp) -> None:
    await customers(pg, "alice", "bob")
    await refer_and_sign_up(pg, smtp, "alice", "bob", "49.99", DAY0)  # Home Office: $50 cap
    await refer_a_friend.settle(pg, DAY0 + timedelta(days=90))
    april = await invoice_adjustments(pg, "alice", date(2026, 4, 1), date(2026, 4, 30),
                                      basic_fee=D("19.99"), chargeable=D("30.00"))  # fmt: skip
    assert [a.amount for a in april] == [D("-30.00")]
    may = await invoice_adjustments(pg, "alice", date(2026, 5, 1), date(2026, 5, 31),
                                    basic_fee=D("19.99"), chargeable=D("30.00"))  # fmt: skip
    assert [a.amount for a in may] == [D("-20.00")]


@pytest.mark.rule("F2")
@pytest.mark.parametrize("who", ["friend", "referrer"])
async def test_cancellation_on_day_30_loses_the_credit(pg, smtp, who: str) -> None:
    await customers(pg, "alice", "bob")
    ref = await refer_and_sign_up(pg, smtp, "alice", "bob", "19.99", DAY0)
    quitter = "bob" if who == "friend" else "alice"
    await pg.execute("UPDATE customers SET status = 'cancelled' WHERE id = $1", quitter)
    assert await refer_a_friend.cancel(pg, quitter, DAY0 + timedelta(days=30)) == 1
    st, day, reason = await status(pg, ref)
    assert (st, day) == ("forfeited", DAY0 + timedelta(days=30))
    assert f"the {who} {quitter} cancelled on day 30 of 90" == reason
    assert await refer_a_friend.settle(pg, DAY0 + timedelta(days=90)) == {"credited": 0,
                                                                         "forfeited": 0}  # fmt: skip
    assert await invoice_adjustments(pg, "alice", date(2026, 4, 1), date(2026, 4, 30),
                                     basic_fee=D("19.99")) == []  # fmt: skip
    view = await refer_a_friend.referrer_view(pg, "alice")
    assert view["credited"] == 0 and view["referrals"][0]["status"] == "forfeited"


@pytest.mark.rule("F2")
async def test_not_in_good_standing_on_day_90_forfeits(pg, smtp) -> None:
    await customers(pg, "alice", "bob")
    ref = await refer_and_sign_up(pg, smtp, "alice", "bob", "9.99", DAY0)
    await pg.execute("UPDATE customers SET status = 'suspended' WHERE id = 'alice'")
    assert await refer_a_friend.settle(pg, DAY0 + timedelta(days=95)) == {"credited": 0,
                                                                         "forfeited": 1}  # fmt: skip
    assert (await status(pg, ref))[:2] == ("forfeited", DAY0 + timedelta(days=90))


@pytest.mark.rule("F3")
async def test_referrer_view_lists_referrals_sign_ups_and_credits(pg, smtp) -> None:
    await customers(pg, "alice", "bob", "carol")
    await refer_and_sign_up(pg, smtp, "alice", "bob", "38.99", DAY0)
    await refer_a_friend.refer(pg, "alice", "dave@mail.test", DAY0, link_base=LINK, daily_cap=20)
    await refer_and_sign_up(pg, smtp, "alice", "carol", "18.99", DAY0 + timedelta(days=5))
    await refer_a_friend.settle(pg, DAY0 + timedelta(days=92))
    view = await refer_a_friend.referrer_view(pg, "alice")
    rows = {r["friend_email"]: (r["status"], r["friend_id"], r["credit"]) for r in view["referrals"]}
    assert rows == {
        "bob@mail.test": ("credited", "bob", D("50.00")),  # 2 × 38.99 capped
        "dave@mail.test": ("invited", None, None),
        "carol@mail.test": ("signed_up", "carol", D("37.98")),  # posts on day 95
    }
    assert (view["signed_up"], view["credited"], view["pending"]) == (2, D("50"), D("37.98"))


@pytest.mark.rule("F3")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel": "retail"}, "only sign-ups on the website"),
        ({"channel": "partner"}, "only sign-ups on the website"),
        ({"country": "CA"}, "US only"),
        ({"other_offer": True}, "cannot be combined"),
    ],
)
async def test_eligibility(pg, smtp, change: dict, message: str) -> None:
    await customers(pg, "alice", "bob")
    await refer_a_friend.refer(pg, "alice", "bob@mail.test", DAY0, link_base=LINK, daily_cap=20)
    await outbox.deliver_pending(pg, smtp[0], None)
    coupon = coupon_of(smtp[1].messages[-1])
    with pytest.raises(ReferralError, match=message) as err:
        await refer_a_friend.sign_up(pg, coupon, SignUp("bob", D("9.99"), **change), DAY0)
    assert err.value.rule == "F3"
    assert await pg.fetchval("SELECT status FROM raf_referrals") == "invited"  # nothing stored


@pytest.mark.rule("F3")
async def test_not_a_new_activation_and_coupon_used_once(pg, smtp) -> None:
    await customers(pg, "alice", "bob", "old")
    await save_profile(pg, "old", Profile(activated_on=date(2025, 6, 1)))
    await refer_a_friend.refer(pg, "alice", "old@mail.test", DAY0, link_base=LINK, daily_cap=20)
    await outbox.deliver_pending(pg, smtp[0], None)
    coupon = coupon_of(smtp[1].messages[-1])
    with pytest.raises(ReferralError, match="new activations only"):
        await refer_a_friend.sign_up(pg, coupon, SignUp("old", D("9.99")), DAY0)
    await refer_a_friend.sign_up(pg, coupon, SignUp("bob", D("9.99")), DAY0)
    with pytest.raises(ReferralError, match="already been used"):
        await refer_a_friend.sign_up(pg, coupon, SignUp("bob", D("9.99")), DAY0)
    with pytest.raises(ReferralError, match="unknown e-coupon"):
        await refer_a_friend.sign_up(pg, "not-a-coupon-at-all", SignUp("bob", D("9.99")), DAY0)


async def test_bad_email_is_refused_by_name(pg) -> None:
    await customers(pg, "alice")
    with pytest.raises(ReferralError, match="not an e-mail address: 'bob-at-mail'"):
        await refer_a_friend.refer(pg, "alice", "bob-at-mail", DAY0, link_base=LINK, daily_cap=5)


# --- abuse guards ---------------------------------------------------------------------------


@pytest.mark.rule("F3")
@pytest.mark.parametrize(
    ("field", "theirs", "ours"),
    [("payment_identity", "card 4111-1111", "CARD 4111 1111"),
     ("address", "12 Main St., Apt 4, Tampa FL", "12 main st apt 4 tampa fl")],
)  # fmt: skip
async def test_self_referral_by_same_payment_identity_or_address(pg, smtp, field, theirs, ours):
    await customers(pg, "alice", "alias")
    await save_profile(pg, "alice", Profile(activated_on=date(2025, 1, 1), **{field: theirs}))
    await refer_a_friend.refer(pg, "alice", "alias@mail.test", DAY0, link_base=LINK, daily_cap=5)
    await outbox.deliver_pending(pg, smtp[0], None)
    coupon = coupon_of(smtp[1].messages[-1])
    with pytest.raises(ReferralError, match="self-referral") as err:
        await refer_a_friend.sign_up(pg, coupon, SignUp("alias", D("9.99"), **{field: ours}), DAY0)
    assert err.value.status == 409


async def test_daily_cap_on_invitations(pg) -> None:
    await customers(pg, "alice")
    for n in range(3):
        await refer_a_friend.refer(pg, "alice", f"f{n}@mail.test", DAY0, link_base=LINK,
                                   daily_cap=3)  # fmt: skip
    with pytest.raises(ReferralError, match="sent its 3 invitations") as err:
        await invite_codes.invite(pg, "alice", "sms", "+17275550100", DAY0, daily_cap=3)
    assert err.value.status == 429
    await refer_a_friend.refer(pg, "alice", "f9@mail.test", DAY0 + timedelta(days=1),
                               link_base=LINK, daily_cap=3)  # fmt: skip


async def test_code_guessing_is_rate_limited_in_redis(pg, redis_client, redis_prefix) -> None:
    await customers(pg, "owner", "guesser")
    await save_profile(pg, "guesser", Profile(activated_on=DAY0))
    code = await invite_codes.code_for(pg, "owner")
    limiter = AttemptLimiter(redis_client, redis_prefix + "guess:", limit=3, window=3600)
    for n in range(3):
        with pytest.raises(ReferralError, match="no such invite code"):
            await invite_codes.register(pg, "guesser", f"WRONG{n:05d}", DAY0, limiter=limiter)
    with pytest.raises(ReferralError, match="too many") as err:  # even the right code now
        await invite_codes.register(pg, "guesser", code, DAY0, limiter=limiter)
    assert err.value.status == 429
    assert await pg.fetchval("SELECT count(*) FROM invite_registrations") == 0


# --- invite codes ---------------------------------------------------------------------------


def _limiter() -> AttemptLimiter:
    return AttemptLimiter(None, "t:", limit=100, window=3600)


@pytest.mark.rule("F6")
async def test_five_clients_walk_the_tiers_and_reach_the_owners_invoices(pg) -> None:
    await customers(pg, "owner", *(f"c{n}" for n in range(1, 6)))
    code = await invite_codes.code_for(pg, "owner")
    days = [date(2026, 3, 16), date(2026, 4, 10), date(2026, 5, 1), date(2026, 5, 20),
            date(2026, 6, 1)]  # fmt: skip
    results = []
    for n, day in enumerate(days, start=1):
        await save_profile(pg, f"c{n}", Profile(activated_on=day - timedelta(days=3)))
        out = await invite_codes.register(pg, f"c{n}", code.lower(), day, limiter=_limiter())
        o = out["owner_discount"]
        results.append((o["level"], o["percent"], o["to"], o["sms_package"]))
    assert results == [
        (1, 20, date(2026, 6, 16), None),
        (2, 40, date(2026, 10, 10), None),
        (3, 60, date(2027, 5, 1), 1200),
        (4, 80, date(2027, 5, 20), None),
        (5, 100, date(2027, 6, 1), 3200),  # the fifth referral
    ]
    view = await invite_codes.owner_view(pg, "owner", date(2026, 6, 2))
    assert [(c["id"], c["name"], c["code_activated_on"]) for c in view["clients"]] == [
        (f"c{n}", f"Customer c{n}", day) for n, day in enumerate(days, start=1)]  # fmt: skip
    assert [h["percent"] for h in view["discount_history"]] == [20, 40, 60, 80, 100]
    assert view["current_discount"] == {"percent": 100, "until": date(2027, 6, 1)}

    # March: 20% on 16 of 31 days of a $31 basic fee.
    (march,) = await invoice_adjustments(pg, "owner", date(2026, 3, 1), date(2026, 3, 31),
                                         basic_fee=D("31.00"))  # fmt: skip
    assert (march.kind, march.amount, march.rule) == ("invite_owner_discount", D("-3.20"), "F6")
    # June: the fifth client came on 1 June, so 100% all month; the 3,200-SMS package is a
    # free line of its own, never discounted.
    june = await invoice_adjustments(pg, "owner", date(2026, 6, 1), date(2026, 6, 30),
                                     basic_fee=D("30.00"))  # fmt: skip
    assert [(a.kind, a.amount) for a in june] == [("invite_owner_discount", D("-30.00")),
                                                  ("invite_sms_package", D("0"))]  # fmt: skip
    assert "3,200-SMS" in june[1].description
    # May: 60% from 1 May (third client, 1,200 SMS), 80% from 20 May (fourth).
    (may, sms) = await invoice_adjustments(pg, "owner", date(2026, 5, 1), date(2026, 5, 31),
                                           basic_fee=D("31.00"))  # fmt: skip
    assert may.amount == -(D("31") * (19 * D("0.60") + 12 * D("0.80")) / 31)
    assert "1,200-SMS" in sms.description


@pytest.mark.rule("F5")
async def test_client_gets_20_percent_for_three_months_after_its_promo(pg) -> None:
    await customers(pg, "owner", "client")
    code = await invite_codes.code_for(pg, "owner")
    await save_profile(pg, "client", Profile(activated_on=date(2026, 1, 5),
                                             promo_ends_on=date(2026, 2, 5)))  # fmt: skip
    out = await invite_codes.register(pg, "client", code, date(2026, 1, 20), limiter=_limiter())
    assert out["client_discount"] == {"percent": 20, "from": date(2026, 2, 5),
                                      "to": date(2026, 5, 5)}  # fmt: skip
    lines = {}
    for month in range(1, 7):
        start = date(2026, month, 1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        got = await invoice_adjustments(pg, "client", start, end, basic_fee=D("28.00"))
        lines[month] = sum((a.amount for a in got if a.kind == "invite_discount"), D(0))
    assert lines == {
        1: D(0),
        2: -round_internal(D("28") * D("0.2") * 24 / 28),  # from 5 Feb: 24 of 28 days
        3: D("-5.60"), 4: D("-5.60"),
        5: -round_internal(D("28") * D("0.2") * 4 / 31),  # to 4 May: 4 of 31 days
        6: D(0),
    }  # fmt: skip


@pytest.mark.rule("F5")
async def test_code_registered_after_its_window_is_refused(pg) -> None:
    await customers(pg, "owner", "late", "ontime")
    code = await invite_codes.code_for(pg, "owner")
    await save_profile(pg, "late", Profile(activated_on=date(2026, 1, 15)))
    await save_profile(pg, "ontime", Profile(activated_on=date(2026, 1, 15)))
    with pytest.raises(ReferralError, match="within one month, until 2026-02-15") as err:
        await invite_codes.register(pg, "late", code, date(2026, 2, 16), limiter=_limiter())
    assert err.value.rule == "F5"
    await invite_codes.register(pg, "ontime", code, date(2026, 2, 15), limiter=_limiter())
    assert await pg.fetchval("SELECT count(*) FROM invite_owner_discounts") == 1
    with pytest.raises(ReferralError, match="already registered"):
        await invite_codes.register(pg, "ontime", code, date(2026, 2, 15), limiter=_limiter())
    with pytest.raises(ReferralError, match="its own code"):
        await invite_codes.register(pg, "owner", code, date(2026, 2, 15), limiter=_limiter())


@pytest.mark.rule("F5")
async def test_invite_code_self_referral_by_same_address(pg) -> None:
    await customers(pg, "owner", "twin")
    code = await invite_codes.code_for(pg, "owner")
    await save_profile(pg, "owner", Profile(activated_on=date(2025, 1, 1),
                                            address="1 Bay St, Tampa FL 33601"))  # fmt: skip
    await save_profile(pg, "twin", Profile(activated_on=DAY0, address="1 BAY ST TAMPA FL 33601"))
    with pytest.raises(ReferralError, match=r"self-referral: .* same address as owner"):
        await invite_codes.register(pg, "twin", code, DAY0, limiter=_limiter())
    assert await pg.fetchval("SELECT count(*) FROM invite_owner_discounts") == 0


@pytest.mark.rule("F3")
async def test_invite_code_and_refer_a_friend_do_not_combine(pg, smtp) -> None:
    await customers(pg, "alice", "bob", "owner")
    await refer_and_sign_up(pg, smtp, "alice", "bob", "9.99", DAY0)
    code = await invite_codes.code_for(pg, "owner")
    with pytest.raises(ReferralError, match="cannot be combined"):
        await invite_codes.register(pg, "bob", code, DAY0, limiter=_limiter())


# --- affiliates -----------------------------------------------------------------------------


@pytest.mark.rule("F4")
async def test_affiliate_purchases_attributed_within_the_window(pg) -> None:
    from datetime import UTC, datetime

    await pg.execute("TRUNCATE affiliates CASCADE")  # not under customers: not emptied by `pg`
    secret = "s3cret"
    t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    await affiliates.upsert_affiliate(pg, "blog-a", "Blog A", D("0.10"))
    await affiliates.upsert_affiliate(pg, "blog-b", "Blog B", D("0.05"))
    link_a = await affiliates.link_for(pg, secret, "blog-a", t0)
    link_b = await affiliates.link_for(pg, secret, "blog-b", t0)
    await affiliates.record_click(pg, secret, link_a, "visitor-1", t0)
    got = await affiliates.record_purchase(pg, "visitor-1", "ord-1", D("99.99"),
                                           t0 + timedelta(days=29), window_days=30)  # fmt: skip
    assert got == {"affiliate_id": "blog-a", "commission": D("9.99900"), "order_ref": "ord-1"}
    # The same order again is not attributed twice.
    again = await affiliates.record_purchase(pg, "visitor-1", "ord-1", D("99.99"),
                                             t0 + timedelta(days=29), window_days=30)  # fmt: skip
    assert again == got
    # Outside the window: no attribution. A later click by another affiliate wins.
    assert await affiliates.record_purchase(pg, "visitor-1", "ord-2", D("10"),
                                            t0 + timedelta(days=31), window_days=30) is None  # fmt: skip
    await affiliates.record_click(pg, secret, link_b, "visitor-1", t0 + timedelta(days=40))
    got = await affiliates.record_purchase(pg, "visitor-1", "ord-3", D("10"),
                                           t0 + timedelta(days=41), window_days=30)  # fmt: skip
    assert got["affiliate_id"] == "blog-b"
    ledger = await affiliates.ledger(pg, "blog-a")
    assert [e["order_ref"] for e in ledger["entries"]] == ["ord-1"]
    assert ledger["total_commission"] == D("9.999")
    forged = link_a.rsplit(".", 1)[0].replace("blog-a", "blog-b") + "." + link_a.rsplit(".", 1)[1]
    with pytest.raises(ReferralError, match="not a genuine affiliate link"):
        await affiliates.record_click(pg, secret, forged, "visitor-2", t0)


# --- outbox ---------------------------------------------------------------------------------


class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such user"


async def test_outbox_waits_for_an_smtp_server_that_is_down_and_loses_nothing(pg) -> None:
    await customers(pg, "alice")
    await refer_a_friend.refer(pg, "alice", "bob@mail.test", DAY0, link_base=LINK, daily_cap=5)
    await invite_codes.invite(pg, "alice", "sms", "+17275550100", DAY0, daily_cap=5)
    port = free_port()
    sender = outbox.SmtpSender("127.0.0.1", port, "referrals@sipcc.test")
    sms = outbox.HttpSmsProvider(f"http://127.0.0.1:{free_port()}/send", timeout=2)
    for _ in range(outbox.MAX_ATTEMPTS + 1):  # more passes than attempts: still waiting
        counts = await outbox.deliver_pending(pg, sender, sms)
        assert counts == {"sent": 0, "failed": 2, "waiting": 0}
    rows = await pg.fetch("SELECT status, attempts, last_error FROM referral_outbox ORDER BY id")
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 0), ("pending", 0)]
    assert "Connection refused" in rows[0]["last_error"]

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert (await outbox.deliver_pending(pg, sender, None))["sent"] == 1
    finally:
        controller.stop()
    assert inbox.messages[0]["To"] == "bob@mail.test"
    assert [r["status"] for r in await pg.fetch(
        "SELECT status FROM referral_outbox ORDER BY id")] == ["sent", "pending"]  # fmt: skip


async def test_outbox_gives_up_on_a_refused_address_after_five_attempts(pg) -> None:
    await customers(pg, "alice")
    await refer_a_friend.refer(pg, "alice", "ghost@mail.test", DAY0, link_base=LINK, daily_cap=5)
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        sender = outbox.SmtpSender("127.0.0.1", controller.port, "referrals@sipcc.test")
        for _ in range(outbox.MAX_ATTEMPTS):
            await outbox.deliver_pending(pg, sender, None)
    finally:
        controller.stop()
    row = await pg.fetchrow("SELECT status, attempts, last_error FROM referral_outbox")
    assert (row["status"], row["attempts"]) == ("failed", 5)
    assert "no such user" in row["last_error"]
