"""HTTP routes of the rater: the same decide() the edge runs in-process (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rater.decision import CallFacts, Decision, decide

router = APIRouter(prefix="/v1", tags=["rating"])


class RateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trunk_id: str | None = None
    customer_id: str | None = None
    ani: str | None = Field(default=None, max_length=64)
    dnis: str = Field(min_length=1, max_length=64)
    direction: Literal["outbound", "inbound"] = "outbound"
    at: datetime | None = None

    @model_validator(mode="after")
    def _who(self) -> RateIn:
        if not (self.trunk_id or self.customer_id):
            raise ValueError("give trunk_id or customer_id")
        return self


class QuoteIn(RateIn):
    duration_seconds: Decimal = Field(ge=0, le=86_400 * 7)


class RateOut(BaseModel):
    action: str
    sip_status: int | None = None
    rule: str | None = None
    reason: str | None = None
    customer_id: str | None
    trunk_id: str | None
    jurisdiction: str | None
    ani_used: str | None
    ani_source: str
    dnis: str
    billing_increments: tuple[int, int]
    rate_per_minute: Decimal | None
    currency: str


class QuoteOut(RateOut):
    duration_seconds: Decimal
    billed_seconds: int
    amount: Decimal


def _out(d: Decision) -> dict:
    return dict(
        action=d.action, sip_status=d.sip_status, rule=d.rule, reason=d.reason,
        customer_id=d.customer_id, trunk_id=d.trunk_group_id, jurisdiction=d.jurisdiction,
        ani_used=d.ani_used, ani_source=d.ani_source, dnis=d.dnis,
        billing_increments=d.billing_increments, rate_per_minute=d.rate_per_minute,
        currency=d.currency,
    )  # fmt: skip


def _decide(request: Request, body: RateIn) -> Decision:
    inv = request.app.state.node.inventory
    if body.trunk_id and body.trunk_id not in inv.trunk_groups:
        raise HTTPException(404, f"no trunk {body.trunk_id!r}")
    if body.customer_id and body.customer_id not in inv.customers:
        raise HTTPException(404, f"no customer {body.customer_id!r}")
    return decide(
        inv,
        CallFacts(dnis=body.dnis, ani=body.ani, ani_source="api", trunk_group_id=body.trunk_id,
                  customer_id=body.customer_id, direction=body.direction, at=body.at),
    )  # fmt: skip


@router.post("/rate", response_model=RateOut)
async def rate(request: Request, body: RateIn) -> dict:
    return _out(_decide(request, body))


@router.post("/quote", response_model=QuoteOut)
async def quote(request: Request, body: QuoteIn) -> dict:
    d = _decide(request, body)
    ms = int(body.duration_seconds * 1000)
    billed, amount = d.quote(ms) if d.action == "forward" else (0, Decimal("0.00000"))
    return {**_out(d), "duration_seconds": body.duration_seconds, "billed_seconds": billed,
            "amount": amount}  # fmt: skip
