"""The rater's one decision function: may this call go, where, and at what price.

Pure: reads an Inventory snapshot and the call's facts, returns a Decision. Admission
(trunk slots, rule A1) is the separate, stateful step in rater.admission, taken only for
calls this function lets through. Every refusal carries its rule ID and a human reason,
which the edge puts in the SIP `Reason`/`Warning` headers and the HTTP API returns as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rater.geography import state_of
from rater.money import billed_seconds, usage_amount
from rater.numbers import Kind, analyse, normalize
from services.inventory import Inventory

# Rule R2: the regions that follow the International increments although NANP-dialled.
NON_CONTINENTAL = frozenset({"AK", "HI", "PR", "VI", "GU", "MP", "AS"})
DOMESTIC_INCREMENTS = (6, 6)  # rule R1, US Domestic
INTERNATIONAL_INCREMENTS = (30, 6)  # rule R1, International excluding Mexico
MEXICO_INCREMENTS = (60, 60)  # rule R1, Mexico


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the edge (or an API client) knows about a call before it is forwarded."""

    dnis: str
    ani: str | None = None  # the raw user part chosen by A4 precedence
    ani_source: str = "from"
    trunk_group_id: str | None = None
    customer_id: str | None = None
    direction: str = "outbound"
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "forward" | "reject" | "emergency"
    customer_id: str | None
    trunk_group_id: str | None
    dnis: str  # E.164 where it is a number, else the dialled digits
    ani_used: str | None  # E.164 or None when invalid/absent (rule R5)
    ani_source: str
    jurisdiction: str | None = None
    initial_increment: int = 0
    additional_increment: int = 0
    rate_per_minute: Decimal | None = None
    currency: str = "USD"
    carrier_id: str | None = None
    sip_status: int | None = None
    rule: str | None = None
    reason: str | None = None

    @property
    def billing_increments(self) -> tuple[int, int]:
        return (self.initial_increment, self.additional_increment)

    def quote(self, duration_ms: int) -> tuple[int, Decimal]:
        """Billed seconds and amount for an answered call lasting `duration_ms`."""
        if self.rate_per_minute is None:
            return 0, Decimal("0.00000")
        secs = billed_seconds(duration_ms, self.initial_increment, self.additional_increment)
        return secs, usage_amount(secs, self.rate_per_minute)


def _reject(base: dict, status: int, rule: str, reason: str) -> Decision:
    return Decision(action="reject", sip_status=status, rule=rule, reason=reason, **base)


def decide(inv: Inventory, call: CallFacts) -> Decision:
    tg = inv.trunk_groups.get(call.trunk_group_id) if call.trunk_group_id else None
    customer_id = tg.customer_id if tg else call.customer_id
    customer = inv.customers.get(customer_id) if customer_id else None
    dialled = analyse(call.dnis)
    ani = normalize(call.ani) if call.ani else None
    base = dict(
        customer_id=customer_id,
        trunk_group_id=tg.id if tg else call.trunk_group_id,
        dnis=dialled.e164 or dialled.digits,
        ani_used=ani,
        ani_source=call.ani_source,
        carrier_id=tg.carrier_id if tg else None,
    )
    # Rule E7: a 911 call is never refused, whatever the customer's state; routing decides.
    if dialled.is_emergency:
        return Decision(action="emergency", jurisdiction="emergency", **base)
    if customer is None:
        return _reject(base, 403, "A8", "no such customer or trunk")
    if customer.status != "active":
        return _reject(base, 403, "A9", f"customer {customer.status}")
    if dialled.kind in (Kind.PREMIUM_900, Kind.PREMIUM_976, Kind.DIAL_AROUND):
        return _reject(base, 403, "A2", "900, 976 and 1010xxx calls are not carried")
    if dialled.kind is Kind.INVALID:
        return _reject(base, 404, "R3", f"not a dialable number: {dialled.digits!r}")
    if dialled.kind in (Kind.N11, Kind.TEST_933):
        return _reject(base, 404, "R14", f"service code {dialled.digits} is not offered")
    owned = inv.owner_of(ani)
    ani_owned = owned is not None and owned.customer_id == customer.id
    if dialled.kind is Kind.TOLL_FREE:
        if not ani_owned:
            return _reject(base, 403, "A3", "toll-free calls need an ANI from the customer's own numbers")
        return Decision(
            action="forward", jurisdiction="toll_free", initial_increment=6,
            additional_increment=6, rate_per_minute=Decimal("0.00000"), **base,
        )  # fmt: skip
    if dialled.kind is Kind.INTERNATIONAL:
        return _reject(base, 403, "R11", "no international rate for this destination")

    plan = inv.rate_plans[customer.rate_plan_id]
    dest_state = state_of(dialled.e164 or "")
    orig_state = state_of(ani) if ani else None
    # Rule R5: an invalid or omitted ANI is rated at the intrastate rate.
    if orig_state is None or orig_state == dest_state:
        jurisdiction, rate = "intrastate", plan.intrastate_per_minute
    else:
        jurisdiction = "interstate"
        rate = plan.alaska_per_minute if dest_state == "AK" else plan.interstate_per_minute  # R7
    initial, additional = (
        INTERNATIONAL_INCREMENTS if dest_state in NON_CONTINENTAL else DOMESTIC_INCREMENTS
    )  # rule R2
    return Decision(
        action="forward", jurisdiction=jurisdiction, initial_increment=initial,
        additional_increment=additional, rate_per_minute=rate, currency=plan.currency, **base,
    )  # fmt: skip
