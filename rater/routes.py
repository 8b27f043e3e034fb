"""HTTP routes of the rater: the same decide() the edge runs in-process (DESIGN.md)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    oli: str | None = Field(default=None, pattern=r"^[0-9]{1,2}$")  # R12: ANI II digits
    forwarded_from: str | None = Field(default=None, max_length=64)  # R13

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
    direction: str = "outbound"
    per_call_charge: Decimal | None = None
    rating_rule: str | None = None
    basis: str | None = None
    carrier_category: str | None = None
    ocn: str | None = None
    lata: str | None = None
    rate_center: str | None = None


class QuoteOut(RateOut):
    duration_seconds: Decimal
    billed_seconds: int
    amount: Decimal


def _out(d: Decision) -> dict:
    """The RateOut fields; per_call_charge stays the decimal string it is."""
    return dict(
        action=d.action, sip_status=d.sip_status, rule=d.rule, reason=d.reason,
        customer_id=d.customer_id, trunk_id=d.trunk_group_id, jurisdiction=d.jurisdiction,
        ani_used=d.ani_used, ani_source=d.ani_source, dnis=d.dnis,
        billing_increments=d.billing_increments, rate_per_minute=d.rate_per_minute,
        currency=d.currency, direction=d.direction,
        per_call_charge=d.per_call_charge,
        rating_rule=d.rating_rule, basis=d.basis, carrier_category=d.carrier_category,
        ocn=d.ocn, lata=d.lata, rate_center=d.rate_center,
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
                  customer_id=body.customer_id, direction=body.direction, at=body.at,
                  oli=body.oli, forwarded_from=body.forwarded_from),
    )  # fmt: skip


def _json(payload: dict) -> Response:
    # The response models document the shape (OpenAPI); the payload is serialised here
    # directly because FastAPI's validate-then-encode pass costs more than the decision
    # itself. Decimals go out as strings, as pydantic writes them: money keeps its digits.
    return Response(json.dumps(payload, separators=(",", ":"), default=str),
                    media_type="application/json")  # fmt: skip


def _body(model: type[BaseModel]) -> dict:
    """The OpenAPI request body of a route that parses its own body (see _parse)."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}  # fmt: skip


async def _parse(request: Request, model: type[RateIn]) -> RateIn:
    # pydantic straight from the bytes: FastAPI's own body machinery (dependency solving,
    # JSON decode, then validation) costs several times the decision it feeds.
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            # No echo of the input: it may be bytes that are not text (not JSON-encodable).
            [{**e, "loc": ("body", *e["loc"])}
             for e in exc.errors(include_url=False, include_input=False)]
        ) from None


@router.post("/rate", response_model=RateOut, openapi_extra=_body(RateIn))
async def rate(request: Request) -> Response:
    return _json(_out(_decide(request, await _parse(request, RateIn))))


@router.post("/quote", response_model=QuoteOut, openapi_extra=_body(QuoteIn))
async def quote(request: Request) -> Response:
    body = await _parse(request, QuoteIn)
    assert isinstance(body, QuoteIn)
    d = _decide(request, body)
    ms = int(body.duration_seconds * 1000)
    billed, amount = d.quote(ms) if d.action == "forward" else (0, Decimal("0.00000"))
    return _json({**_out(d), "duration_seconds": body.duration_seconds, "billed_seconds": billed,
                  "amount": amount})  # fmt: skip
