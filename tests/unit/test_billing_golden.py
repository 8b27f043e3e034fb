"""Golden invoices: six customer-months of the service agreement, computed by hand.

Every expected figure shows its arithmetic and cites its rule. Usage amounts are what the
rater put on each CDR (R1: billed seconds × rate / 60, 5 places); the rules of the billing
cycle (B1–B10) are then applied to the month. The invoice is in cents: lines are rounded
together (rater.money.allocate_cents), which for these months equals half-up per line.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from rater.money import usage_amount
from services.billing.invoice import assemble
from services.billing.model import (
    Adjustment,
    BillingInputs,
    Call,
    DisputeCredit,
    Event,
    Outage,
    Payment,
    Period,
    Service,
    TaxRate,
    Terms,
)

USF = TaxRate("USF", "Federal Universal Service Fund", D("0.366"),
              ("usage:interstate", "usage:international"))  # fmt: skip
TRUNK = D("24.99")


def calls(n: int, jurisdiction: str, seconds: int, rate: str, *, category: str | None = "rboc_ilec",
          duration_ms: int | None = None, direction: str = "outbound",
          answered: bool = True) -> list[Call]:  # fmt: skip
    """n identical rated CDRs: `seconds` billed at `rate` per minute (R1)."""
    amount = usage_amount(seconds, D(rate)) if answered else D(0)
    ms = seconds * 1000 if duration_ms is None else duration_ms
    return [Call(direction, jurisdiction, ms if answered else 0, seconds if answered else 0,
                 amount, answered, category) for _ in range(n)]  # fmt: skip


def lines(inv) -> list[tuple[str, D]]:
    return [(ln.kind, ln.amount) for ln in inv.lines]


def at(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.rule("B6")
def test_small_office_march() -> None:
    """A small office: 2 trunks, 10 DIDs, ordinary traffic; no usage rule triggers; a
    referral credit arrives through the adjustments hook; last month paid in full."""
    terms = Terms("dental", "Acme Dental", trunks=2, services=(
        Service("trunks", "Two-Way SIP Trunk", "trunk", TRUNK, None),
        Service("dids", "DID numbers", "did", D("1.00"), 10),
    ))  # fmt: skip
    cdrs = (calls(200, "interstate", 180, "0.012")  # 600 min
            + calls(150, "intrastate", 120, "0.015")  # 300 min
            + calls(300, "local", 240, "0.005")  # 1,200 min
            + calls(400, "inbound", 300, "0")  # free inbound
            + calls(10, "inbound", 6, "0", duration_ms=5_000))  # 10 short calls  # fmt: skip
    inv = assemble(BillingInputs(
        terms, Period(2026, 3), cdrs, taxes=[USF], previous_balance=D("65.00"),
        payments=[Payment(at(2026, 3, 10), D("65.00"), "ACH 1001")],
        adjustments=[Adjustment("referral_credit", "Refer-a-friend credit", D("-49.98"), "F2")],
    ))  # fmt: skip
    assert lines(inv) == [
        ("mrc", D("49.98")),  # B6: 2 trunks × 24.99
        ("mrc", D("10.00")),  # B6: 10 DIDs × 1.00
        ("usage", D("6.00")),  # local: 300 × 4 min = 1,200 min × 0.005
        ("usage", D("4.50")),  # intrastate: 150 × 2 min = 300 min × 0.015
        ("usage", D("7.20")),  # interstate: 200 × 3 min = 600 min × 0.012
        # B1: 10 short of 1,060 completed = 0.94% < 5%: no charge. B4: all RBOC: none.
        ("adjustment", D("-49.98")),  # F2 hook: referral credit as the programme sent it
        ("tax", D("2.64")),  # B6: USF 7.20 × 0.366 = 2.6352 → 2.64
        ("previous_balance", D("65.00")),
        ("payment", D("-65.00")),
    ]
    # 49.98 + 10 + 6 + 4.50 + 7.20 − 49.98 + 2.6352 + 65 − 65 = 30.3352 → 30.34
    assert inv.total == D("30.34")


@pytest.mark.rule("B2")
def test_call_center_over_the_inbound_cap_april() -> None:
    """A call center: 10 trunks, heavy inbound over B2's cap (flag on), a won dispute."""
    terms = Terms("callco", "CallCo", trunks=10, enforce_local_inbound_cap=True,
                  enforce_ld_minimum=True,
                  services=(Service("trunks", "Two-Way SIP Trunk", "trunk", D("19.99"), None),))  # fmt: skip
    cdrs = (calls(5_000, "inbound", 300, "0", direction="inbound")  # 25,000 min
            + calls(2_000, "toll_free_inbound", 180, "0.029", direction="inbound",
                    category="wireless")  # 6,000 min
            + calls(3_000, "interstate", 120, "0.01"))  # 6,000 min  # fmt: skip
    inv = assemble(BillingInputs(
        terms, Period(2026, 4), cdrs, taxes=[USF],
        dispute_credits=[DisputeCredit(7, D("25.00"), "March 411 calls billed twice")],
    ))  # fmt: skip
    assert lines(inv) == [
        ("mrc", D("199.90")),  # B6: 10 trunks × 19.99
        ("usage", D("60.00")),  # interstate: 3,000 × 2 min = 6,000 min × 0.01
        ("usage", D("174.00")),  # R9: 800 inbound 2,000 × 3 min = 6,000 min × 0.029
        # B2: inbound 25,000 + 6,000 = 31,000 min − cap 2,000 × 10 = 20,000 → 11,000 × 0.018
        ("local_inbound_cap", D("198.00")),
        # B3: LD 6,000 min ≥ 300 × 10 = 3,000: no charge.
        ("dispute_credit", D("-25.00")),  # B9: won dispute credited on the next invoice
        ("tax", D("21.96")),  # B6: USF 60.00 × 0.366 = 21.96
        ("previous_balance", D("0.00")),
    ]
    # 199.90 + 60 + 174 + 198 − 25 + 21.96 = 628.86
    assert inv.total == D("628.86")


@pytest.mark.rule("B3")
def test_low_usage_under_the_ld_minimum_february() -> None:
    """A low-usage customer: 4 trunks, 310 LD minutes against a minimum of 1,200 (flag on)."""
    terms = Terms("quiet", "Quiet Law LLP", trunks=4, enforce_ld_minimum=True,
                  services=(Service("trunks", "Two-Way SIP Trunk", "trunk", TRUNK, 4),))  # fmt: skip
    cdrs = (calls(50, "interstate", 300, "0.012")  # 250 min
            + calls(20, "intrastate", 150, "0.015")  # 50 min
            + calls(5, "international", 120, "0.10", category=None))  # 10 min  # fmt: skip
    inv = assemble(BillingInputs(terms, Period(2026, 2), cdrs, taxes=[USF]))
    assert lines(inv) == [
        ("mrc", D("99.96")),  # B6: 4 × 24.99
        ("usage", D("0.75")),  # intrastate 50 min × 0.015
        ("usage", D("3.00")),  # interstate 250 min × 0.012
        ("usage", D("1.00")),  # international 10 min × 0.10
        # B3: LD = 250 + 50 + 10 = 310 min < 300 × 4 = 1,200 → shortfall 890 min × 0.019
        ("ld_minimum", D("16.91")),
        ("tax", D("1.46")),  # B6: USF (3.00 + 1.00) × 0.366 = 1.464 → 1.46
        ("previous_balance", D("0.00")),
    ]
    # 99.96 + 0.75 + 3.00 + 1.00 + 16.91 + 1.464 = 123.084 → 123.08
    assert inv.total == D("123.08")


@pytest.mark.rule("B4")
def test_terminator_to_clecs_january() -> None:
    """A terminator: 70% of its flat-rate calls end on CLECs (B4 threshold missed)."""
    terms = Terms("term", "Termin8 Inc", trunks=2,
                  services=(Service("trunks", "Two-Way SIP Trunk", "trunk", TRUNK, None),))  # fmt: skip
    cdrs = (calls(300, "interstate", 120, "0.008", category="rboc_ilec")  # 600 min
            + calls(700, "interstate", 120, "0.008", category="clec")  # 1,400 min
            + calls(20, "interstate", 60, "0.008", category=None))  # 20 min, network unknown  # fmt: skip
    inv = assemble(BillingInputs(terms, Period(2026, 1), cdrs, taxes=[USF]))
    assert lines(inv) == [
        ("mrc", D("49.98")),  # B6: 2 × 24.99
        ("usage", D("16.16")),  # interstate: (600 + 1,400 + 20) min = 2,020 min × 0.008
        # B4: 300 of 1,000 known calls = 30% < 75%; needed = 0.75 × 2,000 − 600 = 900 min
        #     × 0.06 (unknown-network calls left out of both counts)
        ("rboc_threshold", D("54.00")),
        ("tax", D("5.91")),  # B6: USF 16.16 × 0.366 = 5.91456 → 5.91
        ("previous_balance", D("0.00")),
    ]
    # 49.98 + 16.16 + 54.00 + 5.91456 = 126.05456 → 126.05
    assert inv.total == D("126.05")


@pytest.mark.rule("B1")
def test_robocaller_short_calls_may() -> None:
    """A robocaller: 30% of its completed calls last 6 s or less (B1)."""
    terms = Terms("robo", "Outreach Dialers", trunks=2,
                  services=(Service("trunks", "Two-Way SIP Trunk", "trunk", TRUNK, None),))  # fmt: skip
    cdrs = (calls(3_000, "interstate", 6, "0.01", duration_ms=4_000, category="wireless")
            + calls(7_000, "interstate", 30, "0.01", category="wireless")
            + calls(50, "interstate", 0, "0.01", answered=False))  # not completed  # fmt: skip
    inv = assemble(BillingInputs(terms, Period(2026, 5), cdrs, taxes=[USF]))
    assert lines(inv) == [
        ("mrc", D("49.98")),  # B6: 2 × 24.99
        # interstate: 3,000 × 6 s + 7,000 × 30 s = 228,000 s = 3,800 min × 0.01
        ("usage", D("38.00")),
        ("short_calls", D("90.00")),  # B1: 3,000 of 10,000 = 30% ≥ 5% → 3,000 × 0.03
        ("tax", D("13.91")),  # B6: USF 38.00 × 0.366 = 13.908 → 13.91
        ("previous_balance", D("0.00")),
    ]
    # 49.98 + 38 + 90 + 13.908 = 191.888 → 191.89
    assert inv.total == D("191.89")


def bayside_april() -> BillingInputs:
    """Ports in and out, an LNP request cancelled within 48 h of FOC and one long before,
    a reinstatement within 24 h, an early termination on 21 April, and a 6-hour outage of
    its Enterprise circuit in March credited in April on request."""
    terms = Terms(
        "bayside", "Bayside Logistics", trunks=4,
        term_start=date(2025, 7, 1), initial_term_months=24,  # term ends 2027-07-01
        services=(
            Service("trunks", "Two-Way SIP Trunk", "trunk", TRUNK, None),
            Service("dids", "DID numbers", "did", D("1.00"), 20),
            Service("fiber", "ITP Fiber Enterprise 1G", "circuit", D("500.00"), 1,
                    circuit_id="CKT-100", sla=True),
        ),
    )  # fmt: skip
    events = [
        Event("port_in", at(2026, 4, 2, 9), ("+17275550150",) * 5, id=1),
        Event("port_out", at(2026, 4, 10, 9), ("+17275550101", "+17275550102"), id=2),
        Event("disconnect", at(2026, 4, 11, 9), ("+17275550103",), id=3),
        Event("lnp_cancel", at(2026, 4, 14, 10), ("+18135550001", "+18135550002", "+18135550003"),
              foc_at=at(2026, 4, 15, 9), id=4),
        Event("lnp_cancel", at(2026, 4, 1, 9), ("+18135550009",), foc_at=at(2026, 4, 8, 9), id=5),
        Event("reinstate", at(2026, 4, 17, 8), ("+18135550010",), ported_at=at(2026, 4, 16, 12),
              id=6),
        Event("terminate", at(2026, 4, 21, 0), id=7),
    ]  # fmt: skip
    outages = [Outage("CKT-100", at(2026, 3, 12, 2), at(2026, 3, 12, 8))]  # 6 h in March
    return BillingInputs(
        terms, Period(2026, 4), calls(100, "interstate", 60, "0.012"), events=events,
        outages_last_month=outages, taxes=[USF], previous_balance=D("619.96"),
        payments=[Payment(at(2026, 4, 5), D("619.96"))],
    )  # fmt: skip


@pytest.mark.rule("B5")
@pytest.mark.rule("B7")
@pytest.mark.rule("B8")
def test_ports_lnp_cancel_early_termination_and_sla_outage_april() -> None:
    """bayside_april(): B5 NRCs, B7 early termination, B8 SLA credit, pro-rated MRC."""
    inv = assemble(bayside_april())
    assert lines(inv) == [
        # B6 pro-rated: service 1–20 April = 20 of 30 days (terminated on the 21st)
        ("mrc", D("66.64")),  # 4 × 24.99 = 99.96 × 20/30 = 66.64
        ("mrc", D("13.33")),  # 20 × 1.00 × 20/30 = 13.33333
        ("mrc", D("333.33")),  # 500.00 × 20/30 = 333.33333
        ("usage", D("1.20")),  # interstate 100 × 1 min × 0.012
        ("nrc", D("6.00")),  # B5: cancelled 7 days (168 h) before FOC > 48 h: 1 TN × 6
        ("nrc", D("10.00")),  # B5: port-out 2 TN × 5
        ("nrc", D("5.00")),  # B5: disconnect 1 TN × 5
        ("nrc", D("225.00")),  # B5: cancelled 23 h before FOC, within 48 h: 3 TN × 75
        ("nrc", D("300.00")),  # B5: reinstated 20 h after the port, within 24 h: 1 × 300
        # (port-in: no charge)
        # B7: 2026-04-21 → term end 2027-07-01: 14 months reach 2027-06-21, so 15 remaining
        #     months × MRC (99.96 + 20.00 + 500.00 = 619.96) = 9,299.40
        ("early_termination", D("9299.40")),
        # B8: March 6 h down > 0.1% × 744 h = 0.744 h: 500 ÷ 744 h × 6 h = 4.03226 credit
        ("sla_credit", D("-4.03")),
        ("tax", D("0.44")),  # B6: USF 1.20 × 0.366 = 0.4392 → 0.44
        ("previous_balance", D("619.96")),
        ("payment", D("-619.96")),
    ]
    # 66.64 + 13.33333 + 333.33333 + 1.20 + 546 + 9,299.40 − 4.03226 + 0.4392 = 10,256.3136
    assert inv.total == D("10256.31")
    assert inv.subtotal("nrc") == D("546.00")  # 6 + 10 + 5 + 225 + 300
