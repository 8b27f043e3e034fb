"""Rounding rules (rater.money): exact Decimal arithmetic, cited by rule."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.money import billed_seconds, round_internal, round_to_cents, usage_amount


@pytest.mark.rule("R1")
@pytest.mark.parametrize(
    ("ms", "initial", "additional", "billed"),
    [
        (0, 6, 6, 0),  # never answered / 0 ms bills nothing
        (1, 6, 6, 6),  # Decision R1: ≥1 ms bills the initial increment
        (6000, 6, 6, 6),  # 6.000 s
        (6001, 6, 6, 12),  # 6.001 s
        (2000, 6, 6, 6),
        (29000, 30, 6, 30),  # 30/6 at 29 s
        (31000, 30, 6, 36),  # 30/6 at 31 s
        (36000, 30, 6, 36),  # 30/6 at 36 s
        (61000, 60, 60, 120),  # Mexico 60/60 at 61 s
        (60000, 60, 60, 60),
    ],
)
def test_billed_seconds(ms: int, initial: int, additional: int, billed: int) -> None:
    assert billed_seconds(ms, initial, additional) == billed


@pytest.mark.rule("R1")
@given(st.integers(min_value=1, max_value=10**8), st.sampled_from([(6, 6), (30, 6), (60, 60)]))
def test_billed_covers_duration_by_less_than_one_increment(ms: int, inc: tuple[int, int]) -> None:
    initial, additional = inc
    billed = billed_seconds(ms, initial, additional)
    assert billed * 1000 >= ms
    assert billed >= initial
    assert (billed - initial) % additional == 0
    if billed > initial:
        assert (billed - additional) * 1000 < ms


def test_usage_amount_exact() -> None:
    # 6 s at $0.012/min = $0.0012; 12 s at $0.018/min = $0.0036
    assert usage_amount(6, Decimal("0.01200")) == Decimal("0.00120")
    assert usage_amount(12, Decimal("0.01800")) == Decimal("0.00360")
    # 7 s at $0.01/min = 0.0011666… → 0.00117 half-up at 5 places
    assert usage_amount(7, Decimal("0.01")) == Decimal("0.00117")


def test_rounding_half_up() -> None:
    assert round_to_cents(Decimal("0.005")) == Decimal("0.01")
    assert round_to_cents(Decimal("0.00499")) == Decimal("0.00")
    assert round_internal(Decimal("0.000005")) == Decimal("0.00001")
    assert round_to_cents(Decimal("-0.005")) == Decimal("-0.01")


@given(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=10, places=5, allow_nan=False, allow_infinity=False),
)
def test_amount_is_within_half_a_unit_of_exact(seconds: int, rate: Decimal) -> None:
    exact = Decimal(seconds) * rate / Decimal(60)
    got = usage_amount(seconds, rate)
    assert got.as_tuple().exponent == -5
    assert abs(got - exact) <= Decimal("0.000005")


@pytest.mark.rule("B6")
def test_prorated_by_days() -> None:
    from rater.money import prorated

    assert prorated(Decimal("99.96"), 20, 30) == Decimal("66.64000")
    assert prorated(Decimal("20"), 20, 30) == Decimal("13.33333")
    assert prorated(Decimal("500"), 31, 31) == Decimal("500.00000")


@given(st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=2),
       st.integers(1, 31))
def test_prorated_never_exceeds_the_month(monthly: Decimal, days: int) -> None:
    from rater.money import prorated

    assert Decimal(0) <= prorated(monthly, days, 31) <= monthly
