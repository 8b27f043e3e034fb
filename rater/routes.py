"""HTTP routes of the rater: the same decide() the edge runs in-process (DESIGN.md).

`POST /v1/rate` and `/v1/quote` are FastAPI routes, and every answer they give is theirs.
`RatingLane`, a plain ASGI middleware in front, answers the common case itself — a key
this process already verified, a body that validates, a known trunk — with the same
bytes, and hands everything else to those routes (bench/rater_bench.py: FastAPI's layers
cost ~200 µs of CPU per request, six times the decision they carry).
"""

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
    return _decision(request.app.state.node.inventory, body)


def _decision(inv, body: RateIn) -> Decision:
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


def _encode(payload: dict) -> bytes:
    # The response models document the shape (OpenAPI); the payload is serialised here
    # directly because FastAPI's validate-then-encode pass costs more than the decision
    # itself. Decimals go out as strings, as pydantic writes them: money keeps its digits.
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _answer(inv, body: RateIn) -> bytes:
    """The 200 body of /v1/rate (a RateIn) or /v1/quote (a QuoteIn); HTTPException 404
    for a trunk or customer that does not exist."""
    d = _decision(inv, body)
    if not isinstance(body, QuoteIn):
        return _encode(_out(d))
    ms = int(body.duration_seconds * 1000)
    billed, amount = d.quote(ms) if d.action == "forward" else (0, Decimal("0.00000"))
    return _encode({**_out(d), "duration_seconds": body.duration_seconds, "billed_seconds": billed,
                    "amount": amount})  # fmt: skip


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
    body = await _parse(request, RateIn)
    return Response(_answer(request.app.state.node.inventory, body), media_type="application/json")


@router.post("/quote", response_model=QuoteOut, openapi_extra=_body(QuoteIn))
async def quote(request: Request) -> Response:
    body = await _parse(request, QuoteIn)
    return Response(_answer(request.app.state.node.inventory, body), media_type="application/json")


class _Route:
    """What RedMiddleware reads of a matched route: its path (the metrics' label)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_LANE = {"/v1/rate": (RateIn, _Route("/v1/rate")), "/v1/quote": (QuoteIn, _Route("/v1/quote"))}
_LANE_MAX_BODY = 64 * 1024  # a rating request is a few hundred bytes; more goes the long way
_JSON_HEADERS = [(b"content-type", b"application/json")]


class RatingLane:
    """Answers POST /v1/rate and /v1/quote when nothing can go wrong, else passes the
    request on, body and all, to the FastAPI routes above. Nothing can go wrong means: the
    key is one this process verified within its cache time (ApiAuth.cached), has `scope`
    and is under its rate; the body validates; the trunk or customer exists. Everything
    else — every refusal and error — is answered by the routes, in their one way."""

    def __init__(self, app, scope: str) -> None:
        self.app = app
        self.scope = scope

    async def __call__(self, scope, receive, send) -> None:
        lane = _LANE.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, complete = await _read(receive)
        answer = self._answer(scope, lane[0], chunks) if complete else None
        if answer is None:
            await self.app(scope, _replay(chunks, complete, receive), send)
            return
        scope["route"] = lane[1]
        await send({"type": "http.response.start", "status": 200, "headers": [
            *_JSON_HEADERS, (b"content-length", b"%d" % len(answer))]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    def _answer(self, scope, model: type[RateIn], chunks: list) -> bytes | None:
        app = scope["app"]
        auth = app.state.api_auth
        token = _bearer(scope["headers"])
        key = auth.cached(token) if token else None
        if key is None or not key.allows(self.scope, "POST"):
            return None
        try:
            answer = _answer(app.state.node.inventory, model.model_validate_json(b"".join(chunks)))
        except (ValidationError, HTTPException):
            return None
        # Taken last: a request the routes answer instead takes its share there, once.
        return answer if auth.within_rate(key) else None


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _read(receive) -> tuple[list, bool]:
    """The request body's chunks, and whether that is all of it (False past the lane's
    size, or when the client went away)."""
    chunks: list = []  # bytes, and a disconnect message as it came
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            chunks.append(message)
            return chunks, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True
        if size > _LANE_MAX_BODY:
            return chunks, False


def _replay(chunks: list, complete: bool, receive):
    """A receive() that gives the app what the lane already read, then the rest."""
    pending = list(chunks)

    async def replay():
        if pending:
            item = pending.pop(0)
            if isinstance(item, dict):
                return item
            return {"type": "http.request", "body": item, "more_body": bool(pending) or not complete}
        return await receive()

    return replay
