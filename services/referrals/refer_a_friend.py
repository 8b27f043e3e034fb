"""Refer-a-friend (F1–F3): e-coupons by e-mail, sign-up through them, credits after 90 days.

A referral moves invited → signed_up → credited | forfeited. `settle(today)` posts the
credits that have matured and forfeits those whose customers are no longer in good
standing; `cancel()` forfeits at once the pending credits a cancellation touches.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

from services import logs, metrics
from services.referrals import outbox
from services.referrals.credit_chart import matures_on, referrer_credit
from services.referrals.customers import (
    Profile,
    profile_row,
    refuse_self_referral,
    require_customer,
    save_profile,
)
from services.referrals.errors import ReferralError
from services.referrals.guards import identity_key

log = logs.get("referrals.friend")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
US = "US"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_email(address: str) -> str:
    address = address.strip()
    if not EMAIL.match(address) or len(address) > 254:
        raise ReferralError(f"not an e-mail address: {address!r}", status=422)
    return address


async def refer(
    conn: asyncpg.Connection, referrer_id: str, friend_email: str, today: date, *,
    link_base: str, daily_cap: int,
) -> int:  # fmt: skip
    """F1: record a referral and queue the e-coupon e-mail to the friend."""
    email = check_email(friend_email)
    status = await require_customer(conn, referrer_id, "referrer")
    if status != "active":
        raise ReferralError(f"{referrer_id} is {status}: only customers in good standing refer",
                            rule="F2", status=409)  # fmt: skip
    token = secrets.token_urlsafe(24)
    async with conn.transaction():
        await outbox.check_daily_cap(conn, referrer_id, today, daily_cap)
        try:
            ref_id = await conn.fetchval(
                "INSERT INTO raf_referrals (referrer_id, friend_email, token_hash, invited_on) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                referrer_id, email, token_hash(token), today,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ReferralError(f"{referrer_id} has already referred {email}", status=409) from None
        await outbox.enqueue(
            conn, referrer_id, "email", email, "A free month of service from a friend",
            "A friend of yours, a customer of ours, invites you to join.\n"
            "Sign up as a new customer on our website through this e-coupon link and your "
            "first month's basic service fee is free (other charges apply; US only; not "
            f"combinable with other offers):\n\n{link_base}{token}\n",
            today,
        )  # fmt: skip
    metrics.referral_events_total.labels(programme="refer_a_friend", event="invited").inc()
    log.info("referral sent", referral=ref_id, referrer=referrer_id)
    return ref_id


@dataclass(frozen=True)
class SignUp:
    customer_id: str
    plan_fee: Decimal  # the monthly basic service fee of the plan the friend chose
    channel: str = "website"
    country: str = US
    other_offer: bool = False
    payment_identity: str | None = None
    address: str | None = None


async def sign_up(conn: asyncpg.Connection, coupon: str, s: SignUp, today: date) -> dict:
    """F1, F3: the friend signs up through the e-coupon link."""
    if s.plan_fee < 0:
        raise ReferralError(f"plan_fee cannot be negative, got {s.plan_fee}", status=422)
    async with conn.transaction():
        ref = await conn.fetchrow(
            "SELECT * FROM raf_referrals WHERE token_hash = $1 FOR UPDATE", token_hash(coupon)
        )
        if ref is None:
            raise ReferralError("unknown e-coupon", rule="F1", status=404)
        if ref["status"] != "invited":
            raise ReferralError("this e-coupon has already been used", rule="F1", status=409)
        await require_customer(conn, s.customer_id, "friend")
        if s.customer_id == ref["referrer_id"]:
            raise ReferralError("self-referral: a customer cannot refer itself", rule="F3",
                                status=409)  # fmt: skip
        if s.channel != "website":
            raise ReferralError(f"only sign-ups on the website qualify, not {s.channel}",
                                rule="F3")  # fmt: skip
        if s.country != US:
            raise ReferralError(f"the offer is valid in the US only, not {s.country}", rule="F3")
        if s.other_offer:
            raise ReferralError("the offer cannot be combined with another offer", rule="F3")
        if await conn.fetchval("SELECT 1 FROM invite_registrations WHERE client_id = $1",
                               s.customer_id):  # fmt: skip
            raise ReferralError(f"{s.customer_id} already has an invite-code discount; "
                                "offers cannot be combined", rule="F3")  # fmt: skip
        if await conn.fetchval("SELECT 1 FROM raf_referrals WHERE friend_id = $1", s.customer_id):
            raise ReferralError(f"{s.customer_id} has already signed up through a referral",
                                rule="F3", status=409)  # fmt: skip
        existing = await profile_row(conn, s.customer_id)
        if existing is not None and existing["activated_on"] < ref["invited_on"]:
            raise ReferralError(
                f"{s.customer_id} was activated on {existing['activated_on']}, before the "
                "referral: the offer is for new activations only", rule="F3",
            )  # fmt: skip
        await refuse_self_referral(conn, ref["referrer_id"], identity_key(s.payment_identity),
                                   identity_key(s.address), "F3")  # fmt: skip
        await save_profile(conn, s.customer_id, Profile(
            activated_on=existing["activated_on"] if existing else today, country=s.country,
            channel=s.channel, payment_identity=s.payment_identity, address=s.address,
        ))  # fmt: skip
        credit = referrer_credit(s.plan_fee)
        await conn.execute(
            "UPDATE raf_referrals SET friend_id = $2, signed_up_on = $3, plan_fee = $4, "
            "credit = $5, status = 'signed_up' WHERE id = $1",
            ref["id"], s.customer_id, today, s.plan_fee, credit,
        )  # fmt: skip
    metrics.referral_events_total.labels(programme="refer_a_friend", event="signed_up").inc()
    return {"referral_id": ref["id"], "referrer_id": ref["referrer_id"],
            "credit": credit, "credit_posts_on": matures_on(today)}  # fmt: skip


async def _forfeit(conn: asyncpg.Connection, ref_id: int, day: date, reason: str) -> None:
    await conn.execute(
        "UPDATE raf_referrals SET status = 'forfeited', settled_on = $2, forfeit_reason = $3 "
        "WHERE id = $1", ref_id, day, reason,
    )  # fmt: skip
    metrics.referral_events_total.labels(programme="refer_a_friend", event="forfeited").inc()


async def cancel(conn: asyncpg.Connection, customer_id: str, on: date) -> int:
    """F2: a customer cancels; pending credits of referrals it is part of, whose 90 days
    have not run, are lost. Returns how many were forfeited."""
    await require_customer(conn, customer_id, "cancelling")
    async with conn.transaction():
        await conn.execute(
            "UPDATE referral_customers SET cancelled_on = $2, updated_at = now() "
            "WHERE customer_id = $1", customer_id, on,
        )  # fmt: skip
        rows = await conn.fetch(
            "SELECT id, referrer_id, friend_id, signed_up_on FROM raf_referrals "
            "WHERE status = 'signed_up' AND (referrer_id = $1 OR friend_id = $1) FOR UPDATE",
            customer_id,
        )  # fmt: skip
        lost = 0
        for r in rows:
            if on < matures_on(r["signed_up_on"]):
                who = "referrer" if r["referrer_id"] == customer_id else "friend"
                day = (on - r["signed_up_on"]).days
                await _forfeit(conn, r["id"], on,
                               f"the {who} {customer_id} cancelled on day {day} of 90")  # fmt: skip
                lost += 1
    return lost


async def settle(conn: asyncpg.Connection, today: date) -> dict[str, int]:
    """F2: post every credit whose 90 days have run by `today`, if both customers are still
    in good standing (active, not cancelled); forfeit the others. Safe to run any day,
    and twice: a credit posts on its maturity day whenever it is settled."""
    counts = {"credited": 0, "forfeited": 0}
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT r.id, r.referrer_id, r.friend_id, r.signed_up_on, r.credit,
                      a.status AS referrer_status, b.status AS friend_status,
                      pa.cancelled_on AS referrer_cancelled, pb.cancelled_on AS friend_cancelled
               FROM raf_referrals r
               JOIN customers a ON a.id = r.referrer_id
               JOIN customers b ON b.id = r.friend_id
               LEFT JOIN referral_customers pa ON pa.customer_id = r.referrer_id
               LEFT JOIN referral_customers pb ON pb.customer_id = r.friend_id
               WHERE r.status = 'signed_up' AND r.signed_up_on <= $1::date - 90
               FOR UPDATE OF r""",
            today,
        )
        for r in rows:
            due = matures_on(r["signed_up_on"])
            bad = [
                f"the {who} {cid} is {status}"
                for who, cid, status, cancelled in (
                    ("referrer", r["referrer_id"], r["referrer_status"], r["referrer_cancelled"]),
                    ("friend", r["friend_id"], r["friend_status"], r["friend_cancelled"]),
                )
                if status != "active" or (cancelled is not None and cancelled < due)
            ]
            if bad:
                await _forfeit(conn, r["id"], due, "; ".join(bad) + " on day 90")
                counts["forfeited"] += 1
                continue
            await conn.execute(
                "UPDATE raf_referrals SET status = 'credited', settled_on = $2 WHERE id = $1",
                r["id"], due,
            )  # fmt: skip
            metrics.referral_events_total.labels(programme="refer_a_friend", event="credited").inc()
            metrics.referral_credit_dollars_total.inc(float(r["credit"]))
            counts["credited"] += 1
    if any(counts.values()):
        log.info("referral credits settled", today=str(today), **counts)
    return counts


async def referrer_view(conn: asyncpg.Connection, referrer_id: str) -> dict:
    """F3: the referrer's referrals, who signed up, and the credits earned."""
    await require_customer(conn, referrer_id, "referrer")
    rows = await conn.fetch(
        "SELECT id, friend_email, invited_on, status, friend_id, signed_up_on, plan_fee, credit, "
        "settled_on, forfeit_reason FROM raf_referrals WHERE referrer_id = $1 ORDER BY id",
        referrer_id,
    )  # fmt: skip
    referrals = []
    for r in rows:
        item = dict(r)
        item["credit_posts_on"] = matures_on(r["signed_up_on"]) if r["signed_up_on"] else None
        referrals.append(item)
    credited = sum((r["credit"] for r in rows if r["status"] == "credited"), Decimal(0))
    pending = sum((r["credit"] for r in rows if r["status"] == "signed_up"), Decimal(0))
    return {
        "referrer_id": referrer_id,
        "referrals": referrals,
        "signed_up": sum(1 for r in rows if r["friend_id"]),
        "credited": credited,
        "pending": pending,
    }
