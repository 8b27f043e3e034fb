"""The facts the programmes keep about a customer (referral_customers): activation day,
country, sales channel, promo period, hashed payment identity and address, cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from services.referrals.errors import ReferralError
from services.referrals.guards import identity_key


@dataclass(frozen=True)
class Profile:
    activated_on: date
    country: str = "US"
    channel: str = "website"
    payment_identity: str | None = None  # raw text; only its hash is stored
    address: str | None = None  # raw text; only its hash is stored
    promo_ends_on: date | None = None


async def require_customer(conn: asyncpg.Connection, customer_id: str, role: str) -> str:
    """The customer's status; refuses an unknown customer (404)."""
    status = await conn.fetchval("SELECT status FROM customers WHERE id = $1", customer_id)
    if status is None:
        raise ReferralError(f"no customer {customer_id!r} ({role})", status=404)
    return status


async def save_profile(conn: asyncpg.Connection, customer_id: str, p: Profile) -> None:
    await require_customer(conn, customer_id, "profile")
    await conn.execute(
        """INSERT INTO referral_customers (customer_id, activated_on, country, channel,
               payment_identity, address_key, promo_ends_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (customer_id) DO UPDATE SET activated_on = EXCLUDED.activated_on,
               country = EXCLUDED.country, channel = EXCLUDED.channel,
               payment_identity = coalesce(EXCLUDED.payment_identity, referral_customers.payment_identity),
               address_key = coalesce(EXCLUDED.address_key, referral_customers.address_key),
               promo_ends_on = EXCLUDED.promo_ends_on, updated_at = now()""",
        customer_id, p.activated_on, p.country, p.channel, identity_key(p.payment_identity),
        identity_key(p.address), p.promo_ends_on,
    )  # fmt: skip


async def profile_row(conn: asyncpg.Connection, customer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM referral_customers WHERE customer_id = $1", customer_id
    )


async def refuse_self_referral(
    conn: asyncpg.Connection, referrer_id: str, payment_key: str | None,
    address_key: str | None, rule: str,
) -> None:  # fmt: skip
    """Refuses when the new customer shares the referrer's payment identity or address."""
    from services import metrics

    row = await profile_row(conn, referrer_id)
    if row is None:
        return
    for what, key, theirs in (
        ("payment identity", payment_key, row["payment_identity"]),
        ("address", address_key, row["address_key"]),
    ):
        if key is not None and key == theirs:
            metrics.referral_refusals_total.labels(guard="self_referral").inc()
            raise ReferralError(
                f"self-referral: the new customer has the same {what} as {referrer_id}",
                rule=rule, status=409,
            )  # fmt: skip
