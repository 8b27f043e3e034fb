"""HTTP routes of the referral programmes (/v1/referrals, /v1/invite-codes, /v1/affiliates).

Every route reads the day from `app.state.referral_clock` (the system clock unless a test
or an operator puts another there) and hands it to the rules."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services import logs
from services.referrals import adjustments, affiliates, invite_codes, outbox, refer_a_friend
from services.referrals.clock import Clock, SystemClock
from services.referrals.customers import Profile, require_customer, save_profile
from services.referrals.errors import ReferralError
from services.referrals.guards import AttemptLimiter

router = APIRouter(prefix="/v1", tags=["referrals"])
log = logs.get("referrals.api")
T = TypeVar("T")
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=5)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileIn(_In):
    activated_on: date
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "US"
    channel: Literal["website", "retail", "partner"] = "website"
    payment_identity: Annotated[str, StringConstraints(max_length=200)] | None = None
    address: Annotated[str, StringConstraints(max_length=400)] | None = None
    promo_ends_on: date | None = None


class CancelIn(_In):
    on: date | None = None


class ReferIn(_In):
    referrer_id: str
    friend_email: Annotated[str, StringConstraints(max_length=254)]


class SignUpIn(_In):
    coupon: Annotated[str, StringConstraints(min_length=8, max_length=200)]
    customer_id: str
    plan_fee: Money
    channel: Literal["website", "retail", "partner"] = "website"
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "US"
    other_offer: bool = False
    payment_identity: Annotated[str, StringConstraints(max_length=200)] | None = None
    address: Annotated[str, StringConstraints(max_length=400)] | None = None


class InviteIn(_In):
    channel: Literal["email", "sms"]
    to: Annotated[str, StringConstraints(max_length=254)]


class RegisterIn(_In):
    client_id: str
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AffiliateIn(_In):
    id: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    commission_rate: Annotated[Decimal, Field(ge=0, le=1, decimal_places=5)]


class ClickIn(_In):
    link: Annotated[str, StringConstraints(max_length=300)]
    visitor_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class PurchaseIn(_In):
    visitor_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    order_ref: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    amount: Money
    customer_id: str | None = None


def clock(request: Request) -> Clock:
    state = request.app.state
    if not hasattr(state, "referral_clock"):
        state.referral_clock = SystemClock()
    return state.referral_clock


def _settings(request: Request):
    return request.app.state.node.settings


def _secret(request: Request) -> str:
    state = request.app.state
    if not hasattr(state, "referral_secret"):
        configured = _settings(request).referral_secret
        if not configured:
            log.warning("SIPCC_REFERRAL_SECRET unset: affiliate links are valid in this "
                        "process only")  # fmt: skip
        state.referral_secret = configured or secrets.token_hex(32)
    return state.referral_secret


def _limiter(request: Request) -> AttemptLimiter:
    state = request.app.state
    if not hasattr(state, "referral_limiter"):
        s, node = _settings(request), request.app.state.node
        state.referral_limiter = AttemptLimiter(node.redis, s.redis_prefix,
                                                s.referral_code_attempts,
                                                s.referral_code_window_seconds)  # fmt: skip
    return state.referral_limiter


async def _answer(result: Awaitable[T]) -> T:
    try:
        return await result
    except ReferralError as exc:
        raise HTTPException(exc.status, detail={"error": str(exc), "rule": exc.rule}) from None


def _pool(request: Request):
    return request.app.state.node.pool


@router.put("/referrals/customers/{customer_id}/profile")
async def put_profile(customer_id: str, body: ProfileIn, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        await _answer(save_profile(conn, customer_id, Profile(**body.model_dump())))
    return {"customer_id": customer_id, "saved": True}


@router.post("/referrals/customers/{customer_id}/cancel")
async def post_cancel(customer_id: str, body: CancelIn, request: Request) -> dict:
    on = body.on or clock(request).today()
    async with _pool(request).acquire() as conn:
        lost = await _answer(refer_a_friend.cancel(conn, customer_id, on))
    return {"customer_id": customer_id, "cancelled_on": on, "credits_forfeited": lost}


@router.post("/referrals", status_code=201)
async def post_referral(body: ReferIn, request: Request) -> dict:
    s = _settings(request)
    async with _pool(request).acquire() as conn:
        ref_id = await _answer(refer_a_friend.refer(
            conn, body.referrer_id, body.friend_email, clock(request).today(),
            link_base=s.referral_link_base, daily_cap=s.referral_daily_cap,
        ))  # fmt: skip
    return {"id": ref_id, "status": "invited"}


@router.post("/referrals/signup", status_code=201)
async def post_signup(body: SignUpIn, request: Request) -> dict:
    data = body.model_dump()
    coupon = data.pop("coupon")
    async with _pool(request).acquire() as conn:
        return await _answer(refer_a_friend.sign_up(
            conn, coupon, refer_a_friend.SignUp(**data), clock(request).today()))  # fmt: skip


@router.get("/referrals/customers/{customer_id}")
async def get_referrals(customer_id: str, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        return await _answer(refer_a_friend.referrer_view(conn, customer_id))


@router.post("/referrals/settle")
async def post_settle(request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        return await refer_a_friend.settle(conn, clock(request).today())


@router.post("/referrals/outbox/deliver")
async def post_deliver(request: Request) -> dict:
    email, sms = outbox.senders(_settings(request))
    async with _pool(request).acquire() as conn:
        return await outbox.deliver_pending(conn, email, sms)


@router.get("/referrals/customers/{customer_id}/adjustments")
async def get_adjustments(
    customer_id: str, request: Request, period_start: date, period_end: date,
    basic_fee: Annotated[Decimal, Query(ge=0)],
) -> dict:  # fmt: skip
    """A preview of the invoice lines (nothing is recorded; billing calls
    services.referrals.adjustments.invoice_adjustments)."""
    if period_end < period_start:
        raise HTTPException(422, detail={"error": "period_end is before period_start"})
    async with _pool(request).acquire() as conn:
        await _answer(require_customer(conn, customer_id, "invoice"))
        facts = await adjustments.load_facts(conn, customer_id, period_start, period_end)
    lines, _ = adjustments.adjustments_for(facts, period_start, period_end, basic_fee)
    return {"customer_id": customer_id, "lines": [vars(a) for a in lines]}


@router.get("/invite-codes/{owner_id}")
async def get_invite_code(owner_id: str, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        return await _answer(invite_codes.owner_view(conn, owner_id, clock(request).today()))


@router.post("/invite-codes/{owner_id}/invitations", status_code=201)
async def post_invitation(owner_id: str, body: InviteIn, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        msg = await _answer(invite_codes.invite(
            conn, owner_id, body.channel, body.to, clock(request).today(),
            daily_cap=_settings(request).referral_daily_cap,
        ))  # fmt: skip
    return {"id": msg, "status": "queued"}


@router.post("/invite-codes/register", status_code=201)
async def post_register(body: RegisterIn, request: Request) -> dict:
    remote = request.client.host if request.client else None
    async with _pool(request).acquire() as conn:
        return await _answer(invite_codes.register(
            conn, body.client_id, body.code, clock(request).today(),
            limiter=_limiter(request), remote=remote,
        ))  # fmt: skip


@router.put("/affiliates/{affiliate_id}")
async def put_affiliate(affiliate_id: str, body: AffiliateIn, request: Request) -> dict:
    if body.id != affiliate_id:
        raise HTTPException(422, detail={"error": "the body's id differs from the path's"})
    async with _pool(request).acquire() as conn:
        await _answer(affiliates.upsert_affiliate(conn, body.id, body.name, body.commission_rate))
    return {"id": body.id}


@router.get("/affiliates/{affiliate_id}/link")
async def get_affiliate_link(affiliate_id: str, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        token = await _answer(affiliates.link_for(conn, _secret(request), affiliate_id,
                                                  clock(request).now()))  # fmt: skip
    return {"affiliate_id": affiliate_id, "link": token}


@router.post("/affiliates/clicks", status_code=201)
async def post_click(body: ClickIn, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        click = await _answer(affiliates.record_click(
            conn, _secret(request), body.link, body.visitor_id, clock(request).now()))  # fmt: skip
    return {"click_id": click}


@router.post("/affiliates/purchases")
async def post_purchase(body: PurchaseIn, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        got = await _answer(affiliates.record_purchase(
            conn, body.visitor_id, body.order_ref, body.amount, clock(request).now(),
            window_days=_settings(request).affiliate_attribution_days,
            customer_id=body.customer_id,
        ))  # fmt: skip
    return {"attributed": got is not None, **(got or {})}


@router.get("/affiliates/{affiliate_id}/commissions")
async def get_commissions(affiliate_id: str, request: Request) -> dict:
    async with _pool(request).acquire() as conn:
        return await _answer(affiliates.ledger(conn, affiliate_id))
