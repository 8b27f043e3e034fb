"""Affiliates (F4): signed tracked links, clicks, purchases attributed within a window, and
the commission ledger.

A link carries `affiliate.issued.signature` (HMAC-SHA256 under SIPCC_REFERRAL_SECRET), so a
visitor cannot forge an affiliate's link. A purchase is attributed to the affiliate of the
visitor's latest click within the attribution window (last click wins); an order is
attributed at most once (its reference is unique in the ledger).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

from rater.money import round_internal
from services import metrics
from services.referrals.errors import ReferralError


def _sig(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def sign_link(secret: str, affiliate_id: str, issued: datetime) -> str:
    payload = f"{affiliate_id}.{int(issued.timestamp())}"
    return f"{payload}.{_sig(secret, payload)}"


def verify_link(secret: str, token: str) -> str:
    """The affiliate id of a genuine link; refuses a forged or mangled one."""
    payload, _, sig = token.strip().rpartition(".")
    affiliate_id = payload.rpartition(".")[0]
    if not affiliate_id or not hmac.compare_digest(sig.encode(), _sig(secret, payload).encode()):
        raise ReferralError("not a genuine affiliate link", rule="F4", status=400)
    return affiliate_id


async def upsert_affiliate(
    conn: asyncpg.Connection, affiliate_id: str, name: str, rate: Decimal
) -> None:
    if not Decimal(0) <= rate <= Decimal(1):
        raise ReferralError(f"commission_rate must be between 0 and 1, got {rate}", status=422)
    await conn.execute(
        "INSERT INTO affiliates (id, name, commission_rate) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
        "commission_rate = EXCLUDED.commission_rate", affiliate_id, name, rate,
    )  # fmt: skip


async def _require(conn: asyncpg.Connection, affiliate_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM affiliates WHERE id = $1", affiliate_id)
    if row is None:
        raise ReferralError(f"no affiliate {affiliate_id!r}", status=404)
    return row


async def link_for(conn: asyncpg.Connection, secret: str, affiliate_id: str, now: datetime) -> str:
    await _require(conn, affiliate_id)
    return sign_link(secret, affiliate_id, now)


async def record_click(
    conn: asyncpg.Connection, secret: str, link: str, visitor_id: str, now: datetime
) -> int:
    affiliate_id = verify_link(secret, link)
    await _require(conn, affiliate_id)
    click = await conn.fetchval(
        "INSERT INTO affiliate_clicks (affiliate_id, visitor_id, clicked_at) "
        "VALUES ($1, $2, $3) RETURNING id", affiliate_id, visitor_id, now,
    )  # fmt: skip
    metrics.referral_events_total.labels(programme="affiliate", event="click").inc()
    return click


async def record_purchase(
    conn: asyncpg.Connection, visitor_id: str, order_ref: str, amount: Decimal, now: datetime,
    *, window_days: int, customer_id: str | None = None,
) -> dict | None:  # fmt: skip
    """F4: attribute a purchase; None when no click of the visitor is within the window."""
    if amount < 0:
        raise ReferralError(f"a purchase amount cannot be negative, got {amount}", status=422)
    async with conn.transaction():
        done = await conn.fetchrow(
            "SELECT affiliate_id, commission FROM affiliate_commissions WHERE order_ref = $1",
            order_ref,
        )  # fmt: skip
        if done is not None:  # a replayed purchase: the first attribution stands
            return {"affiliate_id": done["affiliate_id"], "commission": done["commission"],
                    "order_ref": order_ref}  # fmt: skip
        click = await conn.fetchrow(
            "SELECT c.id, c.affiliate_id, a.commission_rate FROM affiliate_clicks c "
            "JOIN affiliates a ON a.id = c.affiliate_id "
            "WHERE c.visitor_id = $1 AND c.clicked_at <= $2 AND c.clicked_at > $3 "
            "ORDER BY c.clicked_at DESC, c.id DESC LIMIT 1",
            visitor_id, now, now - timedelta(days=window_days),
        )  # fmt: skip
        if click is None:
            return None
        commission = round_internal(amount * click["commission_rate"])
        inserted = await conn.fetchval(
            "INSERT INTO affiliate_commissions (affiliate_id, click_id, order_ref, customer_id, "
            "purchase_amount, commission, purchased_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (order_ref) DO NOTHING RETURNING id",
            click["affiliate_id"], click["id"], order_ref, customer_id, amount, commission, now,
        )  # fmt: skip
    if inserted is None:  # the same order recorded at the same moment elsewhere: that one stands
        return await record_purchase(conn, visitor_id, order_ref, amount, now,
                                     window_days=window_days, customer_id=customer_id)  # fmt: skip
    metrics.referral_events_total.labels(programme="affiliate", event="purchase").inc()
    return {"affiliate_id": click["affiliate_id"], "commission": commission, "order_ref": order_ref}


async def ledger(conn: asyncpg.Connection, affiliate_id: str) -> dict:
    await _require(conn, affiliate_id)
    rows = await conn.fetch(
        "SELECT order_ref, customer_id, purchase_amount, commission, purchased_at "
        "FROM affiliate_commissions WHERE affiliate_id = $1 ORDER BY purchased_at, id",
        affiliate_id,
    )  # fmt: skip
    return {
        "affiliate_id": affiliate_id,
        "entries": [dict(r) for r in rows],
        "total_commission": sum((r["commission"] for r in rows), Decimal(0)),
    }
