"""Referral credits and discounts on real invoices: services/billing issues the months and
takes the referral lines through its adjustment hook (issue 8 'Done when' 1; F1, F2, F6)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from services import refdata
from services.billing import store
from services.billing.model import Period
from services.referrals import invite_codes, refer_a_friend
from services.referrals.customers import Profile, save_profile
from services.referrals.guards import AttemptLimiter
from services.referrals.refer_a_friend import SignUp, token_hash

NOW = datetime(2027, 1, 5, tzinfo=UTC)


async def _customer(pg, cid: str, mrc: str) -> None:
    await pg.execute(
        "INSERT INTO rate_plans (id, name, interstate_per_minute, intrastate_per_minute, "
        "local_per_minute) VALUES ('plan', 'plan', 0.01, 0.01, 0) ON CONFLICT DO NOTHING"
    )
    await pg.execute("INSERT INTO customers (id, name, rate_plan_id) VALUES ($1, $1, 'plan')", cid)
    await pg.execute(
        "INSERT INTO billing_services (customer_id, id, description, kind, unit_mrc, quantity) "
        "VALUES ($1, 'plan', 'Basic service', 'other', $2, 1)", cid, D(mrc),
    )  # fmt: skip


async def _invoice(pg, cid: str, month: int) -> list[tuple]:
    issued = await store.issue(pg, cid, Period(2026, month), await refdata.load_cached(pg), [],
                               NOW)  # fmt: skip
    return [(ln.kind, ln.rule, ln.amount) for ln in issued.invoice.lines
            if ln.kind in ("mrc", "adjustment")] + [("total", None, issued.invoice.total)]  # fmt: skip


@pytest.mark.rule("F2")
async def test_refer_a_friend_on_the_invoices_of_both(pg) -> None:
    await _customer(pg, "ref", "19.99")
    await _customer(pg, "frd", "24.99")
    signed = date(2026, 6, 10)
    await refer_a_friend.refer(pg, "ref", "frd@mail.test", signed, link_base="x", daily_cap=5)
    # The e-mailed coupon is what the friend brings; here it is set to a known token.
    await pg.execute("UPDATE raf_referrals SET token_hash = $1", token_hash("coupon-frd-0001"))
    await refer_a_friend.sign_up(pg, "coupon-frd-0001", SignUp("frd", D("24.99")), signed)

    # F1: the friend's first month's basic fee is free; the second is charged.
    assert await _invoice(pg, "frd", 6) == [
        ("mrc", "B6", D("24.99")), ("adjustment", "F1", D("-24.99")), ("total", None, D("0.00"))]
    assert (await _invoice(pg, "frd", 7))[-1] == ("total", None, D("24.99"))

    # F2: the credit posts on day 90 (8 September) — $49.98 by the rule, not the chart's $48.98 —
    # and, having no cash value, is used up over the referrer's next invoices.
    await refer_a_friend.settle(pg, signed + timedelta(days=89))
    assert await _invoice(pg, "ref", 8) == [("mrc", "B6", D("19.99")), ("total", None, D("19.99"))]
    await refer_a_friend.settle(pg, signed + timedelta(days=90))
    assert await _invoice(pg, "ref", 9) == [
        ("mrc", "B6", D("19.99")), ("adjustment", "F2", D("-19.99")), ("total", None, D("19.99"))]
    # September's total still carries August's unpaid 19.99; October and November use the rest.
    october = await _invoice(pg, "ref", 10)
    assert october[1] == ("adjustment", "F2", D("-19.99"))
    november = await _invoice(pg, "ref", 11)
    assert november[1] == ("adjustment", "F2", D("-10.00"))  # 49.98 − 19.99 − 19.99
    assert [ln for ln in await _invoice(pg, "ref", 12) if ln[0] == "adjustment"] == []


@pytest.mark.rule("F6")
async def test_invite_code_discounts_on_the_invoices(pg) -> None:
    await _customer(pg, "own", "30.00")
    await _customer(pg, "cli", "30.00")
    code = await invite_codes.code_for(pg, "own")
    await save_profile(pg, "cli", Profile(activated_on=date(2026, 6, 10),
                                          promo_ends_on=date(2026, 7, 1)))  # fmt: skip
    await invite_codes.register(pg, "cli", code, date(2026, 6, 16),
                                limiter=AttemptLimiter(None, "t:", 10, 60))  # fmt: skip
    # The owner: 20% from 16 June for 3 months — 15 of June's 30 days, then whole months.
    assert (await _invoice(pg, "own", 6))[:2] == [("mrc", "B6", D("30.00")),
                                                  ("adjustment", "F6", D("-3.00"))]  # fmt: skip
    assert (await _invoice(pg, "own", 7))[1] == ("adjustment", "F6", D("-6.00"))
    # Until 15 September: 15 of 30 days.
    assert (await _invoice(pg, "own", 9))[1] == ("adjustment", "F6", D("-3.00"))
    # The client (F5): 20% for three months after its promo ends on 1 July.
    assert [ln for ln in await _invoice(pg, "cli", 6) if ln[0] == "adjustment"] == []
    for month in (7, 8, 9):
        assert (await _invoice(pg, "cli", month))[1] == ("adjustment", "F5", D("-6.00"))
    assert [ln for ln in await _invoice(pg, "cli", 10) if ln[0] == "adjustment"] == []
