"""Billing in Postgres: read a customer-month's inputs, issue its invoice once.

`issue` runs in one transaction under a per-customer advisory lock: if the period's
invoice exists it is returned as stored and nothing else happens (a re-run changes
nothing); otherwise the invoice and its lines are inserted, and the payments, won disputes
and adjustments it took are marked as taken, so no later invoice takes them again.
Triggers in 0006_billing.sql refuse any UPDATE or DELETE of an issued invoice or line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from rater.refdata import RefData
from services.billing import adjustments as adjustment_providers
from services.billing.invoice import assemble, exact_lines
from services.billing.model import (
    BillingInputs,
    Call,
    DisputeCredit,
    Event,
    Invoice,
    Line,
    Outage,
    Payment,
    Period,
    Service,
    TaxRate,
    Terms,
)

ZERO = Decimal(0)
PAYMENT_DAYS = 30  # due date: B10 counts non-payment from the invoice


class BillingError(ValueError):
    """A billing request that cannot be done, with the reason in words."""


def _ts(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), UTC)


def invoice_number(customer_id: str, period: Period) -> str:
    return f"INV-{customer_id}-{period}"


async def load_terms(conn: asyncpg.Connection, customer_id: str) -> Terms:
    c = await conn.fetchrow(
        """SELECT c.id, c.name, c.term_start, c.initial_term_months,
                  coalesce((SELECT sum(trunks) FROM trunk_groups t WHERE t.customer_id = c.id), 0)
                      AS trunks, b.*
           FROM customers c LEFT JOIN billing_accounts b ON b.customer_id = c.id
           WHERE c.id = $1""", customer_id)  # fmt: skip
    if c is None:
        raise BillingError(f"no customer {customer_id!r}")
    services = tuple(
        Service(r["id"], r["description"], r["kind"], r["unit_mrc"], r["quantity"],
                r["starts_on"], r["ends_on"], r["circuit_id"], r["sla"])
        for r in await conn.fetch(
            "SELECT * FROM billing_services WHERE customer_id = $1 ORDER BY "
            "array_position('{trunk,did,circuit,other}'::text[], kind), id", customer_id)
    )  # fmt: skip
    flags = {}
    if c["enforce_ld_minimum"] is not None:  # a billing account exists
        flags = {k: c[k] for k in ("enforce_local_inbound_cap", "enforce_ld_minimum",
                                   "enforce_short_calls", "enforce_rboc_threshold",
                                   "rboc_surcharge_per_minute", "credit_limit", "deposit")}  # fmt: skip
    return Terms(c["id"], c["name"], int(c["trunks"]), services, term_start=c["term_start"],
                 initial_term_months=c["initial_term_months"], **flags)  # fmt: skip


def _category(ref: RefData, number: str | None, day: int) -> str | None:
    place = ref.place(number, day) if number else None
    return place.category if place is not None else None


async def load_calls(conn, customer_id: str, period: Period, ref: RefData) -> list[Call]:
    """The month's CDR legs. B4 needs the network of the far end (of the caller for 800
    inbound): it comes from the reference data in force on the day of the call (R6, R15)."""
    rows = await conn.fetch(
        """SELECT direction, jurisdiction, duration_ms, billed_seconds, amount, ani, dnis,
                  answered_at IS NOT NULL AS answered, emergency_level, started_at
           FROM cdrs WHERE customer_id = $1 AND started_at >= $2 AND started_at < $3""",
        customer_id, _ts(period.start), _ts(period.end),
    )  # fmt: skip
    out = []
    for r in rows:
        far = r["ani"] if r["jurisdiction"] == "toll_free_inbound" else r["dnis"]
        day = r["started_at"].astimezone(UTC).date().toordinal()
        out.append(Call(
            r["direction"], r["jurisdiction"], r["duration_ms"], r["billed_seconds"],
            r["amount"], r["answered"], _category(ref, far, day),
            r["jurisdiction"] == "emergency" or r["emergency_level"] is not None,
        ))  # fmt: skip
    return out


async def previous_balance(conn, customer_id: str, period: Period) -> Decimal:
    """What the last invoice before `period` left due, less the credit notes since."""
    last = await conn.fetchrow(
        """SELECT id, total, issued_at FROM invoices WHERE customer_id = $1
           AND kind = 'invoice' AND period_start < $2 ORDER BY period_start DESC LIMIT 1""",
        customer_id, period.start,
    )  # fmt: skip
    if last is None:
        return ZERO
    notes = await conn.fetchval(
        """SELECT coalesce(sum(total), 0) FROM invoices WHERE customer_id = $1
           AND kind = 'credit_note' AND issued_at > $2""", customer_id, last["issued_at"])  # fmt: skip
    return last["total"] + notes


async def load_inputs(conn, customer_id: str, period: Period, ref: RefData,
                      taxes: list[TaxRate], now: datetime) -> BillingInputs:  # fmt: skip
    terms = await load_terms(conn, customer_id)
    start, end = _ts(period.start), _ts(period.end)
    events = [Event(r["kind"], r["at"], tuple(r["tns"]), r["foc_at"], r["ported_at"], r["id"])
              for r in await conn.fetch(
                  "SELECT * FROM billing_events WHERE customer_id = $1 AND at >= $2 AND at < $3 "
                  "ORDER BY at, id", customer_id, start, end)]  # fmt: skip
    prev = period.previous()
    outages = [Outage(r["circuit_id"], r["started_at"], r["ended_at"], r["credit_requested"],
                      r["id"])
               for r in await conn.fetch(
                   "SELECT * FROM billing_outages WHERE customer_id = $1 AND started_at < $3 "
                   "AND ended_at > $2 ORDER BY started_at", customer_id, _ts(prev.start), start)]  # fmt: skip
    disputes = [DisputeCredit(r["id"], r["amount"], r["reason"])
                for r in await conn.fetch(
                    "SELECT id, amount, reason FROM disputes WHERE customer_id = $1 "
                    "AND status = 'won' AND credited_invoice_id IS NULL AND resolved_at < $2 "
                    "ORDER BY id", customer_id, now)]  # fmt: skip
    payments = [Payment(r["received_at"], r["amount"], r["reference"])
                for r in await conn.fetch(
                    "SELECT received_at, amount, reference FROM payments WHERE customer_id = $1 "
                    "AND applied_invoice_id IS NULL AND received_at < $2 ORDER BY received_at, id",
                    customer_id, end)]  # fmt: skip
    inp = BillingInputs(
        terms, period, await load_calls(conn, customer_id, period, ref), events, outages,
        disputes, [], taxes, await previous_balance(conn, customer_id, period), payments,
    )  # fmt: skip
    lines = exact_lines(inp)
    basic_fee = sum((ln.exact for ln in lines if ln.kind == "mrc"), ZERO)
    chargeable = sum((ln.exact for ln in lines
                      if ln.kind not in ("previous_balance", "payment")), ZERO)  # fmt: skip
    inp.adjustments = await adjustment_providers.collect(
        conn, customer_id, period, basic_fee=basic_fee, chargeable=chargeable)  # fmt: skip
    return inp


@dataclass(frozen=True, slots=True)
class Issued:
    invoice: Invoice
    id: int
    created: bool  # False: the period was already issued; nothing changed


def _row_to_line(r) -> Line:
    return Line(r["kind"], r["description"], r["rule"], r["exact"], r["quantity"],
                r["unit_price"], r["jurisdiction"], r["amount"], r["ref"])  # fmt: skip


async def fetch_invoice(conn, invoice_id: int) -> Invoice | None:
    h = await conn.fetchrow("SELECT * FROM invoices WHERE id = $1", invoice_id)
    if h is None:
        return None
    rows = await conn.fetch(
        "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no", invoice_id)
    summary = json.loads(h["summary"]).get("usage_by_jurisdiction", {})
    corrects = None
    if h["corrects"] is not None:
        corrects = await conn.fetchval("SELECT number FROM invoices WHERE id = $1", h["corrects"])
    return Invoice(
        h["customer_id"], Period(h["period_start"].year, h["period_start"].month),
        tuple(_row_to_line(r) for r in rows),
        {j: (v[0], Decimal(v[1]), Decimal(v[2])) for j, v in summary.items()},
        h["kind"], h["number"], h["issued_at"], corrects,
    )  # fmt: skip


async def _insert(conn, inv: Invoice, *, due_on: date, corrects: int | None = None,
                  reason: str | None = None) -> int:  # fmt: skip
    summary = {"usage_by_jurisdiction": {j: [c, str(m), str(a)] for j, (c, m, a)
                                         in inv.usage_by_jurisdiction.items()}}  # fmt: skip
    inv_id = await conn.fetchval(
        """INSERT INTO invoices (number, customer_id, period_start, kind, corrects, reason,
                                 issued_at, due_on, total, summary)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) RETURNING id""",
        inv.number, inv.customer_id, inv.period.start, inv.kind, corrects, reason,
        inv.issued_at, due_on, inv.total, json.dumps(summary),
    )  # fmt: skip
    await conn.executemany(
        """INSERT INTO invoice_lines (invoice_id, line_no, kind, description, rule, quantity,
               unit_price, jurisdiction, exact, amount, ref)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        [(inv_id, i + 1, ln.kind, ln.description, ln.rule, ln.quantity, ln.unit_price,
          ln.jurisdiction, ln.exact, ln.amount, ln.ref) for i, ln in enumerate(inv.lines)],
    )  # fmt: skip
    return inv_id


async def issue(conn: asyncpg.Connection, customer_id: str, period: Period, ref: RefData,
                taxes: list[TaxRate], now: datetime | None = None) -> Issued:  # fmt: skip
    """The period's invoice: issued now, or as it was issued before (unchanged)."""
    now = now or datetime.now(UTC)
    if _ts(period.end) > now:
        raise BillingError(f"period {period} has not ended yet; invoices are issued after it")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sipcc.billing.' || $1))",
                           customer_id)  # fmt: skip
        existing = await conn.fetchval(
            "SELECT id FROM invoices WHERE customer_id = $1 AND period_start = $2 "
            "AND kind = 'invoice'", customer_id, period.start)  # fmt: skip
        if existing is not None:
            return Issued(await fetch_invoice(conn, existing), existing, False)
        inp = await load_inputs(conn, customer_id, period, ref, taxes, now)
        inv = assemble(inp)
        inv = replace(inv, number=invoice_number(customer_id, period), issued_at=now)
        inv_id = await _insert(conn, inv, due_on=now.date() + timedelta(days=PAYMENT_DAYS))
        await conn.execute(
            "UPDATE payments SET applied_invoice_id = $1 WHERE customer_id = $2 "
            "AND applied_invoice_id IS NULL AND received_at < $3",
            inv_id, customer_id, _ts(period.end))  # fmt: skip
        ids = [d.dispute_id for d in inp.dispute_credits]
        await conn.execute("UPDATE disputes SET credited_invoice_id = $1 WHERE id = ANY($2)",
                           inv_id, ids)  # fmt: skip
        await adjustment_providers.mark_taken(conn, inp.adjustments, inv_id)
        # What was stored, read back: a first run and a re-run answer the same value.
        return Issued(await fetch_invoice(conn, inv_id), inv_id, True)


async def billable_customers(conn, period: Period) -> list[str]:
    """Customers with a billing account, services, or calls in the period."""
    rows = await conn.fetch(
        """SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM billing_accounts b
               WHERE b.customer_id = c.id)
             OR EXISTS (SELECT 1 FROM billing_services s WHERE s.customer_id = c.id)
             OR EXISTS (SELECT 1 FROM cdrs r WHERE r.customer_id = c.id
                        AND r.started_at >= $1 AND r.started_at < $2)
           ORDER BY id""", _ts(period.start), _ts(period.end))  # fmt: skip
    return [r["id"] for r in rows]


async def credit_note(conn, invoice_number_: str, lines: list[tuple[str, Decimal]],
                      reason: str, now: datetime | None = None) -> Issued:  # fmt: skip
    """A correction of an issued invoice: its own document with credit lines (negative
    amounts); the next invoice's previous balance takes it into account."""
    now = now or datetime.now(UTC)
    if not lines:
        raise BillingError("a credit note needs at least one line")
    async with conn.transaction():
        h = await conn.fetchrow("SELECT id, customer_id, period_start, total FROM invoices "
                                "WHERE number = $1 AND kind = 'invoice'", invoice_number_)  # fmt: skip
        if h is None:
            raise BillingError(f"no invoice {invoice_number_!r}")
        out = []
        for desc, amount in lines:
            if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                raise BillingError(f"credit {desc!r}: amount must be positive cents, got {amount}")
            out.append(Line("credit", desc, "B9", -amount, amount=-amount))
        n = await conn.fetchval("SELECT count(*) FROM invoices WHERE corrects = $1", h["id"])
        period = Period(h["period_start"].year, h["period_start"].month)
        inv = Invoice(h["customer_id"], period, tuple(out), {}, "credit_note",
                      f"CN-{h['customer_id']}-{period}-{n + 1}", now, invoice_number_)  # fmt: skip
        inv_id = await _insert(conn, inv, due_on=now.date(), corrects=h["id"], reason=reason)
        return Issued(inv, inv_id, True)
