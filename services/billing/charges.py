"""Charges that do not come from call records: MRC with pro-ration (B6), the non-recurring
charges of B5, early termination (B7), SLA credits (B8), dispute credits (B9), and the
account lines (previous balance, payments, adjustments from other programmes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from rater.money import prorated, round_internal
from services.billing.model import (
    Adjustment,
    DisputeCredit,
    Event,
    Line,
    Outage,
    Payment,
    Period,
    Service,
    Terms,
)
from services.inventory import add_months

# B5: the agreement's non-recurring charges.
DISCONNECT_PER_TN = Decimal("5")  # disconnect or port-out of a carrier TN
LNP_CANCEL_EARLY_PER_TN = Decimal("6")  # LNP request cancelled more than 48 h before FOC
LNP_CANCEL_LATE_PER_TN = Decimal("75")  # ... within 48 h of FOC
REINSTATE_PER_TN = Decimal("300")  # newly ported number reinstated to the old carrier ≤ 24 h
LNP_CANCEL_WINDOW = timedelta(hours=48)
REINSTATE_WINDOW = timedelta(hours=24)

# B8: Enterprise circuits promise 99.9% availability.
SLA_AVAILABILITY = Decimal("0.999")


def money(d: Decimal) -> str:
    """A price as people write it: cents when it has no more, else every place it has."""
    return f"{d:,.2f}" if d == d.quantize(Decimal("0.01")) else f"{d.normalize():,f}"


def quantity_of(service: Service, terms: Terms) -> int:
    """A trunk service without a quantity counts the customer's provisioned trunks (A1)."""
    if service.quantity is None:
        return terms.trunks if service.kind == "trunk" else 1
    return service.quantity


def monthly_charge(service: Service, terms: Terms) -> Decimal:
    return service.unit_mrc * quantity_of(service, terms)


def termination_date(events: list[Event]) -> date | None:
    ends = [e.at.date() for e in events if e.kind == "terminate"]
    return min(ends) if ends else None


def active_days(service: Service, period: Period, ends: date | None = None) -> int:
    """Calendar days of `period` the service is active: from its start (inclusive) to its
    end or the customer's termination (exclusive)."""
    first = max(service.start or period.start, period.start)
    last = min(d for d in (service.end, ends, period.end) if d is not None)
    return max(0, (last - first).days)


def mrc_lines(terms: Terms, period: Period, events: list[Event]) -> list[Line]:
    """B6: each service's MRC (unit × quantity), pro-rated by calendar days for a service
    that starts or ends inside the month. Decision: pro-ration is by days, the last day of
    service (an end or a termination) not billed."""
    ends = termination_date(events)
    out = []
    for s in terms.services:
        days = active_days(s, period, ends)
        if days <= 0:
            continue
        qty = quantity_of(s, terms)
        monthly = monthly_charge(s, terms)
        partial = days < period.days
        note = f", {days} of {period.days} days" if partial else ""
        out.append(Line(
            kind="mrc", rule="B6", exact=prorated(monthly, days, period.days),
            quantity=Decimal(qty), unit_price=s.unit_mrc, ref=s.id,
            description=f"{s.description} — {qty} × {money(s.unit_mrc)} monthly{note}",
        ))  # fmt: skip
    return out


def _tns(e: Event) -> int:
    return max(1, len(e.tns))


def _tn_note(e: Event) -> str:
    return f" ({', '.join(e.tns)})" if e.tns else ""


def nrc_line(e: Event) -> Line | None:
    """B5: the non-recurring charge an event causes, or None (a port-in costs nothing)."""
    n = _tns(e)
    if e.kind in ("disconnect", "port_out"):
        what = "Disconnect" if e.kind == "disconnect" else "Port-out"
        return _nrc(e, n, DISCONNECT_PER_TN, f"{what} of {n} TN{_tn_note(e)}")
    if e.kind == "lnp_cancel":
        if e.foc_at is None:
            raise ValueError(f"LNP cancellation {e.id}: its FOC date is missing")
        lead = e.foc_at - e.at
        if lead > LNP_CANCEL_WINDOW:
            return _nrc(e, n, LNP_CANCEL_EARLY_PER_TN,
                        f"LNP request cancelled {_hours(lead)} h before FOC (> 48 h){_tn_note(e)}")
        return _nrc(e, n, LNP_CANCEL_LATE_PER_TN,
                    f"LNP request cancelled {_hours(lead)} h before FOC (within 48 h){_tn_note(e)}")
    if e.kind == "reinstate":
        if e.ported_at is None:
            raise ValueError(f"reinstatement {e.id}: the date the number was ported is missing")
        after = e.at - e.ported_at
        if after <= REINSTATE_WINDOW:
            return _nrc(e, n, REINSTATE_PER_TN,
                        f"Reinstatement to the old carrier {_hours(after)} h after the port "
                        f"(within 24 h){_tn_note(e)}")  # fmt: skip
        # Decision: after 24 h a reinstatement is an ordinary port-out.
        return _nrc(e, n, DISCONNECT_PER_TN, f"Port-out (reinstatement after 24 h){_tn_note(e)}")
    return None


def _hours(d: timedelta) -> str:
    return f"{Decimal(int(d.total_seconds())) / 3600:.1f}"


def _nrc(e: Event, n: int, each: Decimal, text: str) -> Line:
    return Line(kind="nrc", rule="B5", exact=each * n, quantity=Decimal(n), unit_price=each,
                description=text, ref=f"event:{e.id}" if e.id is not None else None)  # fmt: skip


def nrc_lines(events: list[Event]) -> list[Line]:
    return [line for e in sorted(events, key=lambda e: e.at) if (line := nrc_line(e))]


def remaining_months(ends: date, term_end: date) -> int:
    """B7: whole months from the termination to the end of the term, a partial month
    counted as a month (the smallest n with ends + n months ≥ the term's end)."""
    n = 0
    while add_months(ends, n) < term_end:
        n += 1
    return n


def early_termination(terms: Terms, events: list[Event]) -> Line | None:
    """B7: a customer ending service before its term is over pays the remaining months ×
    MRC in one lump sum (MRC: every service active on the termination date)."""
    ends = termination_date(events)
    if ends is None or terms.term_start is None or not terms.initial_term_months:
        return None
    term_end = add_months(terms.term_start, terms.initial_term_months)
    months = remaining_months(ends, term_end)
    if months <= 0:
        return None
    mrc = sum((monthly_charge(s, terms) for s in terms.services
               if (s.start or ends) <= ends and (s.end is None or s.end > ends)), Decimal(0))  # fmt: skip
    return Line(
        kind="early_termination", rule="B7", exact=round_internal(mrc * months),
        quantity=Decimal(months), unit_price=mrc,
        description=f"Early termination on {ends}: {months} remaining months of the term "
        f"(ends {term_end}) × MRC {money(mrc)}",
    )  # fmt: skip


def _clip(o: Outage, period: Period) -> Decimal:
    start = max(o.start, datetime.combine(period.start, datetime.min.time(), UTC))
    end = min(o.end, datetime.combine(period.end, datetime.min.time(), UTC))
    return Decimal(max(0, int((end - start).total_seconds()))) / 3600


def sla_credits(terms: Terms, outages: list[Outage], outage_period: Period) -> list[Line]:
    """B8: for an Enterprise circuit whose month fell under 99.9% availability, credit
    monthly charge ÷ hours in the month × downtime hours (the dimensionally correct form,
    SPEC Decision), on request, on the invoice of the month after."""
    out = []
    allowance = (1 - SLA_AVAILABILITY) * outage_period.hours
    for s in terms.services:
        if not s.sla or not s.circuit_id:
            continue
        mine = [o for o in outages if o.circuit_id == s.circuit_id and o.credit_requested]
        down = sum((_clip(o, outage_period) for o in mine), Decimal(0))
        if down <= allowance:
            continue
        monthly = monthly_charge(s, terms)
        credit = round_internal(monthly / outage_period.hours * down)
        out.append(Line(
            kind="sla_credit", rule="B8", exact=-credit, quantity=down,
            unit_price=round_internal(monthly / outage_period.hours), ref=s.circuit_id,
            description=f"SLA credit, circuit {s.circuit_id}, {outage_period}: {down:.2f} h "
            f"down × {money(monthly)} ÷ {outage_period.hours} h",
        ))  # fmt: skip
    return out


def dispute_lines(credits: list[DisputeCredit]) -> list[Line]:
    """B9: a dispute resolved for the customer is credited on the next invoice."""
    return [Line(kind="dispute_credit", rule="B9", exact=-abs(d.amount),
                 description=f"Dispute {d.dispute_id} resolved in your favour: {d.description}",
                 ref=f"dispute:{d.dispute_id}") for d in credits]  # fmt: skip


def adjustment_lines(adjustments: list[Adjustment]) -> list[Line]:
    """Lines other programmes provide (referral credits and discounts, F1–F6)."""
    return [Line(kind="adjustment", rule=a.rule, exact=a.amount, description=a.description,
                 ref=f"adjustment:{a.id}" if getattr(a, "id", None) is not None else a.kind)
            for a in adjustments]  # fmt: skip


def account_lines(previous_balance: Decimal, payments: list[Payment]) -> list[Line]:
    out = [Line(kind="previous_balance", rule=None, exact=previous_balance,
                description="Previous balance")]  # fmt: skip
    for p in sorted(payments, key=lambda p: p.received_at):
        ref = f" {p.reference}" if p.reference else ""
        out.append(Line(kind="payment", rule=None, exact=-p.amount,
                        description=f"Payment received {p.received_at:%Y-%m-%d}{ref}"))  # fmt: skip
    return out
