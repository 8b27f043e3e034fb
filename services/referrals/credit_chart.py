"""Refer-a-friend money and time (F1, F2), as pure functions, and the source's credit chart.

The referrer's credit is computed from the rule — two months of the friend's plan, at most
$50 — never looked up in the chart: the chart (seeds/referral-refer-a-friend.txt) is kept
here only so a test can hold every row against the rule. Its Global Plan row says $48.98
where 2 × $24.99 = $49.98; SPEC F2 calls that row a typo, and `chart_disagreements()`
reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from rater.money import round_internal

CREDIT_MONTHS = 2
CREDIT_CAP = Decimal("50.00")
MATURITY = timedelta(days=90)


def referrer_credit(plan_fee: Decimal) -> Decimal:
    """F2: 2 months of the plan the friend chose, capped at $50."""
    if plan_fee < 0:
        raise ValueError(f"a plan fee cannot be negative, got {plan_fee}")
    return round_internal(min(CREDIT_MONTHS * plan_fee, CREDIT_CAP))


def matures_on(signed_up_on: date) -> date:
    """F2: the credit posts 90 days after the friend signs up (day 90, not day 89)."""
    return signed_up_on + MATURITY


@dataclass(frozen=True)
class ChartRow:
    plan: str
    friend_credit: Decimal  # the friend's first month free: one month of the plan
    your_credit: Decimal  # what the chart says the referrer gets


CREDIT_CHART: tuple[ChartRow, ...] = tuple(
    ChartRow(plan, Decimal(friend), Decimal(yours))
    for plan, friend, yours in (
        ("Global Plan", "24.99", "48.98"),
        ("Residential Unlimited Plan", "19.99", "39.98"),
        ("Residential Basic Plan", "9.99", "19.98"),
        ("Residential Global 2 Line Plan", "48.99", "50.00"),
        ("Residential Unlimited 2 Line Plan", "38.99", "50.00"),
        ("Residential Basic 2 Line Plan", "18.99", "37.98"),
        ("Home Office Plan", "49.99", "50.00"),
    )
)


def chart_disagreements(chart: tuple[ChartRow, ...] = CREDIT_CHART) -> list[str]:
    """The chart rows whose credit is not what F2 computes, each said in one line."""
    out = []
    for row in chart:
        ruled = referrer_credit(row.friend_credit)
        if row.your_credit != ruled:
            out.append(
                f"{row.plan}: the chart lists ${row.your_credit} for a ${row.friend_credit} "
                f"plan, but F2 gives min(2 × ${row.friend_credit}, $50) = ${ruled:.2f}; "
                f"${ruled:.2f} is credited"
            )
    return out
