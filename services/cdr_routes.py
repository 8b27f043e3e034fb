"""HTTP routes over the `cdrs` table: a filtered, cursor-paged list and a month's CSV.

Pages are keyset-ordered by (started_at, call_id, leg), the same order as the
`cdrs_started` index: a page costs the same at row 10 and row 10 million, and rows
stored meanwhile never shift or repeat a page. The cursor is that key, opaque to clients.
The export streams with a server-side cursor, so a month of millions of rows never sits
in memory.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from services.cdr import COLUMNS
from services.cdr_partitions import PartitionError, add_months, parse_month

router = APIRouter(prefix="/v1", tags=["cdrs"])

Disposition = Literal[
    "answered", "busy", "no_answer", "cancelled", "failed", "rejected", "timeout", "truncated"
]
ORDER = "started_at, call_id, leg"
EXPORT_FETCH = 2000  # rows per round trip of the export's cursor


def _month(text: str, field: str) -> date:
    try:
        return parse_month(text)
    except PartitionError as exc:
        raise HTTPException(422, f"{field}: {exc}") from None


def _aware(d: datetime, field: str) -> datetime:
    if d.tzinfo is None:
        raise HTTPException(422, f"{field}: give a time zone, e.g. {d.isoformat()}Z")
    return d


def encode_cursor(row) -> str:
    key = json.dumps([row["started_at"].isoformat(), row["call_id"], row["leg"]])
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        started, call_id, leg = json.loads(raw)
        return datetime.fromisoformat(started), str(call_id), str(leg)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise HTTPException(400, "cursor: not a cursor this API returned") from None


def _filters(
    customer_id: str | None, trunk_id: str | None, disposition: str | None,
    start: datetime | None, end: datetime | None,
) -> tuple[list[str], list]:  # fmt: skip
    where: list[str] = []
    args: list = []
    for column, value in (("customer_id", customer_id), ("trunk_id", trunk_id),
                          ("disposition", disposition)):  # fmt: skip
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if start is not None:
        args.append(start)
        where.append(f"started_at >= ${len(args)}")
    if end is not None:
        args.append(end)
        where.append(f"started_at < ${len(args)}")
    return where, args


def _json_value(v):
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)  # money stays exact: "0.01320", never a float
    return v


@router.get("/cdrs")
async def list_cdrs(
    request: Request,
    customer_id: str | None = None,
    trunk_id: str | None = None,
    disposition: Disposition | None = None,
    period: Annotated[str | None, Query(description="a month, YYYY-MM")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="started_at ≥ this")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="started_at < this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict:
    """CDRs in (started_at, call_id, leg) order; pass `next_cursor` back for the next page."""
    if period is not None:
        first = _month(period, "period")
        start = max(start, _utc(first)) if start else _utc(first)
        end = min(end, _utc(add_months(first, 1))) if end else _utc(add_months(first, 1))
    start = _aware(start, "from") if start else None
    end = _aware(end, "to") if end else None
    where, args = _filters(customer_id, trunk_id, disposition, start, end)
    if cursor is not None:
        args.extend(decode_cursor(cursor))
        n = len(args)
        where.append(f"(started_at, call_id, leg) > (${n - 2}, ${n - 1}, ${n})")
    args.append(limit + 1)
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM cdrs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {ORDER} LIMIT ${len(args)}"
    )
    rows = await request.app.state.node.pool.fetch(sql, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "cdrs": [{k: _json_value(v) for k, v in r.items()} for r in rows],
        "next_cursor": encode_cursor(rows[-1]) if more else None,
    }


def _utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


async def export_rows(pool, month: date, customer_id: str | None = None) -> AsyncIterator[str]:
    """The month's CDRs as CSV text chunks (header first), read with a server-side cursor."""
    where, args = _filters(customer_id, None, None, _utc(month), _utc(add_months(month, 1)))
    sql = f"SELECT {', '.join(COLUMNS)} FROM cdrs WHERE {' AND '.join(where)} ORDER BY {ORDER}"
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        n = 0
        async for rec in conn.cursor(sql, *args, prefetch=EXPORT_FETCH):
            out.writerow(["" if v is None else _json_value(v) for v in rec.values()])
            n += 1
            if n % EXPORT_FETCH == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()


@router.get("/cdrs/export")
async def export_month(
    request: Request,
    month: Annotated[str, Query(description="YYYY-MM")],
    customer_id: str | None = None,
) -> StreamingResponse:
    """A month of CDRs as CSV (one row per leg, the columns of the `cdrs` table), streamed."""
    first = _month(month, "month")
    name = f"cdrs-{month}" + (f"-{customer_id}" if customer_id else "") + ".csv"
    return StreamingResponse(
        export_rows(request.app.state.node.pool, first, customer_id),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
