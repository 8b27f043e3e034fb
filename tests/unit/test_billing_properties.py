"""Properties of invoice assembly (hypothesis): the total is the sum of the lines, and
turning lines into cents neither loses nor creates a cent (rater.money.allocate_cents)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.money import allocate_cents, round_to_cents
from services.billing.invoice import assemble
from services.billing.model import (
    Adjustment,
    BillingInputs,
    Call,
    Payment,
    Period,
    Service,
    TaxRate,
    Terms,
)
from tests.unit.test_billing_golden import at

amounts = st.decimals(min_value=Decimal("-10000"), max_value=Decimal("10000"), places=5,
                      allow_nan=False, allow_infinity=False)  # fmt: skip


@given(st.lists(amounts, max_size=40))
def test_allocate_cents_neither_loses_nor_creates_a_cent(xs: list[Decimal]) -> None:
    cents = allocate_cents(xs)
    assert sum(cents, Decimal(0)) == round_to_cents(sum(xs, Decimal(0)))
    for exact, c in zip(xs, cents, strict=True):
        assert c == c.quantize(Decimal("0.01"))
        assert abs(c - exact) < Decimal("0.01")


def test_allocate_cents_fixes_what_per_line_half_up_gets_wrong() -> None:
    # three lines of half a cent: half-up per line says 0.03 for an exact 0.015 → 0.02
    assert [round_to_cents(Decimal("0.005"))] * 3 == [Decimal("0.01")] * 3
    assert allocate_cents([Decimal("0.005")] * 3) == [Decimal("0.01"), Decimal("0.01"), Decimal("0.00")]


JURISDICTIONS = ("local", "intrastate", "interstate", "international", "inbound",
                 "toll_free_inbound")  # fmt: skip

call = st.builds(
    lambda j, secs, cents, cat, ms: Call("outbound", j, ms, secs, Decimal(cents) / 100_000, True, cat),
    st.sampled_from(JURISDICTIONS), st.integers(0, 7200), st.integers(0, 500_000),
    st.sampled_from(["rboc_ilec", "wireless", "clec", "other", None]), st.integers(1, 7_200_000),
)  # fmt: skip


@st.composite
def inputs(draw) -> BillingInputs:
    trunks = draw(st.integers(0, 20))
    services = tuple(
        Service(f"s{i}", f"service {i}", "trunk" if i == 0 else "other",
                draw(st.decimals(Decimal("0"), Decimal("999"), places=2)),
                None if i == 0 else draw(st.integers(1, 50)))
        for i in range(draw(st.integers(0, 4)))
    )  # fmt: skip
    terms = Terms("c", "C", trunks, services,
                  enforce_local_inbound_cap=draw(st.booleans()),
                  enforce_ld_minimum=draw(st.booleans()))  # fmt: skip
    rate = draw(st.decimals(Decimal("0"), Decimal("0.5"), places=4))
    return BillingInputs(
        terms, Period(2026, draw(st.integers(1, 12))), draw(st.lists(call, max_size=60)),
        adjustments=[Adjustment("referral_credit", "credit", a, "F2")
                     for a in draw(st.lists(amounts, max_size=3))],
        taxes=[TaxRate("USF", "USF", rate, ("usage:interstate", "mrc"))],
        previous_balance=draw(st.decimals(Decimal("-500"), Decimal("5000"), places=2)),
        payments=[Payment(at(2026, 1, 2), p) for p in
                  draw(st.lists(st.decimals(Decimal("0"), Decimal("5000"), places=2), max_size=2))],
    )  # fmt: skip


@pytest.mark.rule("B6")
@settings(max_examples=150, deadline=None)
@given(inputs())
def test_invoice_total_is_the_sum_of_its_lines_and_of_their_exact_amounts(inp) -> None:
    inv = assemble(inp)
    assert inv.total == sum((ln.amount for ln in inv.lines), Decimal(0))
    # no cent lost or created across lines
    assert inv.total == round_to_cents(sum((ln.exact for ln in inv.lines), Decimal(0)))
    assert all(abs(ln.amount - ln.exact) < Decimal("0.01") for ln in inv.lines)
    assert assemble(inp) == inv  # the same inputs always make the same invoice
