"""The hook other programmes fill invoices through (referral credits and discounts,
F1–F6): an adjustment provider is an async callable

    provider(conn, customer_id, period, *, basic_fee, chargeable) -> list[Adjustment]

where `basic_fee` is the month's MRC and `chargeable` the invoice's current charges before
adjustments (both exact). `PROVIDERS` lists them; the invoice takes every line they give.

The first provider reads the table `billing_adjustments`: a programme that prefers to
write rows (customer, period, kind, description, amount, rule) needs no code in billing.
Rows an invoice took are stamped with it, so no later invoice takes them again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from services.billing.model import Adjustment, Period

Provider = Callable[..., Awaitable[list[Adjustment]]]


async def table_adjustments(conn: asyncpg.Connection, customer_id: str, period: Period, *,
                            basic_fee: Decimal, chargeable: Decimal) -> list[Adjustment]:  # fmt: skip
    rows = await conn.fetch(
        "SELECT id, kind, description, amount, rule FROM billing_adjustments "
        "WHERE customer_id = $1 AND period_start <= $2 AND invoice_id IS NULL ORDER BY id",
        customer_id, period.start,
    )  # fmt: skip
    return [Adjustment(r["kind"], r["description"], r["amount"], r["rule"], r["id"]) for r in rows]


async def referral_adjustments(conn: asyncpg.Connection, customer_id: str, period: Period, *,
                               basic_fee: Decimal, chargeable: Decimal) -> list[Adjustment]:  # fmt: skip
    """Referral credits and discounts (F1–F6), computed by their programme."""
    from services.referrals.adjustments import billing_provider  # it imports billing's model

    return await billing_provider(conn, customer_id, period, basic_fee=basic_fee,
                                  chargeable=chargeable)  # fmt: skip


PROVIDERS: list[Provider] = [table_adjustments, referral_adjustments]


async def collect(conn, customer_id: str, period: Period, *, basic_fee: Decimal,
                  chargeable: Decimal) -> list[Adjustment]:  # fmt: skip
    out: list[Adjustment] = []
    for provider in PROVIDERS:
        out += await provider(conn, customer_id, period, basic_fee=basic_fee,
                              chargeable=chargeable)  # fmt: skip
    return out


async def mark_taken(conn, adjustments: list[Adjustment], invoice_id: int) -> None:
    ids = [a.id for a in adjustments if getattr(a, "id", None) is not None]
    if ids:
        await conn.execute("UPDATE billing_adjustments SET invoice_id = $1 WHERE id = ANY($2)",
                           invoice_id, ids)  # fmt: skip
