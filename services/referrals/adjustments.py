"""The referral programmes' lines on a customer's monthly invoice (F1, F2, F5, F6).

Billing calls `invoice_adjustments(conn, customer_id, period_start, period_end,
basic_fee=...)` once per invoice. The period is given by its first and last day (both
included). `basic_fee` is the month's basic service fee (MRC) on that invoice: the friend's
free month (F1) and every percentage discount (F5, F6) apply to it and to nothing else — in
particular never to SMS packages (F6). `chargeable`, when given, is the invoice's total
before these lines: posted refer-a-friend credits have no cash value (F2), so a credit
never takes an invoice below zero and what is left carries to the next invoice.

`adjustments_for()` is the same computation on facts already read (unit tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import asyncpg

from rater.money import round_internal
from services.referrals.periods import days
from services.referrals.tiers import Grant

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Adjustment:
    kind: str  # referral_credit | referral_first_month_free | invite_discount | invite_owner_discount | invite_sms_package
    description: str
    amount: Decimal  # negative for credits and discounts; 5 decimal places (billing rounds)
    rule: str  # the SPEC rule, e.g. "F2"
    base: Decimal | None = None  # what a percentage discount applies to (the basic fee)
    percent: Decimal | None = None  # a discount's percentage, averaged over the period's days


@dataclass(frozen=True)
class PostedCredit:
    referral_id: int
    friend_id: str
    posted_on: date
    amount: Decimal


@dataclass(frozen=True)
class ReferralFacts:
    """What the programmes know about one customer, read once per invoice."""

    free_month_on: date | None = None  # F1: the day it signed up through an e-coupon
    free_month_fee: Decimal | None = None  # the plan fee it chose then
    credits: tuple[PostedCredit, ...] = ()  # F2: credits posted to it as a referrer
    credits_used_before: Decimal = ZERO  # what earlier invoices already took of them
    client_discount: tuple[date, date, int] | None = None  # F5: [from, to), percent
    owner_grants: tuple[Grant, ...] = field(default_factory=tuple)  # F6, oldest first


def _owner_percent(grants: tuple[Grant, ...], day: date) -> int:
    # The newest grant covering the day supersedes the older ones (raised and extended).
    for g in reversed(grants):
        if g.starts_on <= day < g.ends_on:
            return g.percent
    return 0


def adjustments_for(
    facts: ReferralFacts,
    period_start: date,
    period_end: date,
    basic_fee: Decimal,
    chargeable: Decimal | None = None,
) -> tuple[list[Adjustment], Decimal]:
    """The invoice lines and how much of the posted credits this invoice uses."""
    if period_end < period_start:
        raise ValueError(f"period ends ({period_end}) before it starts ({period_start})")
    if basic_fee < 0:
        raise ValueError(f"a basic fee cannot be negative, got {basic_fee}")
    lines: list[Adjustment] = []

    base = basic_fee
    if facts.free_month_on and period_start <= facts.free_month_on <= period_end:
        free = min(facts.free_month_fee or ZERO, basic_fee)
        lines.append(Adjustment(
            "referral_first_month_free",
            "Refer-a-friend: first month's basic service fee free",
            -round_internal(free), "F1", base=basic_fee,
        ))  # fmt: skip
        base -= free

    period = days(period_start, period_end + timedelta(1))
    client_pct = [0] * len(period)
    if facts.client_discount:
        start, end, pct = facts.client_discount
        client_pct = [pct if start <= d < end else 0 for d in period]
    owner_pct = [
        min(_owner_percent(facts.owner_grants, d), 100 - c) for d, c in zip(period, client_pct, strict=True)
    ]
    for kind, rule, pcts, text in (
        ("invite_discount", "F5", client_pct, "Invite code: new client's discount"),
        ("invite_owner_discount", "F6", owner_pct, "Invite code: discount for clients brought"),
    ):
        if not any(pcts) or base <= 0:
            continue
        average = Decimal(sum(pcts)) / len(period)
        covered = sum(1 for p in pcts if p)
        lines.append(Adjustment(
            kind,
            f"{text}, {round_internal(average).normalize():f}% of the basic service fee "
            f"(on {covered} of {len(period)} days; not on SMS packages)",
            -round_internal(base * average / HUNDRED), rule, base=base,
            percent=round_internal(average),
        ))  # fmt: skip

    for g in facts.owner_grants:
        if g.sms_package and period_start <= g.starts_on <= period_end:
            lines.append(Adjustment(
                "invite_sms_package",
                f"Invite code: {g.sms_package:,}-SMS package included free (F6)",
                ZERO, "F6",
            ))  # fmt: skip

    posted = sum((c.amount for c in facts.credits if c.posted_on <= period_end), ZERO)
    available = max(posted - facts.credits_used_before, ZERO)
    used = available
    if chargeable is not None:
        room = chargeable + sum((a.amount for a in lines), ZERO)
        used = min(available, max(room, ZERO))
    if used > 0:
        carried = available - used
        note = f"; ${carried:.2f} carries to the next invoice" if carried else ""
        lines.append(Adjustment(
            "referral_credit",
            f"Refer-a-friend credit (no cash value){note}",
            -round_internal(used), "F2",
        ))  # fmt: skip
    return lines, round_internal(used)


async def load_facts(
    conn: asyncpg.Connection, customer_id: str, period_start: date, period_end: date
) -> ReferralFacts:
    friend = await conn.fetchrow(
        "SELECT signed_up_on, plan_fee FROM raf_referrals WHERE friend_id = $1 "
        "AND status <> 'invited'", customer_id,
    )  # fmt: skip
    credits = await conn.fetch(
        "SELECT id, friend_id, settled_on, credit FROM raf_referrals "
        "WHERE referrer_id = $1 AND status = 'credited' AND settled_on <= $2 ORDER BY settled_on, id",
        customer_id, period_end,
    )  # fmt: skip
    used_before = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM raf_credit_applications "
        "WHERE customer_id = $1 AND period_start < $2", customer_id, period_start,
    )  # fmt: skip
    client = await conn.fetchrow(
        "SELECT discount_from, discount_to, percent FROM invite_registrations WHERE client_id = $1",
        customer_id,
    )  # fmt: skip
    grants = await conn.fetch(
        "SELECT level, percent, starts_on, ends_on, sms_package FROM invite_owner_discounts "
        "WHERE owner_id = $1 ORDER BY starts_on, id", customer_id,
    )  # fmt: skip
    return ReferralFacts(
        free_month_on=friend["signed_up_on"] if friend else None,
        free_month_fee=friend["plan_fee"] if friend else None,
        credits=tuple(
            PostedCredit(r["id"], r["friend_id"], r["settled_on"], r["credit"]) for r in credits
        ),
        credits_used_before=used_before,
        client_discount=(
            (client["discount_from"], client["discount_to"], client["percent"]) if client else None
        ),
        owner_grants=tuple(Grant(**dict(g)) for g in grants),
    )


async def invoice_adjustments(
    conn: asyncpg.Connection,
    customer_id: str,
    period_start: date,
    period_end: date,
    *,
    basic_fee: Decimal,
    chargeable: Decimal | None = None,
) -> list[Adjustment]:
    """The referral lines of one invoice. Records how much of the posted credits it used
    (keyed by customer and period, so running the same invoice again changes nothing)."""
    facts = await load_facts(conn, customer_id, period_start, period_end)
    lines, used = adjustments_for(facts, period_start, period_end, basic_fee, chargeable)
    if facts.credits:
        await conn.execute(
            "INSERT INTO raf_credit_applications (customer_id, period_start, amount) "
            "VALUES ($1, $2, $3) ON CONFLICT (customer_id, period_start) "
            "DO UPDATE SET amount = EXCLUDED.amount", customer_id, period_start, used,
        )  # fmt: skip
    return lines


async def billing_provider(
    conn: asyncpg.Connection, customer_id: str, period, *, basic_fee: Decimal,
    chargeable: Decimal,
) -> list[Adjustment]:  # fmt: skip
    """The same lines in the shape of services/billing's adjustment hook, which passes a
    calendar-month `period` (with `.start`)."""
    start = period.start
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return await invoice_adjustments(conn, customer_id, start, end, basic_fee=basic_fee,
                                     chargeable=chargeable)  # fmt: skip
