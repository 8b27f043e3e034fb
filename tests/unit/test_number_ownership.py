"""A3, R4: a TN counts as the customer's only on the days it holds it (issue 11)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from rater.decision import CallFacts, decide
from tests.unit.test_decision import inventory

PORTED_OUT = date(2026, 11, 20).toordinal()  # the port-out's day
FOC = date(2026, 11, 10).toordinal()  # a port-in's firm order commitment


def at(day: int, hour: int = 12) -> datetime:
    d = date.fromordinal(day)
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)


def held(owned_from: int | None = FOC, owned_until: int | None = PORTED_OUT):
    inv = inventory()
    num = inv.numbers["+17275550100"]
    inv.numbers[num.tn] = replace(num, origin="ported_in", owned_from=owned_from,
                                  owned_until=owned_until)  # fmt: skip
    return inv


@pytest.mark.rule("A3")
@pytest.mark.parametrize(
    ("day", "owned"),
    [(FOC - 1, False), (FOC, True), (PORTED_OUT - 1, True), (PORTED_OUT, False), (PORTED_OUT + 30, False)],
)
def test_toll_free_needs_a_tn_held_that_day(day: int, owned: bool) -> None:
    d = decide(held(), CallFacts(dnis="+18005551234", ani="+17275550100", trunk_group_id="tg",
                                 at=at(day)))  # fmt: skip
    assert (d.action == "forward") is owned, d
    if not owned:
        assert d.rule == "A3"


@pytest.mark.rule("R4")
def test_owner_of_is_dated() -> None:
    """R4 rates local only from a TN the customer holds: the rater asks owner_of(tn, day)."""
    inv = held()
    assert inv.owner_of("+17275550100", FOC - 1) is None  # port-in not yet done
    assert inv.owner_of("+17275550100", PORTED_OUT - 1) is not None
    assert inv.owner_of("+17275550100", PORTED_OUT) is None
    assert inv.owner_of("+17275550100") is not None  # no day: the row, whatever its dates


@pytest.mark.rule("A3")
def test_inbound_to_a_released_tn_finds_no_customer() -> None:
    inv = held()
    facts = CallFacts(dnis="+17275550100", ani="+12125551234", direction="inbound",
                      at=at(PORTED_OUT + 1))  # fmt: skip
    assert decide(inv, facts).action == "reject"
    facts = replace(facts, at=at(PORTED_OUT - 1))
    assert decide(inv, facts).customer_id == "acme"


@pytest.mark.rule("E2")
def test_911_from_a_tn_ported_out_is_not_the_customers() -> None:
    """A TN that left the customer routes as an unknown number (national call center), never
    by the registered address it had."""
    from e911_router.routing import route_call
    from rater.decision import day_ordinal

    today = day_ordinal()
    tg = held().trunk_groups["tg"]
    kept = route_call(held(owned_from=None, owned_until=None), "+17275550100", tg)
    gone = route_call(held(owned_from=None, owned_until=today), "+17275550100", tg)
    assert "not a number of this customer" not in kept.reason
    assert gone.rule == "E2" and "not a number of this customer" in gone.reason
