"""Edges of the billing rules, each by its rule: boundaries, soft-cap flags, bad input."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from services.billing import charges, rules, taxes
from services.billing.model import Event, Outage, Period, Service, Terms
from tests.unit.test_billing_golden import at, calls

TERMS = Terms("c", "C", trunks=1)


@pytest.mark.rule("B1")
def test_short_calls_at_exactly_five_percent_and_six_seconds() -> None:
    five = calls(1, "interstate", 6, "0.01", duration_ms=6_000) + calls(19, "interstate", 60, "0.01")
    assert rules.short_calls(five, TERMS).exact == D("0.03")  # 1 of 20 = 5% ≥ 5%
    longer = calls(1, "interstate", 12, "0.01", duration_ms=6_001) + calls(19, "interstate", 60, "0.01")
    assert rules.short_calls(longer, TERMS) is None  # 6.001 s is not short
    assert rules.short_calls(calls(1, "interstate", 6, "0.01", duration_ms=6_000) +
                             calls(20, "interstate", 60, "0.01"), TERMS) is None  # 4.76%


@pytest.mark.rule("B2")
@pytest.mark.rule("B3")
def test_soft_caps_apply_only_when_the_customer_flag_is_set() -> None:
    heavy = calls(2_001, "inbound", 60, "0")  # 2,001 min on 1 trunk: 1 min over
    assert rules.local_inbound_cap(heavy, TERMS) is None
    capped = Terms("c", "C", trunks=1, enforce_local_inbound_cap=True)
    assert rules.local_inbound_cap(heavy, capped).exact == D("0.01800")  # 1 min × 0.018
    assert rules.local_inbound_cap(calls(2_000, "local", 60, "0"), capped) is None  # at the cap
    assert rules.ld_minimum([], TERMS) is None
    floor = Terms("c", "C", trunks=1, enforce_ld_minimum=True)
    assert rules.ld_minimum([], floor).exact == D("5.70000")  # 300 min × 0.019
    assert rules.ld_minimum(calls(300, "international", 60, "0.1"), floor) is None


@pytest.mark.rule("B4")
def test_rboc_threshold_met_at_75_percent() -> None:
    met = calls(3, "intrastate", 60, "0.01", category="wireless") + calls(1, "intrastate", 60, "0.01", category="clec")
    assert rules.rboc_threshold(met, TERMS) is None
    unknown = calls(10, "interstate", 60, "0.01", category=None)
    assert rules.rboc_threshold(unknown, TERMS) is None  # no evidence either way
    waived = Terms("c", "C", trunks=1, enforce_rboc_threshold=False)
    assert rules.rboc_threshold(calls(4, "interstate", 60, "0.01", category="clec"), waived) is None


@pytest.mark.rule("B5")
def test_lnp_cancellation_at_exactly_48_hours_is_within_48_hours() -> None:
    foc = at(2026, 4, 15, 9)
    assert charges.nrc_line(Event("lnp_cancel", foc - timedelta(hours=48), ("+1",), foc)).exact == D("75")
    assert charges.nrc_line(Event("lnp_cancel", foc - timedelta(hours=48, seconds=1), ("+1",), foc)).exact == D("6")
    ported = at(2026, 4, 1, 12)
    late = Event("reinstate", ported + timedelta(hours=25), ("+1",), ported_at=ported)
    assert charges.nrc_line(late).exact == D("5")  # Decision: after 24 h, a port-out
    assert charges.nrc_line(Event("port_in", ported, ("+1", "+2"))) is None
    with pytest.raises(ValueError, match="FOC date is missing"):
        charges.nrc_line(Event("lnp_cancel", ported, ("+1",), id=9))


@pytest.mark.rule("B7")
def test_no_early_termination_fee_after_the_term() -> None:
    terms = Terms("c", "C", 1, (Service("t", "T", "trunk", D("10"), None),),
                  term_start=date(2025, 1, 1), initial_term_months=12)  # fmt: skip
    assert charges.early_termination(terms, [Event("terminate", at(2026, 1, 1))]) is None
    assert charges.remaining_months(date(2025, 12, 31), date(2026, 1, 1)) == 1


@pytest.mark.rule("B8")
def test_sla_credit_only_below_99_9_percent_and_on_request() -> None:
    terms = Terms("c", "C", 1, (Service("f", "Fiber", "circuit", D("720"), 1, circuit_id="K", sla=True),))
    april = Period(2026, 4)  # 720 h: the allowance is 0.72 h
    short = [Outage("K", at(2026, 4, 2, 0), at(2026, 4, 2, 0, 43))]  # 0.7167 h
    assert charges.sla_credits(terms, short, april) == []
    hour = [Outage("K", at(2026, 4, 2, 0), at(2026, 4, 2, 1))]
    assert charges.sla_credits(terms, hour, april)[0].exact == D("-1.00000")  # 720 ÷ 720 × 1
    unasked = [Outage("K", at(2026, 4, 2, 0), at(2026, 4, 2, 1), credit_requested=False)]
    assert charges.sla_credits(terms, unasked, april) == []


@pytest.mark.rule("B6")
def test_bad_tax_configuration_and_period_are_named() -> None:
    with pytest.raises(ValueError, match=r"billing_taxes\[0\]"):
        taxes.parse_taxes([{"code": "USF", "rate": "2", "applies_to": ["mrc"]}])
    with pytest.raises(ValueError, match="YYYY-MM"):
        Period.parse("2026-9")
    assert str(Period.parse("2026-12").next()) == "2027-01"
