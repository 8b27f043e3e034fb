"""Referral programme rules as pure functions (SPEC F1, F2, F5, F6): the credit chart,
maturity, invite-code tiers, and the invoice lines computed from them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referrals.adjustments import PostedCredit, ReferralFacts, adjustments_for
from services.referrals.affiliates import sign_link, verify_link
from services.referrals.credit_chart import (
    CREDIT_CHART,
    chart_disagreements,
    matures_on,
    referrer_credit,
)
from services.referrals.errors import ReferralError
from services.referrals.guards import identity_key
from services.referrals.invite_codes import ALPHABET, normalize_code
from services.referrals.tiers import (
    Grant,
    client_discount,
    owner_grant,
    registration_window_closes,
    tier,
)

D = Decimal


# --- F2: every row of the source credit chart --------------------------------------------

CONSISTENT_ROWS = [r for r in CREDIT_CHART if r.plan != "Global Plan"]


@pytest.mark.rule("F2")
@pytest.mark.parametrize("row", CONSISTENT_ROWS, ids=lambda r: r.plan)
def test_chart_row_agrees_with_rule(row) -> None:
    assert referrer_credit(row.friend_credit) == row.your_credit


@pytest.mark.rule("F2")
def test_chart_global_plan_row_is_inconsistent_and_rule_wins() -> None:
    row = next(r for r in CREDIT_CHART if r.plan == "Global Plan")
    assert (row.friend_credit, row.your_credit) == (D("24.99"), D("48.98"))
    assert referrer_credit(row.friend_credit) == D("49.98")  # what is credited
    assert referrer_credit(row.friend_credit) != row.your_credit
    assert chart_disagreements() == [
        "Global Plan: the chart lists $48.98 for a $24.99 plan, but F2 gives "
        "min(2 × $24.99, $50) = $49.98; $49.98 is credited"
    ]


def test_chart_holds_all_seven_source_rows() -> None:
    assert len(CREDIT_CHART) == 7


@pytest.mark.rule("F2")
@given(st.decimals(min_value=0, max_value=1000, places=2))
def test_credit_is_two_months_capped_at_50(fee: Decimal) -> None:
    credit = referrer_credit(fee)
    assert credit == min(2 * fee, D(50))
    assert D(0) <= credit <= D(50)


@pytest.mark.rule("F2")
def test_credit_matures_on_day_90_not_89() -> None:
    signed = date(2026, 1, 10)
    assert matures_on(signed) == signed + timedelta(days=90) == date(2026, 4, 10)


# --- F5, F6: invite-code tiers ------------------------------------------------------------


@pytest.mark.rule("F6")
@pytest.mark.parametrize(
    ("level", "percent", "months"), [(1, 20, 3), (2, 40, 6), (3, 60, 12), (4, 80, 12), (5, 100, 12),
                                     (6, 100, 12)],
)  # fmt: skip
def test_tier_table(level: int, percent: int, months: int) -> None:
    assert (tier(level).percent, tier(level).months) == (percent, months)


@pytest.mark.rule("F6")
def test_five_clients_in_a_row_raise_and_extend_the_owner_discount() -> None:
    day = date(2026, 1, 15)
    grant = None
    seen = []
    for n in range(5):
        grant = owner_grant(day, grant, clients_before=n)
        seen.append((grant.level, grant.percent, grant.ends_on, grant.sms_package))
        day += timedelta(days=20)
    assert seen == [
        (1, 20, date(2026, 4, 15), None),
        (2, 40, date(2026, 8, 4), None),  # 2026-02-04 + 6 months
        (3, 60, date(2027, 2, 24), 1200),  # 2026-02-24 + 12 months, 1,200 SMS
        (4, 80, date(2027, 3, 16), None),
        (5, 100, date(2027, 4, 5), 3200),  # the fifth client: 100% for 12 months, 3,200 SMS
    ]


@pytest.mark.rule("F6")
def test_a_client_after_the_discount_lapsed_starts_again_at_20() -> None:
    first = owner_grant(date(2026, 1, 1), None, clients_before=0)
    later = owner_grant(date(2026, 6, 1), None, clients_before=1)  # nothing active then
    assert (later.level, later.percent, later.ends_on) == (1, 20, date(2026, 9, 1))
    assert first.ends_on < date(2026, 6, 1)


@pytest.mark.rule("F6")
def test_an_extension_never_shortens() -> None:
    long = Grant(5, 100, date(2026, 1, 1), date(2027, 1, 1), 3200)
    after = owner_grant(date(2026, 2, 1), long, clients_before=5)
    assert (after.percent, after.ends_on) == (100, date(2027, 2, 1))


@pytest.mark.rule("F5")
def test_registration_window_is_one_calendar_month() -> None:
    assert registration_window_closes(date(2026, 1, 15)) == date(2026, 2, 15)
    assert registration_window_closes(date(2026, 1, 31)) == date(2026, 2, 28)


@pytest.mark.rule("F5")
def test_client_discount_starts_after_the_promo_period() -> None:
    assert client_discount(date(2026, 1, 20), date(2026, 2, 1)) == (date(2026, 2, 1),
                                                                    date(2026, 5, 1))  # fmt: skip
    # A promo already over: the discount starts on the day the code is registered.
    assert client_discount(date(2026, 1, 20), date(2026, 1, 5)) == (date(2026, 1, 20),
                                                                    date(2026, 4, 20))  # fmt: skip
    assert client_discount(date(2026, 1, 20), None) == (date(2026, 1, 20), date(2026, 4, 20))


# --- invoice lines ------------------------------------------------------------------------

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


@pytest.mark.rule("F1")
def test_friend_first_month_basic_fee_free_only_in_its_first_month() -> None:
    facts = ReferralFacts(free_month_on=date(2026, 3, 10), free_month_fee=D("24.99"))
    lines, _ = adjustments_for(facts, *MARCH, basic_fee=D("24.99"))
    assert [(a.kind, a.amount, a.rule) for a in lines] == [
        ("referral_first_month_free", D("-24.99"), "F1")]  # fmt: skip
    lines, _ = adjustments_for(facts, date(2026, 4, 1), date(2026, 4, 30), basic_fee=D("24.99"))
    assert lines == []


@pytest.mark.rule("F5")
def test_client_discount_prorated_by_day_on_the_basic_fee_only() -> None:
    # 20% from 16 March: 16 of 31 days.
    facts = ReferralFacts(client_discount=(date(2026, 3, 16), date(2026, 6, 16), 20))
    (line,), _ = adjustments_for(facts, *MARCH, basic_fee=D("31.00"))
    assert (line.kind, line.rule, line.base) == ("invite_discount", "F5", D("31.00"))
    assert line.amount == D("-3.20000")  # 31.00 × 20% × 16/31
    (line,), _ = adjustments_for(facts, date(2026, 4, 1), date(2026, 4, 30), basic_fee=D("30"))
    assert line.amount == D("-6.00000")


@pytest.mark.rule("F6")
def test_owner_discount_never_exceeds_the_base_with_client_discount() -> None:
    facts = ReferralFacts(
        client_discount=(date(2026, 3, 1), date(2026, 6, 1), 20),
        owner_grants=(Grant(5, 100, date(2026, 3, 1), date(2027, 3, 1), 3200),),
    )
    lines, _ = adjustments_for(facts, *MARCH, basic_fee=D("40"))
    by_kind = {a.kind: a.amount for a in lines}
    assert by_kind == {"invite_discount": D("-8.00000"), "invite_owner_discount": D("-32.00000"),
                       "invite_sms_package": D(0)}  # fmt: skip
    assert sum(by_kind.values()) == D("-40")


@pytest.mark.rule("F2")
def test_posted_credit_has_no_cash_value_and_carries_forward() -> None:
    credits = (PostedCredit(1, "f", date(2026, 3, 5), D("49.98")),)
    lines, used = adjustments_for(ReferralFacts(credits=credits), *MARCH, basic_fee=D("19.99"),
                                  chargeable=D("30.00"))  # fmt: skip
    assert used == D("30.00000") and lines[-1].amount == D("-30.00000")
    assert "$19.98 carries" in lines[-1].description
    facts = ReferralFacts(credits=credits, credits_used_before=used)
    lines, used = adjustments_for(facts, date(2026, 4, 1), date(2026, 4, 30), D("19.99"),
                                  chargeable=D("30.00"))  # fmt: skip
    assert used == D("19.98000") and lines[-1].amount == D("-19.98000")


@given(
    fee=st.decimals(min_value=0, max_value=500, places=2),
    pct=st.sampled_from([20, 40, 60, 80, 100]),
    start=st.integers(0, 40),
)
def test_discounts_never_exceed_the_basic_fee(fee: Decimal, pct: int, start: int) -> None:
    day = date(2026, 3, 1) + timedelta(days=start - 10)
    facts = ReferralFacts(
        client_discount=(day, day + timedelta(days=90), 20),
        owner_grants=(Grant(1, pct, day, day + timedelta(days=30), None),),
    )
    lines, _ = adjustments_for(facts, *MARCH, basic_fee=fee)
    total = sum((a.amount for a in lines), D(0))
    assert -fee <= total <= 0


def test_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        adjustments_for(ReferralFacts(), date(2026, 3, 2), date(2026, 3, 1), D(1))


# --- guards and links (parsers of what users type) ----------------------------------------



@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=6),
       st.sampled_from([" ", ", ", ". ", " - ", "  #"]))  # fmt: skip
def test_identity_key_ignores_case_spacing_and_punctuation(words: list[str], sep: str) -> None:
    plain = " ".join(words).lower()
    noisy = "  " + sep.join(words).upper() + ". "
    assert identity_key(noisy) == identity_key(plain)
    assert identity_key(plain + " x") != identity_key(plain)


@given(st.text(alphabet=ALPHABET, min_size=10, max_size=10))
def test_codes_survive_how_people_type_them(code: str) -> None:
    typed = f" {code[:5].lower()}-{code[5:]} "
    assert normalize_code(typed) == code


@given(affiliate=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
       flip=st.integers(0, 200))  # fmt: skip
def test_affiliate_links_verify_and_any_change_is_refused(affiliate: str, flip: int) -> None:
    link = sign_link("k", affiliate, datetime(2026, 1, 1, tzinfo=UTC))
    assert verify_link("k", link) == affiliate
    i = flip % len(link)
    tampered = link[:i] + ("A" if link[i] != "A" else "B") + link[i + 1:]
    with pytest.raises(ReferralError, match="not a genuine affiliate link"):
        verify_link("k", tampered)
    with pytest.raises(ReferralError):
        verify_link("other key", link)
