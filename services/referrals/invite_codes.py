"""Invite codes (F5, F6) for hosted PBX: each customer's personal code, a new client
registering it, the discounts both get, invitations by e-mail or SMS, the owner's views."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date

import asyncpg

from rater.numbers import normalize
from services import logs, metrics
from services.referrals import outbox
from services.referrals.customers import profile_row, refuse_self_referral, require_customer
from services.referrals.errors import ReferralError
from services.referrals.guards import AttemptLimiter, same_code
from services.referrals.refer_a_friend import check_email
from services.referrals.tiers import (
    CLIENT_PERCENT,
    Grant,
    client_discount,
    owner_grant,
    registration_window_closes,
)

log = logs.get("referrals.invite_codes")
# Crockford's base 32: no I, L, O, U — nothing to misread when a code is typed from an SMS.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10  # 32^10 ≈ 10^15 codes: guessing one under the rate limit is hopeless


def normalize_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


async def code_for(conn: asyncpg.Connection, customer_id: str) -> str:
    """The customer's personal code, made on first use."""
    await require_customer(conn, customer_id, "code owner")
    while True:
        existing = await conn.fetchval(
            "SELECT code FROM invite_codes WHERE customer_id = $1", customer_id
        )
        if existing:
            return existing
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        await conn.execute(
            "INSERT INTO invite_codes (customer_id, code, code_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING", customer_id, code, code_hash(code),
        )  # fmt: skip


async def invite(
    conn: asyncpg.Connection, owner_id: str, channel: str, to: str, today: date, *,
    daily_cap: int,
) -> int:  # fmt: skip
    """Queue an invitation carrying the owner's code, by e-mail or SMS."""
    code = await code_for(conn, owner_id)
    if channel == "email":
        recipient = check_email(to)
    elif channel == "sms":
        recipient = normalize(to) or ""
        if not recipient:
            raise ReferralError(f"not a telephone number: {to!r}", status=422)
    else:
        raise ReferralError(f"channel must be 'email' or 'sms', not {channel!r}", status=422)
    text = (f"You are invited to our hosted PBX. Register invite code {code} in your account "
            "(Extras → Referral programme) within a month of registering your PBX and get "
            f"{CLIENT_PERCENT}% off for your first three months after the promo period.")  # fmt: skip
    async with conn.transaction():
        await outbox.check_daily_cap(conn, owner_id, today, daily_cap)
        msg_id = await outbox.enqueue(conn, owner_id, channel, recipient,
                                      "Your hosted PBX invite code", text, today)  # fmt: skip
    metrics.referral_events_total.labels(programme="invite_code", event="invited").inc()
    return msg_id


async def _active_grant(conn: asyncpg.Connection, owner_id: str, day: date) -> Grant | None:
    row = await conn.fetchrow(
        "SELECT level, percent, starts_on, ends_on, sms_package FROM invite_owner_discounts "
        "WHERE owner_id = $1 AND starts_on <= $2 AND ends_on > $2 "
        "ORDER BY starts_on DESC, id DESC LIMIT 1", owner_id, day,
    )  # fmt: skip
    return Grant(**dict(row)) if row else None


async def register(
    conn: asyncpg.Connection, client_id: str, code: str, today: date, *,
    limiter: AttemptLimiter, remote: str | None = None,
) -> dict:  # fmt: skip
    """F5/F6: a new client registers an invite code; both sides' discounts are granted."""
    await limiter.hit(f"client:{client_id}", *((f"addr:{remote}",) if remote else ()))
    await require_customer(conn, client_id, "client")
    given = normalize_code(code)
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT customer_id, code FROM invite_codes WHERE code_hash = $1", code_hash(given)
        )
        if row is None or not same_code(given, row["code"]):
            metrics.referral_refusals_total.labels(guard="wrong_code").inc()
            raise ReferralError("no such invite code", rule="F5", status=404)
        owner_id = row["customer_id"]
        if owner_id == client_id:
            raise ReferralError("a customer cannot register its own code", rule="F5", status=409)
        owner_status = await require_customer(conn, owner_id, "code owner")
        if owner_status != "active":
            raise ReferralError(f"the code's owner is {owner_status}", rule="F6", status=409)
        profile = await profile_row(conn, client_id)
        if profile is None:
            raise ReferralError(f"{client_id} has no PBX registration date on record",
                                rule="F5", status=409)  # fmt: skip
        closes = registration_window_closes(profile["activated_on"])
        if today > closes:
            raise ReferralError(
                f"the PBX was registered on {profile['activated_on']}; invite codes are "
                f"accepted within one month, until {closes}", rule="F5",
            )  # fmt: skip
        if await conn.fetchval("SELECT 1 FROM invite_registrations WHERE client_id = $1",
                               client_id):  # fmt: skip
            raise ReferralError(f"{client_id} has already registered an invite code", rule="F5",
                                status=409)  # fmt: skip
        if await conn.fetchval("SELECT 1 FROM raf_referrals WHERE friend_id = $1", client_id):
            raise ReferralError(f"{client_id} signed up through refer-a-friend; offers cannot "
                                "be combined", rule="F3", status=409)  # fmt: skip
        await refuse_self_referral(conn, owner_id, profile["payment_identity"],
                                   profile["address_key"], "F5")  # fmt: skip
        start, end = client_discount(today, profile["promo_ends_on"])
        # One owner's registrations are serialised, so two at once cannot share a level.
        await conn.execute("SELECT 1 FROM invite_codes WHERE customer_id = $1 FOR UPDATE",
                           owner_id)  # fmt: skip
        before = await conn.fetchval(
            "SELECT count(*) FROM invite_registrations WHERE owner_id = $1", owner_id
        )
        await conn.execute(
            "INSERT INTO invite_registrations (client_id, owner_id, registered_on, discount_from, "
            "discount_to, percent) VALUES ($1, $2, $3, $4, $5, $6)",
            client_id, owner_id, today, start, end, CLIENT_PERCENT,
        )  # fmt: skip
        grant = owner_grant(today, await _active_grant(conn, owner_id, today), before)
        await conn.execute(
            "INSERT INTO invite_owner_discounts (owner_id, client_id, level, percent, starts_on, "
            "ends_on, sms_package) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            owner_id, client_id, grant.level, grant.percent, grant.starts_on, grant.ends_on,
            grant.sms_package,
        )  # fmt: skip
    metrics.referral_events_total.labels(programme="invite_code", event="registered").inc()
    log.info("invite code registered", client=client_id, owner=owner_id, level=grant.level)
    return {
        "client_id": client_id, "owner_id": owner_id,
        "client_discount": {"percent": CLIENT_PERCENT, "from": start, "to": end},
        "owner_discount": {"level": grant.level, "percent": grant.percent,
                           "from": grant.starts_on, "to": grant.ends_on,
                           "sms_package": grant.sms_package},
    }  # fmt: skip


async def owner_view(conn: asyncpg.Connection, owner_id: str, today: date) -> dict:
    """F6: the owner's code, referred clients (id, name, activation) and discount history."""
    code = await code_for(conn, owner_id)
    clients = await conn.fetch(
        "SELECT r.client_id AS id, c.name, r.registered_on AS code_activated_on "
        "FROM invite_registrations r JOIN customers c ON c.id = r.client_id "
        "WHERE r.owner_id = $1 ORDER BY r.registered_on, r.client_id", owner_id,
    )  # fmt: skip
    history = await conn.fetch(
        "SELECT client_id, level, percent, starts_on, ends_on, sms_package "
        "FROM invite_owner_discounts WHERE owner_id = $1 ORDER BY starts_on, id", owner_id,
    )  # fmt: skip
    current = await _active_grant(conn, owner_id, today)
    return {
        "owner_id": owner_id,
        "code": code,
        "clients": [dict(r) for r in clients],
        "discount_history": [dict(r) for r in history],
        "current_discount": (
            None if current is None else {"percent": current.percent, "until": current.ends_on}
        ),
    }
