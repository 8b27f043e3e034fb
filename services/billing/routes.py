"""HTTP routes of billing (mounted by services/api.py): invoices as JSON, HTML and PDF,
credit notes, the events API for NRCs and outages (B5, B7, B8), disputes (B9), payments,
and a customer's billing terms (caps, credit limit and deposit: B2, B3, B10)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.billing import render, store
from services.billing.model import EVENT_KINDS, Invoice, Period

router = APIRouter(prefix="/v1", tags=["billing"])

DISPUTE_WINDOW = timedelta(days=30)  # B9: dispute within 30 days of receipt
ANSWER_WINDOW = timedelta(days=30)  # B9: the carrier answers within 30 days
Money = Decimal


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _pool(request: Request):
    pool = request.app.state.node.pool
    if pool is None:
        raise HTTPException(503, "billing needs the database, which this node has not connected")
    return pool


def _aware(v: datetime) -> datetime:
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def invoice_json(inv: Invoice) -> dict:
    return {
        "number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id,
        "period": str(inv.period), "issued_at": inv.issued_at, "corrects": inv.corrects,
        "currency": "USD", "total": str(inv.total),
        "lines": [{"kind": ln.kind, "description": ln.description, "rule": ln.rule,
                   "quantity": None if ln.quantity is None else str(ln.quantity),
                   "unit_price": None if ln.unit_price is None else str(ln.unit_price),
                   "jurisdiction": ln.jurisdiction, "exact": str(ln.exact),
                   "amount": str(ln.amount)} for ln in inv.lines],
        "usage_by_jurisdiction": {j: {"calls": c, "minutes": str(m), "amount": str(a)}
                                  for j, (c, m, a) in inv.usage_by_jurisdiction.items()},
    }  # fmt: skip


async def _by_number(conn, number: str) -> tuple[int, Invoice]:
    inv_id = await conn.fetchval("SELECT id FROM invoices WHERE number = $1", number)
    if inv_id is None:
        raise HTTPException(404, f"no invoice {number!r}")
    return inv_id, await store.fetch_invoice(conn, inv_id)


@router.get("/invoices")
async def list_invoices(request: Request, customer_id: str | None = None,
                        period: str | None = None) -> list[dict]:  # fmt: skip
    start = None
    if period is not None:
        try:
            start = Period.parse(period).start
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    rows = await _pool(request).fetch(
        """SELECT number, kind, customer_id, to_char(period_start, 'YYYY-MM') AS period,
                  issued_at, due_on, total::text AS total FROM invoices
           WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::date IS NULL OR period_start = $2)
           ORDER BY period_start, customer_id, id""", customer_id, start)  # fmt: skip
    return [dict(r) for r in rows]


@router.get("/invoices/{number}")
async def get_invoice(request: Request, number: str) -> dict:
    async with _pool(request).acquire() as conn:
        return invoice_json((await _by_number(conn, number))[1])


async def _name(conn, inv: Invoice) -> str:
    return await conn.fetchval("SELECT name FROM customers WHERE id = $1", inv.customer_id) or ""


@router.get("/invoices/{number}/html")
async def invoice_html(request: Request, number: str) -> Response:
    async with _pool(request).acquire() as conn:
        _, inv = await _by_number(conn, number)
        return Response(render.html(inv, await _name(conn, inv)), media_type="text/html")


@router.get("/invoices/{number}/pdf")
async def invoice_pdf(request: Request, number: str) -> Response:
    async with _pool(request).acquire() as conn:
        _, inv = await _by_number(conn, number)
        name = await _name(conn, inv)
    return Response(render.pdf(inv, name), media_type="application/pdf",
                    headers={"content-disposition": f'inline; filename="{number}.pdf"'})  # fmt: skip


class CreditLineIn(_In):
    description: str = Field(min_length=1, max_length=500)
    amount: Money = Field(gt=0, decimal_places=2)


class CreditNoteIn(_In):
    reason: str = Field(min_length=1, max_length=1000)
    lines: list[CreditLineIn] = Field(min_length=1)


@router.post("/invoices/{number}/credit-notes", status_code=201)
async def create_credit_note(request: Request, number: str, body: CreditNoteIn) -> dict:
    """A correction of an issued invoice (which itself never changes)."""
    async with _pool(request).acquire() as conn:
        try:
            issued = await store.credit_note(
                conn, number, [(ln.description, ln.amount) for ln in body.lines], body.reason)
        except store.BillingError as exc:
            raise HTTPException(404 if "no invoice" in str(exc) else 422, str(exc)) from None
    return invoice_json(issued.invoice)


class EventIn(_In):
    customer_id: str
    kind: Literal[EVENT_KINDS]  # type: ignore[valid-type]
    at: datetime
    tns: list[str] = Field(default_factory=list, max_length=10_000)
    foc_at: datetime | None = None  # lnp_cancel: the firm order commitment (B5)
    ported_at: datetime | None = None  # reinstate: when the number was ported (B5)
    note: str = ""

    @model_validator(mode="after")
    def _needs(self) -> EventIn:
        if self.kind == "lnp_cancel" and self.foc_at is None:
            raise ValueError("an lnp_cancel event needs foc_at (the FOC date, B5)")
        if self.kind == "reinstate" and self.ported_at is None:
            raise ValueError("a reinstate event needs ported_at (when the number was ported, B5)")
        return self


async def _customer(conn, customer_id: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM customers WHERE id = $1", customer_id):
        raise HTTPException(404, f"no customer {customer_id!r}")


async def _not_invoiced(conn, customer_id: str, at: datetime) -> None:
    """Nothing is added to a month already invoiced: that is what credit notes are for."""
    at = _aware(at).astimezone(UTC)
    start = at.date().replace(day=1)
    if await conn.fetchval("SELECT 1 FROM invoices WHERE customer_id = $1 AND period_start = $2 "
                           "AND kind = 'invoice'", customer_id, start):  # fmt: skip
        raise HTTPException(409, f"{start:%Y-%m} is already invoiced for {customer_id}; "
                            "a correction is a credit note")  # fmt: skip


@router.post("/billing/events", status_code=201)
async def create_event(request: Request, body: EventIn) -> dict:
    async with _pool(request).acquire() as conn:
        await _customer(conn, body.customer_id)
        await _not_invoiced(conn, body.customer_id, body.at)
        event_id = await conn.fetchval(
            """INSERT INTO billing_events (customer_id, kind, at, tns, foc_at, ported_at, note)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            body.customer_id, body.kind, _aware(body.at), body.tns,
            body.foc_at and _aware(body.foc_at), body.ported_at and _aware(body.ported_at),
            body.note,
        )  # fmt: skip
    return {"id": event_id}


class OutageIn(_In):
    customer_id: str
    circuit_id: str = Field(min_length=1)
    started_at: datetime
    ended_at: datetime
    credit_requested: bool = False

    @model_validator(mode="after")
    def _order(self) -> OutageIn:
        if _aware(self.ended_at) <= _aware(self.started_at):
            raise ValueError("ended_at must come after started_at")
        return self


@router.post("/billing/outages", status_code=201)
async def create_outage(request: Request, body: OutageIn) -> dict:
    async with _pool(request).acquire() as conn:
        await _customer(conn, body.customer_id)
        outage_id = await conn.fetchval(
            """INSERT INTO billing_outages (customer_id, circuit_id, started_at, ended_at,
                   credit_requested) VALUES ($1, $2, $3, $4, $5) RETURNING id""",
            body.customer_id, body.circuit_id, _aware(body.started_at), _aware(body.ended_at),
            body.credit_requested,
        )  # fmt: skip
    return {"id": outage_id}


@router.post("/billing/outages/{outage_id}/credit-request")
async def request_sla_credit(request: Request, outage_id: int) -> dict:
    """B8: SLA credits are applied on request."""
    done = await _pool(request).fetchval(
        "UPDATE billing_outages SET credit_requested = true WHERE id = $1 RETURNING id", outage_id)
    if done is None:
        raise HTTPException(404, f"no outage {outage_id}")
    return {"id": outage_id, "credit_requested": True}


class DisputeIn(_In):
    invoice_number: str
    amount: Money = Field(gt=0, decimal_places=2)
    reason: str = Field(min_length=1, max_length=2000)
    opened_at: datetime | None = None  # default: now


def _dispute_json(r) -> dict:
    d = dict(r)
    d["amount"] = str(d["amount"])
    d["answer_overdue"] = d["status"] == "open" and datetime.now(UTC) > d["answer_due"]
    return d


@router.post("/disputes", status_code=201)
async def open_dispute(request: Request, body: DisputeIn) -> dict:
    """B9: within 30 days of receipt of the invoice (its issue date), for at most what
    that invoice charged; the carrier owes an answer within 30 days."""
    opened = _aware(body.opened_at or datetime.now(UTC))
    async with _pool(request).acquire() as conn:
        inv = await conn.fetchrow("SELECT id, customer_id, issued_at, total, kind FROM invoices "
                                  "WHERE number = $1", body.invoice_number)  # fmt: skip
        if inv is None or inv["kind"] != "invoice":
            raise HTTPException(404, f"no invoice {body.invoice_number!r}")
        if opened > inv["issued_at"] + DISPUTE_WINDOW:
            raise HTTPException(422, f"B9: disputes on {body.invoice_number} had to be opened "
                                f"within 30 days of {inv['issued_at']:%Y-%m-%d}")  # fmt: skip
        charged = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM invoice_lines WHERE invoice_id = $1 "
            "AND amount > 0 AND kind <> 'previous_balance'", inv["id"])  # fmt: skip
        if body.amount > charged:
            raise HTTPException(422, f"disputed {body.amount} exceeds the {charged} charged on "
                                f"{body.invoice_number}")  # fmt: skip
        row = await conn.fetchrow(
            """INSERT INTO disputes (invoice_id, customer_id, amount, reason, opened_at, answer_due)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            inv["id"], inv["customer_id"], body.amount, body.reason, opened,
            opened + ANSWER_WINDOW,
        )  # fmt: skip
    return _dispute_json(row)


class ResolveIn(_In):
    outcome: Literal["won", "lost"]  # won: for the customer, credited on the next invoice
    resolution: str = Field(min_length=1, max_length=2000)
    amount: Money | None = Field(default=None, gt=0, decimal_places=2)  # a partial win


@router.post("/disputes/{dispute_id}/resolve")
async def resolve_dispute(request: Request, dispute_id: int, body: ResolveIn) -> dict:
    async with _pool(request).acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM disputes WHERE id = $1", dispute_id)
        if row is None:
            raise HTTPException(404, f"no dispute {dispute_id}")
        if row["status"] != "open":
            raise HTTPException(409, f"dispute {dispute_id} is already {row['status']}")
        amount = body.amount or row["amount"]
        if amount > row["amount"]:
            raise HTTPException(422, f"credit {amount} exceeds the {row['amount']} disputed")
        row = await conn.fetchrow(
            """UPDATE disputes SET status = $2, resolution = $3, resolved_at = now(), amount = $4
               WHERE id = $1 RETURNING *""", dispute_id, body.outcome, body.resolution, amount)  # fmt: skip
    return _dispute_json(row)


@router.get("/disputes")
async def list_disputes(request: Request, customer_id: str | None = None) -> list[dict]:
    rows = await _pool(request).fetch(
        "SELECT * FROM disputes WHERE ($1::text IS NULL OR customer_id = $1) ORDER BY id",
        customer_id)  # fmt: skip
    return [_dispute_json(r) for r in rows]


class PaymentIn(_In):
    customer_id: str
    amount: Money = Field(gt=0, decimal_places=2)
    received_at: datetime
    reference: str = Field(default="", max_length=200)


@router.post("/payments", status_code=201)
async def record_payment(request: Request, body: PaymentIn) -> dict:
    async with _pool(request).acquire() as conn:
        await _customer(conn, body.customer_id)
        pid = await conn.fetchval(
            "INSERT INTO payments (customer_id, received_at, amount, reference) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            body.customer_id, _aware(body.received_at), body.amount, body.reference)  # fmt: skip
    return {"id": pid}


class AccountIn(_In):
    enforce_local_inbound_cap: bool = False
    enforce_ld_minimum: bool = False
    enforce_short_calls: bool = True
    enforce_rboc_threshold: bool = True
    rboc_surcharge_per_minute: Money = Field(default=Decimal("0.06"), ge=0, le=Decimal("0.06"))
    credit_limit: Money | None = Field(default=None, ge=0, decimal_places=5)
    deposit: Money = Field(default=Decimal(0), ge=0, decimal_places=2)


@router.put("/billing/accounts/{customer_id}")
async def put_account(request: Request, customer_id: str, body: AccountIn) -> dict:
    """A customer's billing terms; its credit limit plus deposit become the rater's credit
    level (B10 → A6), which running nodes reload on the inventory signal."""
    async with _pool(request).acquire() as conn, conn.transaction():
        await _customer(conn, customer_id)
        f = body.model_dump()
        await conn.execute(
            f"""INSERT INTO billing_accounts (customer_id, {", ".join(f)}, updated_at)
                VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(f)))}, now())
                ON CONFLICT (customer_id) DO UPDATE SET
                {", ".join(f"{k} = EXCLUDED.{k}" for k in f)}, updated_at = now()""",
            customer_id, *f.values(),
        )  # fmt: skip
        await conn.execute("NOTIFY sipcc_inventory")
    return {"customer_id": customer_id, **{k: str(v) if isinstance(v, Decimal) else v
                                           for k, v in body.model_dump().items()}}  # fmt: skip


class ServiceIn(_In):
    description: str = Field(min_length=1)
    kind: Literal["trunk", "did", "circuit", "other"]
    unit_mrc: Money = Field(ge=0, decimal_places=5)
    quantity: int | None = Field(default=None, ge=0)
    starts_on: date | None = None
    ends_on: date | None = None
    circuit_id: str | None = None
    sla: bool = False

    @model_validator(mode="after")
    def _order(self) -> ServiceIn:
        if self.starts_on and self.ends_on and self.ends_on <= self.starts_on:
            raise ValueError("ends_on must come after starts_on")
        return self


@router.put("/billing/accounts/{customer_id}/services/{service_id}")
async def put_service(request: Request, customer_id: str, service_id: str, body: ServiceIn) -> dict:
    async with _pool(request).acquire() as conn:
        await _customer(conn, customer_id)
        await conn.execute(
            """INSERT INTO billing_services (customer_id, id, description, kind, unit_mrc,
                   quantity, starts_on, ends_on, circuit_id, sla)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (customer_id, id) DO UPDATE SET description = EXCLUDED.description,
                   kind = EXCLUDED.kind, unit_mrc = EXCLUDED.unit_mrc,
                   quantity = EXCLUDED.quantity, starts_on = EXCLUDED.starts_on,
                   ends_on = EXCLUDED.ends_on, circuit_id = EXCLUDED.circuit_id,
                   sla = EXCLUDED.sla""",
            customer_id, service_id, body.description, body.kind, body.unit_mrc, body.quantity,
            body.starts_on, body.ends_on,
            body.circuit_id, body.sla,
        )  # fmt: skip
    return {"customer_id": customer_id, "id": service_id}
