"""The rater's one decision function: may this call go, where, and at what price.

Pure: reads an Inventory snapshot (with its reference data) and the call's facts, returns
a Decision. The stateful admission steps — trunk slots (A1, rater.admission) and credit
(A6, rater.credit) — are taken afterwards, only for calls this function lets through.
Every refusal carries its rule ID and a human reason, which the edge puts in the SIP
`Reason`/`Warning` headers and the HTTP API returns as is.

Order of the checks, and why:
1. 911 first: it is never refused, whatever follows (E7).
2. Who is calling: blocked sources (A7), the customer (A8), its status (A9).
3. What was dialled: never-carried destinations (A2), then a rating path per kind —
   domestic (R3-R8, R13), toll-free (A3, R9-R10, R12), 411 and operator (A3, R14),
   international (A5, R11) — each picking the rate in force on the call's day (R15) and
   the increments of its destination (R1, R2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache

from rater import tariff
from rater.geography import state_of
from rater.money import billed_seconds, call_amount
from rater.numbers import Dialled, Kind, analyse, area_of_number, normalize, oli_of
from rater.refdata import Place
from services.inventory import Customer, Inventory, RatePlan

# Kept for importers of the old names; the tariff module holds the figures.
NON_CONTINENTAL = tariff.NON_CONTINENTAL
DOMESTIC_INCREMENTS = tariff.DOMESTIC_INCREMENTS
INTERNATIONAL_INCREMENTS = tariff.INTERNATIONAL_INCREMENTS
MEXICO_INCREMENTS = tariff.MEXICO_INCREMENTS

# Rule A7: User-Agents of SIP scanners and toll-fraud tools (lower case, substrings).
SCANNER_AGENTS = ("friendly-scanner", "sipvicious", "sipcli", "sip-scan", "vaxsipuseragent",
                  "pplsip", "iwar", "sundayddr")  # fmt: skip

_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the edge (or an API client) knows about a call before it is forwarded."""

    dnis: str
    ani: str | None = None  # the raw user part chosen by A4 precedence
    ani_source: str = "from"
    trunk_group_id: str | None = None
    customer_id: str | None = None
    direction: str = "outbound"  # or "inbound": carrier → the customer's DID
    at: datetime | None = None  # the call's start; rates in force then apply (R15)
    oli: str | None = None  # ANI II / OLI digits (R12); else read from the ANI's ';oli='
    forwarded_from: str | None = None  # R13: the customer's TN a forwarded leg comes from
    source_ip: str | None = None  # A7
    user_agent: str | None = None  # A7


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
    direction: str = "outbound"
    # A per-call charge (R12, R14) as a decimal string: decisions travel as JSON (the edge
    # persists them with its dialogs), and a string survives that exactly.
    per_call_charge: str | None = None
    rating_rule: str | None = None  # the SPEC rule that set the price
    basis: str | None = None  # why this price, in words, citing the rule
    carrier_category: str | None = None  # R6: of the far end (B4 counts it)
    ocn: str | None = None
    lata: str | None = None
    rate_center: str | None = None

    @property
    def billing_increments(self) -> tuple[int, int]:
        return (self.initial_increment, self.additional_increment)

    def quote(self, duration_ms: int) -> tuple[int, Decimal]:
        """Billed seconds and amount for an answered call lasting `duration_ms`."""
        if self.rate_per_minute is None or self.initial_increment <= 0:
            return 0, Decimal("0.00000")
        secs = billed_seconds(duration_ms, self.initial_increment, self.additional_increment)
        per_call = Decimal(self.per_call_charge) if self.per_call_charge and secs else None
        return secs, call_amount(secs, self.rate_per_minute, per_call)


def day_ordinal(at: datetime | None = None) -> int:
    """The UTC day of `at` (now when None) as a date ordinal: what dated inventory
    (effective dates, TN ownership) is looked up by."""
    if at is None:
        return int(time.time() // 86400) + _EPOCH
    if at.tzinfo is not None and at.utcoffset():
        at = at.astimezone(UTC)
    return at.toordinal()


@lru_cache(maxsize=2048)
def _geo_place(npa: str) -> Place:
    return Place(state_of("+1" + npa + "2000000"))


def _place(inv: Inventory, e164: str, day: int) -> Place:
    """Where a NANP number is: the imported NPA-NXX-X data, else phonenumbers' state."""
    found = inv.refdata.place(e164, day)
    return found if found is not None else _geo_place(e164[2:5])


class _Call:
    """One decision's working state."""

    __slots__ = ("ani", "base", "call", "customer", "day", "dialled", "forwarded", "inv", "plan")

    def __init__(self, inv, call, customer, plan, day, dialled, ani, forwarded, base) -> None:
        self.inv: Inventory = inv
        self.call: CallFacts = call
        self.customer: Customer = customer
        self.plan: RatePlan = plan
        self.day: int = day
        self.dialled: Dialled = dialled
        self.ani: str | None = ani
        self.forwarded: str | None = forwarded
        self.base: dict = base

    def reject(self, status: int, rule: str, reason: str) -> Decision:
        return Decision(action="reject", sip_status=status, rule=rule, reason=reason, **self.base)

    def forward(self, jurisdiction: str, rate: Decimal, increments: tuple[int, int], rule: str,
                basis: str, place: Place | None = None, per_call: Decimal | None = None,
                ) -> Decision:  # fmt: skip
        return Decision(
            action="forward", jurisdiction=jurisdiction, initial_increment=increments[0],
            additional_increment=increments[1], rate_per_minute=rate, currency=self.plan.currency,
            per_call_charge=str(per_call) if per_call is not None else None, rating_rule=rule,
            basis=basis,
            carrier_category=place.category if place else None, ocn=place.ocn if place else None,
            lata=place.lata if place else None, rate_center=place.rate_center if place else None,
            **self.base,
        )  # fmt: skip

    def owns(self, tn: str | None) -> bool:
        """A3, R4: a TN assigned to or ported to the carrier, in this customer's inventory."""
        num = self.inv.owner_of(tn, self.day)
        return num is not None and num.customer_id == self.customer.id

    def increments(self, area: str | None) -> tuple[int, int]:
        """R1 by destination, with R2's region table."""
        plan = self.plan
        if area is None or area == "US":
            return plan.domestic_increments
        if area == "MX":
            return plan.mexico_increments
        if area in plan.international_increment_regions or area not in tariff.US_AREAS:
            return plan.international_increments
        return plan.domestic_increments


def decide(inv: Inventory, call: CallFacts) -> Decision:
    day = day_ordinal(call.at)
    inbound = call.direction == "inbound"
    dialled = analyse(call.dnis)
    ani = normalize(call.ani) if call.ani else None
    forwarded = normalize(call.forwarded_from) if call.forwarded_from else None
    tg = inv.trunk_groups.get(call.trunk_group_id) if call.trunk_group_id else None
    customer_id = tg.customer_id if tg else call.customer_id
    if customer_id is None:
        # An inbound call belongs to whoever holds the dialled number; a forwarded leg to
        # whoever holds the number it was forwarded from.
        num = inv.owner_of((dialled.e164 if inbound else forwarded) or "", day)
        if num is not None:
            customer_id = num.customer_id
            tg = inv.trunk_groups.get(num.trunk_group_id or "")
    customer = inv.customers.get(customer_id) if customer_id else None
    base = dict(
        customer_id=customer_id,
        trunk_group_id=tg.id if tg else call.trunk_group_id,
        dnis=dialled.e164 or dialled.digits,
        ani_used=ani,
        ani_source=call.ani_source,
        carrier_id=tg.carrier_id if tg else None,
        direction=call.direction,
    )
    # Rule E7: a 911 call is never refused, whatever the customer's state; routing decides.
    if dialled.is_emergency:
        return Decision(action="emergency", jurisdiction="emergency", rating_rule="E7", **base)
    if call.source_ip and inv.blocked_sources:
        why = inv.source_blocked(call.source_ip)
        if why is not None:
            return Decision(action="reject", sip_status=403, rule="A7",
                            reason=f"source {call.source_ip} is blocked: {why or 'network abuse'}",
                            **base)  # fmt: skip
    if call.user_agent:
        agent = call.user_agent.lower()
        if any(s in agent for s in SCANNER_AGENTS):
            return Decision(action="reject", sip_status=403, rule="A7",
                            reason="traffic from a SIP scanner is not carried", **base)  # fmt: skip
    if customer is None:
        return Decision(action="reject", sip_status=403, rule="A8",
                        reason="no such customer or trunk", **base)  # fmt: skip
    if customer.status != "active":
        return Decision(action="reject", sip_status=403, rule="A9",
                        reason=f"customer {customer.status}: only 911 is carried", **base)  # fmt: skip
    plan = inv.plan_for(customer, day)
    if plan is None:
        return Decision(action="reject", sip_status=503, rule="R15",
                        reason=f"no rate plan {customer.rate_plan_id!r} in force", **base)  # fmt: skip
    c = _Call(inv, call, customer, plan, day, dialled, ani, forwarded, base)
    return _inbound(c) if inbound else _outbound(c)


_BLOCKED = {
    Kind.PREMIUM_900: "900 numbers are not carried",
    Kind.PREMIUM_976: "976 numbers are not carried",
    Kind.DIAL_AROUND: "dial-around (1010xxx) calls are not carried",
}


def _outbound(c: _Call) -> Decision:
    dialled = c.dialled
    kind = dialled.kind
    if kind in _BLOCKED:
        return c.reject(403, "A2", _BLOCKED[kind])
    if kind is Kind.INVALID:
        return c.reject(404, "R3", f"not a dialable number: {dialled.digits!r}")
    # A3/R4 look at the number the leg is the customer's by: its ANI, or for a forwarded
    # leg (R13) the customer's number the call was forwarded from.
    owned = c.owns(c.forwarded or c.ani)
    if c.forwarded and not owned:
        return c.reject(403, "A3", "a forwarded call must come from one of the customer's numbers")
    if kind is Kind.GEOGRAPHIC and (dialled.area is None or dialled.area in tariff.US_AREAS):
        return _domestic(c, owned)
    if kind is Kind.GEOGRAPHIC or kind is Kind.INTERNATIONAL:
        return _international(c)
    if kind is Kind.TOLL_FREE:
        if not owned:
            return c.reject(403, "A3", "toll-free calls need an ANI from the customer's own numbers")
        return c.forward("toll_free", c.plan.toll_free_outbound_per_minute,
                         c.plan.domestic_increments, "A3", "A3: outbound toll-free from an own number")  # fmt: skip
    if kind is Kind.N11:
        if dialled.is_directory_assistance:
            if not owned:
                return c.reject(403, "A3", "411 needs an ANI from the customer's own numbers")
            return _priced_service(c, "directory_assistance", "411",
                                   c.plan.directory_assistance_per_call,
                                   c.plan.directory_assistance_per_minute)  # fmt: skip
        return c.reject(404, "R14", f"service code {dialled.digits} is not offered")
    if kind is Kind.OPERATOR:
        return _priced_service(c, "operator", "operator-assisted calling",
                               c.plan.operator_per_call, c.plan.operator_per_minute)  # fmt: skip
    if kind is Kind.TEST_933:
        # The 911 address read-back test: free, and it needs no more than a forward.
        return c.forward("service", tariff.ZERO, c.plan.domestic_increments, "E7",
                         "933: 911 address test, not charged")  # fmt: skip
    return c.reject(404, "R3", f"not a dialable number: {dialled.digits!r}")


def _priced_service(c: _Call, jurisdiction: str, what: str, per_call: Decimal | None,
                    per_minute: Decimal | None) -> Decision:  # fmt: skip
    """R14: 411 and operator-assisted calls at the plan's per-call and/or per-minute rate."""
    if per_call is None and per_minute is None:
        return c.reject(404, "R14", f"{what} is not priced on plan {c.plan.id!r}, so not offered")
    rate = per_minute if per_minute is not None else tariff.ZERO
    basis = f"R14: {what}" + (f", {per_call} per call" if per_call is not None else "") + (
        f", {per_minute}/min" if per_minute is not None else ""
    )
    return c.forward(jurisdiction, rate, c.plan.domestic_increments, "R14", basis,
                     per_call=per_call)  # fmt: skip


def _domestic(c: _Call, owned: bool) -> Decision:
    """R3-R8, R13: local, intrastate or interstate between two US numbers."""
    plan, inv, day = c.plan, c.inv, c.day
    e164 = c.dialled.e164
    assert e164 is not None
    dest = _place(inv, e164, day)
    origin = _place(inv, c.ani, day) if c.ani and c.ani.startswith("+1") else None
    # R4: only the customer's own numbers are rated local. R13: a forwarded leg takes its
    # jurisdiction from the original caller (c.ani), and may be local only when it goes to
    # another of the customer's numbers (the agreement's note on forwarding).
    local_ok = c.owns(e164) if c.forwarded else owned
    increments = c.increments(c.dialled.area)
    leg = "R13: forwarded leg, from the original caller; " if c.forwarded else ""
    if origin is not None and local_ok and inv.refdata.is_local(origin, dest, day):
        return c.forward("local", plan.local_per_minute, increments, "R3",
                         f"{leg}R3: {dest.rate_center} is in the local calling area of "
                         f"{origin.rate_center}", dest)  # fmt: skip
    if origin is None or origin.state is None or dest.state is None:
        if c.ani is None:
            why = "invalid or omitted originating ANI"
        elif origin is None or origin.state is None:
            why = f"originating ANI {c.ani} has no US state"
        else:
            why = f"no state known for {e164}"
        return c.forward("intrastate", plan.lata_rate(dest.lata), increments, "R5",
                         f"{leg}R5: {why}, rated at the intrastate rate", dest)  # fmt: skip
    if not local_ok and inv.refdata.has_numbering and inv.refdata.is_local(origin, dest, day):
        note = "R4: local area, but the ANI is not the customer's number, so long distance; "
    else:
        note = ""
    if origin.state == dest.state:
        return c.forward("intrastate", plan.lata_rate(dest.lata), increments, "R8",
                         f"{leg}{note}R8: intrastate {dest.state}"
                         + (f", LATA {dest.lata}" if dest.lata else ""), dest)  # fmt: skip
    if dest.state == "AK":
        return c.forward("interstate", plan.alaska_per_minute, increments, "R7",
                         f"{leg}{note}R7: interstate to Alaska", dest)  # fmt: skip
    return c.forward("interstate", plan.interstate_per_minute, increments, "R7",
                     f"{leg}{note}R7: interstate {origin.state} to {dest.state}", dest)  # fmt: skip


def _international(c: _Call) -> Decision:
    """A5, R11: outside the US (Canada and the Caribbean included), priced by the deck."""
    e164 = c.dialled.e164
    assert e164 is not None
    digits = e164[1:]
    plan, customer = c.plan, c.customer
    if digits.startswith(plan.high_cost_prefixes) and not digits.startswith(
        customer.high_cost_allowed
    ):
        return c.reject(403, "A5", f"{e164} is a high-cost international route, blocked "
                        "unless the customer asks for it in writing")  # fmt: skip
    hit = c.inv.refdata.intl_rate(plan.international_deck, digits, c.day)
    if hit is None:
        return c.reject(403, "R11", f"no international rate for {e164} on deck "
                        f"{plan.international_deck!r}")  # fmt: skip
    return c.forward("international", hit.rate_per_minute, c.increments(c.dialled.area), "R11",
                     f"R11: {hit.description or 'international'} (+{hit.prefix}) on deck "
                     f"{plan.international_deck!r}")  # fmt: skip


def _inbound(c: _Call) -> Decision:
    """Carrier → the customer's number: R9, R10, R12 for toll-free; the DID rate otherwise."""
    dialled, plan = c.dialled, c.plan
    if dialled.kind is Kind.TOLL_FREE:
        if not c.owns(dialled.e164):
            return c.reject(404, "R9", "toll-free number not provided by or ported to the "
                            "carrier for this customer")  # fmt: skip
        origin = area_of_number(c.ani) if c.ani else None
        offshore = plan.offshore_toll_free_per_minute.get(origin) if origin else None
        oli = c.call.oli or oli_of(c.call.ani)
        surcharge = plan.payphone_surcharge if oli in tariff.PAYPHONE_OLI else None
        # B4 counts 800 inbound by where it originates.
        place = _place(c.inv, c.ani, c.day) if c.ani and c.ani.startswith("+1") else None
        payphone = f"; R12: payphone (OLI {oli}) surcharge {surcharge}" if surcharge else ""
        if offshore is not None:
            return c.forward("toll_free_inbound", offshore, plan.domestic_increments, "R10",
                             f"R10: 800 inbound from {origin}{payphone}", place, surcharge)  # fmt: skip
        return c.forward("toll_free_inbound", plan.toll_free_inbound_per_minute,
                         plan.domestic_increments, "R12" if surcharge else "R9",
                         f"R9: 800 domestic inbound{payphone}", place, surcharge)  # fmt: skip
    if dialled.kind is Kind.GEOGRAPHIC and dialled.e164 and c.owns(dialled.e164):
        return c.forward("inbound", plan.inbound_per_minute, c.increments(dialled.area), "A3",
                         "inbound to the customer's own number")  # fmt: skip
    return c.reject(404, "A3", "not a number of this customer")
