"""`sipcc billing run`: one invoice per customer for a period, each issued once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg

from services import logs, metrics, refdata
from services.billing import store
from services.billing.model import Period, TaxRate
from services.billing.taxes import DEFAULT_TAXES, parse_taxes

log = logs.get("billing")


def configured_taxes(raw: list[dict] | None) -> list[TaxRate]:
    """B6 rates from Settings.billing_taxes; the default (USF) when it is not set."""
    return list(DEFAULT_TAXES) if raw is None else parse_taxes(raw)


async def run(conn: asyncpg.Connection, period: Period, customer_id: str | None = None,
              taxes: list[TaxRate] | None = None,
              now: datetime | None = None) -> list[store.Issued]:  # fmt: skip
    now = now or datetime.now(UTC)
    taxes = list(DEFAULT_TAXES) if taxes is None else taxes
    ref = await refdata.load_cached(conn)
    if customer_id is not None:
        ids = [customer_id]
    else:
        ids = await store.billable_customers(conn, period)
    out = []
    for cid in ids:
        t0 = time.perf_counter()
        issued = await store.issue(conn, cid, period, ref, taxes, now)
        outcome = "issued" if issued.created else "unchanged"
        metrics.billing_invoices_total.labels(outcome=outcome).inc()
        metrics.billing_run_seconds.observe(time.perf_counter() - t0)
        log.info("invoice", customer=cid, period=str(period), number=issued.invoice.number,
                 total=str(issued.invoice.total), outcome=outcome)  # fmt: skip
        out.append(issued)
    return out
