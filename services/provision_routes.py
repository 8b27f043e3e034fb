"""Provisioning over HTTP (/v1): customers, trunk groups, telephone numbers, rate plans and
the audit trail. docs/PROVISIONING.md is the guide.

Every write goes through the same validation models and the same write path as
`sipcc provision apply` (services/provision.py): the route reads the stored entry in the
file's shape, merges the request into it, validates the whole entry and applies it as a
one-entry file. So an API change and a YAML change can never disagree about what is valid.

Optimistic concurrency: every entry has an ETag (a hash of its representation). An update
(PATCH) must carry `If-Match` with the ETag it was based on — 428 without it, 412 when the
entry changed since — so two clerks cannot overwrite each other. The entry's row is locked
while compared and written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rater.numbers import normalize
from services import metrics, number_events
from services.billing import routes as billing_routes
from services.provision import (
    CustomerIn,
    NumbersIn,
    ProvisionConflict,
    ProvisionError,
    ProvisionFile,
    RatePlanIn,
    Slug,
    TrunkGroupIn,
    apply,
    tariff_entry,
)

# Mounted by services/api.py with the `provisioning` scope (services/auth.py) on every route.
router = APIRouter(prefix="/v1", tags=["provisioning"])
Patch = Annotated[dict[str, Any], Body(description="fields to change (JSON merge)")]
IfMatch = Annotated[str | None, Header(description="the ETag the change is based on")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _pool(request: Request) -> asyncpg.Pool:
    pool = request.app.state.node.pool
    if pool is None:
        raise HTTPException(503, "provisioning needs the database, which this node has not connected")
    return pool


def actor(request: Request) -> str:
    """Who the audit trail names: the API key's name (services/auth.py sets the key)."""
    key = getattr(request.state, "api_key", None)
    return f"api:{key.name}" if key is not None else "api"


def etag(body: dict) -> str:
    raw = json.dumps(body, sort_keys=True, default=str).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def _check_if_match(if_match: str | None, current: dict) -> None:
    if if_match is None:
        raise HTTPException(428, "If-Match: required on update; send the ETag of the entry you read")
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" not in tags and etag(current) not in tags:
        raise HTTPException(412, "If-Match: the entry changed since you read it; read it again")


def _json(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if not key:
            raise ValueError(cursor)
        return key.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise HTTPException(400, "cursor: not a cursor this API returned") from None


async def _page(pool, sql: str, key: str, args: list, where: list[str], cursor: str | None,
                limit: int, shape) -> dict:  # fmt: skip
    """A keyset page ordered by `key`; `next_cursor` continues after the last item."""
    after = _after(cursor)
    if after is not None:
        args.append(after)
        where.append(f"{key} > ${len(args)}")
    args.append(limit + 1)
    rows = await pool.fetch(
        sql + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {key} LIMIT ${len(args)}", *args)  # fmt: skip
    items = [shape(r) for r in rows[:limit]]
    last = rows[limit - 1][key.rsplit(".", 1)[-1]] if len(rows) > limit else None
    return {"items": items, "next_cursor": _cursor(last) if last is not None else None}


def _filter(where: list[str], args: list, column: str, value) -> None:
    if value is not None:
        args.append(value)
        where.append(f"{column} = ${len(args)}")


def _invalid(exc: ValidationError, prefix: str = "") -> HTTPException:
    errors = [{"field": prefix + ".".join(str(p) for p in e["loc"]) if e["loc"] else prefix.rstrip(".") or "(body)",
               "message": e["msg"]} for e in exc.errors()]  # fmt: skip
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return HTTPException(422, {"detail": detail, "errors": errors})


async def _write(conn, spec: ProvisionFile, request: Request, resource: str, action: str) -> None:
    """The one write path, shared with `sipcc provision apply`."""
    realm = getattr(getattr(request.app.state.node, "settings", None), "sip_realm", "sipcc")
    try:
        await apply(conn, spec, realm, actor=actor(request))
    except ProvisionConflict as exc:
        raise HTTPException(409, _strip(str(exc))) from None
    except ProvisionError as exc:
        raise HTTPException(422, _strip(str(exc))) from None
    metrics.provisioning_changes_total.labels(resource=resource, action=action).inc()


def _strip(message: str) -> str:
    """'customers[0] (id=acme).trunk_groups[0] (id=t).trunks: …' → 'trunk_groups[0] (id=t)
    .trunks: …': the API's body is one entry, so its fields are named from there."""
    out = []
    for line in message.splitlines():
        head, sep, rest = line.partition(").")
        out.append(rest if sep and head.startswith("customers[0] (id=") else line)
    return "\n".join(out)


def _validate(model, body: dict, prefix: str = ""):
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc, prefix) from None


def _merge(current: dict, patch: dict, read_only: frozenset[str]) -> dict:
    for k in patch:
        if k in read_only and patch[k] != current.get(k):
            raise HTTPException(422, f"{k}: cannot be changed")
    return {k: v for k, v in {**current, **patch}.items() if k not in read_only}


def _respond(response: Response, body: dict) -> dict:
    response.headers["ETag"] = etag(body)
    return body


# --- customers -----------------------------------------------------------------------------

_CUSTOMER_SQL = """
SELECT c.id, c.name, c.status, c.status_reason, c.rate_plan_id, c.credit_limit,
       c.high_cost_allowed, c.term_start, c.initial_term_months, c.e911_webhook_url,
       c.max_concurrent_calls, c.max_calls_per_second, cc.credit_limit AS credit_level
FROM customers c JOIN customer_credit cc ON cc.customer_id = c.id"""
_CUSTOMER_READ_ONLY = frozenset({"id", "credit_level"})


def customer_json(r) -> dict:
    return {
        "id": r["id"], "name": r["name"], "status": r["status"],
        "status_reason": r["status_reason"], "rate_plan": r["rate_plan_id"],
        "credit_limit": _json(r["credit_limit"]),
        # B10 → A6: billing's limit plus deposit when billing set one (/v1/billing/accounts).
        "credit_level": _json(r["credit_level"]),
        "high_cost_allowed": list(r["high_cost_allowed"]), "term_start": _json(r["term_start"]),
        "initial_term_months": r["initial_term_months"], "e911_webhook": r["e911_webhook_url"],
        "max_concurrent_calls": r["max_concurrent_calls"],
        "max_calls_per_second": r["max_calls_per_second"],
    }  # fmt: skip


async def _customer(conn, customer_id: str, lock: bool = False) -> dict:
    if lock:
        await conn.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", customer_id)
    r = await conn.fetchrow(_CUSTOMER_SQL + " WHERE c.id = $1", customer_id)
    if r is None:
        raise HTTPException(404, f"no customer {customer_id!r}")
    return customer_json(r)


def _reason_given(cust: CustomerIn) -> None:
    # A clerk suspending a customer says why (the file, a declaration, may leave it out).
    if cust.status == "suspended" and not (cust.status_reason or "").strip():
        raise HTTPException(422, "status_reason: a suspension needs a reason (rule A9)")


def _customer_in(current: dict, **changes) -> CustomerIn:
    """The stored customer as a file entry (to write one of its parts through apply)."""
    body = {k: v for k, v in current.items() if k not in _CUSTOMER_READ_ONLY | {"e911_webhook"}}
    return _validate(CustomerIn, {"id": current["id"], **body, **changes})


@router.get("/customers")
async def list_customers(request: Request, status: Literal["active", "suspended", "cancelled"] | None = None,
                         rate_plan: str | None = None, limit: Limit = 100,
                         cursor: str | None = None) -> dict:  # fmt: skip
    where: list[str] = []
    args: list = []
    _filter(where, args, "c.status", status)
    _filter(where, args, "c.rate_plan_id", rate_plan)
    return await _page(_pool(request), _CUSTOMER_SQL, "c.id", args, where, cursor, limit, customer_json)


@router.post("/customers", status_code=201)
async def create_customer(request: Request, response: Response, body: Annotated[dict, Body()]) -> dict:
    """A customer, optionally with its trunk groups and numbers (the file's entry shape)."""
    cust = _validate(CustomerIn, body)
    _reason_given(cust)
    async with _pool(request).acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM customers WHERE id = $1", cust.id):
            raise HTTPException(409, f"id: customer {cust.id!r} exists; update it with PATCH")
        await _write(conn, ProvisionFile(customers=[cust]), request, "customer", "create")
        return _respond(response, await _customer(conn, cust.id))


@router.get("/customers/{customer_id}")
async def get_customer(request: Request, response: Response, customer_id: str) -> dict:
    async with _pool(request).acquire() as conn:
        return _respond(response, await _customer(conn, customer_id))


@router.patch("/customers/{customer_id}")
async def update_customer(request: Request, response: Response, customer_id: str, patch: Patch,
                          if_match: IfMatch = None) -> dict:  # fmt: skip
    """Status (active, suspended with `status_reason`, cancelled), rate plan assignment,
    credit limit, A5 unblocks, term, on-site 911 webhook. Effective on every node within a
    second: a suspended customer's next call is refused (911 still goes through, E7)."""
    async with _pool(request).acquire() as conn, conn.transaction():
        current = await _customer(conn, customer_id, lock=True)
        _check_if_match(if_match, current)
        merged = _merge(current, patch, _CUSTOMER_READ_ONLY)
        if merged.get("status") != "suspended" and "status_reason" not in patch:
            merged["status_reason"] = None  # a reason belongs to the suspension it explains
        cust = _validate(CustomerIn, {"id": customer_id, **merged})
        _reason_given(cust)
        await _write(conn, ProvisionFile(customers=[cust]), request, "customer", "update")
        return _respond(response, await _customer(conn, customer_id))


# --- trunk groups --------------------------------------------------------------------------

_TG_SQL = """SELECT id, customer_id, trunks, source_ips::text[] AS source_ips, digest_username,
                    carrier_id, ani_precedence FROM trunk_groups"""
_TG_READ_ONLY = frozenset({"id", "customer_id"})


def trunk_group_json(r) -> dict:
    return {
        "id": r["id"], "customer_id": r["customer_id"], "trunks": r["trunks"],
        "source_ips": list(r["source_ips"]),
        "digest": {"username": r["digest_username"]} if r["digest_username"] else None,
        "carrier": r["carrier_id"], "ani_precedence": list(r["ani_precedence"]),
    }  # fmt: skip


async def _trunk_group(conn, tg_id: str, lock: bool = False) -> dict:
    r = await conn.fetchrow(_TG_SQL + " WHERE id = $1" + (" FOR UPDATE" if lock else ""), tg_id)
    if r is None:
        raise HTTPException(404, f"no trunk group {tg_id!r}")
    return trunk_group_json(r)


class TrunkGroupCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    customer_id: Slug


async def _write_trunk_group(conn, request: Request, customer_id: str, body: dict, action: str) -> None:
    tg = _validate(TrunkGroupIn, body)
    cust = _customer_in(await _customer(conn, customer_id), trunk_groups=[tg])
    await _write(conn, ProvisionFile(customers=[cust]), request, "trunk_group", action)


@router.get("/trunk-groups")
async def list_trunk_groups(request: Request, customer_id: str | None = None,
                            carrier: str | None = None, limit: Limit = 100,
                            cursor: str | None = None) -> dict:  # fmt: skip
    where: list[str] = []
    args: list = []
    _filter(where, args, "customer_id", customer_id)
    _filter(where, args, "carrier_id", carrier)
    return await _page(_pool(request), _TG_SQL, "id", args, where, cursor, limit, trunk_group_json)


@router.post("/trunk-groups", status_code=201)
async def create_trunk_group(request: Request, response: Response, body: Annotated[dict, Body()]) -> dict:
    """`trunks` concurrent calls (A1), `source_ips` and/or `digest` credentials (A8; only
    HA1 hashes are stored), `ani_precedence` (A4), `carrier`."""
    owner = _validate(TrunkGroupCreate, body).customer_id
    tg_body = {k: v for k, v in body.items() if k != "customer_id"}
    async with _pool(request).acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM trunk_groups WHERE id = $1", tg_body.get("id")):
            raise HTTPException(409, f"id: trunk group {tg_body['id']!r} exists; update it with PATCH")
        await _write_trunk_group(conn, request, owner, tg_body, "create")
        return _respond(response, await _trunk_group(conn, tg_body["id"]))


@router.get("/trunk-groups/{tg_id}")
async def get_trunk_group(request: Request, response: Response, tg_id: str) -> dict:
    async with _pool(request).acquire() as conn:
        return _respond(response, await _trunk_group(conn, tg_id))


@router.patch("/trunk-groups/{tg_id}")
async def update_trunk_group(request: Request, response: Response, tg_id: str, patch: Patch,
                             if_match: IfMatch = None) -> dict:  # fmt: skip
    """A lowered `trunks` lets the calls up finish and admits no new one until under it."""
    async with _pool(request).acquire() as conn, conn.transaction():
        current = await _trunk_group(conn, tg_id, lock=True)
        _check_if_match(if_match, current)
        merged = _merge(current, patch, _TG_READ_ONLY)
        await _write_trunk_group(conn, request, current["customer_id"], {"id": tg_id, **merged}, "update")
        return _respond(response, await _trunk_group(conn, tg_id))


# --- telephone numbers ---------------------------------------------------------------------

_NUMBER_SQL = """SELECT tn, customer_id, trunk_group_id, origin, state, owned_from, owned_until
                 FROM numbers"""


def number_json(r) -> dict:
    return {
        "tn": r["tn"], "customer_id": r["customer_id"], "trunk_group": r["trunk_group_id"],
        "origin": r["origin"], "state": r["state"], "owned_from": _json(r["owned_from"]),
        "owned_until": _json(r["owned_until"]),
    }  # fmt: skip


def _tn(raw: str) -> str:
    tn = normalize(raw)
    if tn is None:
        raise HTTPException(422, f"tn: {raw!r} is not a valid telephone number")
    return tn


async def _number(conn, tn: str, lock: bool = False) -> dict:
    r = await conn.fetchrow(_NUMBER_SQL + " WHERE tn = $1" + (" FOR UPDATE" if lock else ""), tn)
    if r is None:
        raise HTTPException(404, f"{tn} is not a number in the inventory")
    return number_json(r)


class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    customer_id: Slug


@router.get("/numbers")
async def list_numbers(request: Request, customer_id: str | None = None, trunk_group: str | None = None,
                       state: Literal["active", "ported_out", "disconnected", "reinstated"] | None = None,
                       origin: Literal["assigned", "ported_in"] | None = None, limit: Limit = 100,
                       cursor: str | None = None) -> dict:  # fmt: skip
    where: list[str] = []
    args: list = []
    _filter(where, args, "customer_id", customer_id)
    _filter(where, args, "trunk_group_id", trunk_group)
    _filter(where, args, "state", state)
    _filter(where, args, "origin", origin)
    return await _page(_pool(request), _NUMBER_SQL, "tn", args, where, cursor, limit, number_json)


@router.post("/numbers", status_code=201)
async def assign_numbers(request: Request, body: Annotated[dict, Body()]) -> dict:
    """Assign a TN (`tn`) or a block (`range`) to a customer, or record a port-in
    (`origin: ported_in`, `foc_at`: owned from the FOC on; billed per B5). A TN another
    customer holds is refused (409, rule A3); a released one can be assigned again."""
    owner = _validate(NumberCreate, body).customer_id
    block = _validate(NumbersIn, {k: v for k, v in body.items() if k != "customer_id"})
    try:
        tns = block.expand()
    except ValueError as exc:
        raise HTTPException(422, f"{'tn' if block.tn else 'range'}: {exc}") from None
    async with _pool(request).acquire() as conn, conn.transaction():
        held = await conn.fetch(
            "SELECT tn FROM numbers WHERE tn = ANY($1) AND customer_id = $2 "
            "AND (owned_until IS NULL OR owned_until > now())", tns, owner)  # fmt: skip
        if held:
            raise HTTPException(409, f"{held[0]['tn']} is already {owner}'s; update it with PATCH")
        cust = _customer_in(await _customer(conn, owner), numbers=[block])
        await _write(conn, ProvisionFile(customers=[cust]), request, "number",
                     "port_in" if block.origin == "ported_in" else "assign")  # fmt: skip
        rows = await conn.fetch(_NUMBER_SQL + " WHERE tn = ANY($1) ORDER BY tn", tns)
    return {"items": [number_json(r) for r in rows]}


@router.get("/numbers/{tn}")
async def get_number(request: Request, response: Response, tn: str) -> dict:
    async with _pool(request).acquire() as conn:
        return _respond(response, await _number(conn, _tn(tn)))


@router.patch("/numbers/{tn}")
async def update_number(request: Request, response: Response, tn: str, patch: Patch,
                        if_match: IfMatch = None) -> dict:  # fmt: skip
    """The trunk group a TN rings (`trunk_group`); its registered address is
    PUT /v1/e911/addresses/{tn} (E911 router's validation and history)."""
    tn = _tn(tn)
    async with _pool(request).acquire() as conn, conn.transaction():
        current = await _number(conn, tn, lock=True)
        _check_if_match(if_match, current)
        allowed = {"trunk_group"}
        for k in patch:
            if k not in allowed and patch[k] != current.get(k):
                raise HTTPException(422, f"{k}: cannot be changed here (the dated events are "
                                    "POST /v1/numbers/{tn}/port-out|disconnect|reinstate)")  # fmt: skip
        if current["state"] != "active":
            raise HTTPException(409, f"{tn} is {current['state'].replace('_', ' ')}; assign it again first")
        block = _validate(NumbersIn, {"tn": tn, "origin": current["origin"],
                                      "trunk_group": patch.get("trunk_group", current["trunk_group"])})  # fmt: skip
        cust = _customer_in(await _customer(conn, current["customer_id"]), numbers=[block])
        await _write(conn, ProvisionFile(customers=[cust]), request, "number", "update")
        return _respond(response, await _number(conn, tn))


class NumberEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: datetime | None = Field(default=None, description="when it takes effect; default now")
    note: str = Field(default="", max_length=1000)


async def _end(request: Request, response: Response, tn: str, kind: str, body: NumberEventIn,
               if_match: str | None) -> dict:  # fmt: skip
    tn = _tn(tn)
    async with _pool(request).acquire() as conn, conn.transaction():
        current = await _number(conn, tn, lock=True)
        if if_match is not None:
            _check_if_match(if_match, current)
        if body.at is not None and body.at.tzinfo is not None:
            # Billing's rule: nothing is added to a month already invoiced (409).
            await billing_routes._not_invoiced(conn, current["customer_id"], body.at)
        try:
            await number_events.end_ownership(conn, tn, kind, body.at, actor(request), body.note)
        except number_events.UnknownNumber as exc:
            raise HTTPException(404, str(exc)) from None
        except ProvisionConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except ProvisionError as exc:
            raise HTTPException(422, str(exc)) from None
        metrics.provisioning_changes_total.labels(resource="number", action=kind).inc()
        return _respond(response, await _number(conn, tn))


@router.post("/numbers/{tn}/port-out")
async def port_out(request: Request, response: Response, tn: str, body: NumberEventIn,
                   if_match: IfMatch = None) -> dict:  # fmt: skip
    """Ported away: no longer the customer's from `at` (A3, R4); $5 per B5."""
    return await _end(request, response, tn, "port_out", body, if_match)


@router.post("/numbers/{tn}/disconnect")
async def disconnect(request: Request, response: Response, tn: str, body: NumberEventIn,
                     if_match: IfMatch = None) -> dict:  # fmt: skip
    """Disconnected: no longer the customer's from `at` (A3, R4); $5 per B5."""
    return await _end(request, response, tn, "disconnect", body, if_match)


@router.post("/numbers/{tn}/reinstate")
async def reinstate(request: Request, response: Response, tn: str, body: NumberEventIn,
                    if_match: IfMatch = None) -> dict:  # fmt: skip
    """A ported-in number given back to its old carrier: no longer the customer's from `at`;
    $300 within 24 h of the port (B5)."""
    return await _end(request, response, tn, "reinstate", body, if_match)


@router.post("/numbers/{tn}/cancel-port-in")
async def cancel_port_in(request: Request, tn: str, body: NumberEventIn) -> dict:
    """An LNP request withdrawn before its FOC: the TN leaves the inventory; $6 per TN more
    than 48 h before the FOC, $75 within (B5)."""
    tn = _tn(tn)
    if body.at is not None:
        raise HTTPException(422, "at: a cancellation takes effect now")
    async with _pool(request).acquire() as conn:
        try:
            foc = await number_events.cancel_port_in(conn, tn, actor(request), body.note)
        except number_events.UnknownNumber as exc:
            raise HTTPException(404, str(exc)) from None
        except ProvisionConflict as exc:
            raise HTTPException(409, str(exc)) from None
    metrics.provisioning_changes_total.labels(resource="number", action="lnp_cancel").inc()
    return {"tn": tn, "cancelled": True, "foc_at": foc.isoformat()}


# --- rate plans ----------------------------------------------------------------------------

async def _rate_plan(conn, plan_id: str, lock: bool = False) -> dict:
    r = await conn.fetchrow(
        "SELECT * FROM rate_plans WHERE id = $1" + (" FOR UPDATE" if lock else ""), plan_id
    )
    if r is None:
        raise HTTPException(404, f"no rate plan {plan_id!r}")
    versions = await conn.fetch(
        "SELECT effective_from, rates FROM rate_plan_versions WHERE plan_id = $1 ORDER BY 1", plan_id
    )
    return {
        "id": r["id"], "name": r["name"], "currency": r["currency"],
        **{k: str(r[k]) for k in ("interstate_per_minute", "intrastate_per_minute",
                                  "local_per_minute", "alaska_per_minute")},
        **tariff_entry(json.loads(r["tariff"]) if r["tariff"] else {}),
        "versions": [{"effective_from": v["effective_from"].isoformat(),
                      **tariff_entry(json.loads(v["rates"]))} for v in versions],
    }  # fmt: skip


@router.get("/rate-plans")
async def list_rate_plans(request: Request, limit: Limit = 100, cursor: str | None = None) -> dict:
    pool = _pool(request)
    page = await _page(pool, "SELECT id FROM rate_plans", "id", [], [], cursor, limit, lambda r: r["id"])
    async with pool.acquire() as conn:
        page["items"] = [await _rate_plan(conn, i) for i in page["items"]]
    return page


@router.post("/rate-plans", status_code=201)
async def create_rate_plan(request: Request, response: Response, body: Annotated[dict, Body()]) -> dict:
    plan = _validate(RatePlanIn, body)
    async with _pool(request).acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM rate_plans WHERE id = $1", plan.id):
            raise HTTPException(409, f"id: rate plan {plan.id!r} exists; update it with PATCH")
        await _write(conn, ProvisionFile(rate_plans=[plan]), request, "rate_plan", "create")
        return _respond(response, await _rate_plan(conn, plan.id))


@router.get("/rate-plans/{plan_id}")
async def get_rate_plan(request: Request, response: Response, plan_id: str) -> dict:
    async with _pool(request).acquire() as conn:
        return _respond(response, await _rate_plan(conn, plan_id))


@router.patch("/rate-plans/{plan_id}")
async def update_rate_plan(request: Request, response: Response, plan_id: str, patch: Patch,
                           if_match: IfMatch = None) -> dict:  # fmt: skip
    """Prices and dated `versions` (R15: the list given is the whole list). Assigning a
    plan to a customer is PATCH /v1/customers/{id} {"rate_plan": …}."""
    async with _pool(request).acquire() as conn, conn.transaction():
        current = await _rate_plan(conn, plan_id, lock=True)
        _check_if_match(if_match, current)
        plan = _validate(RatePlanIn, {"id": plan_id, **_merge(current, patch, frozenset({"id"}))})
        await _write(conn, ProvisionFile(rate_plans=[plan]), request, "rate_plan", "update")
        return _respond(response, await _rate_plan(conn, plan_id))


# --- audit ---------------------------------------------------------------------------------


def audit_json(r) -> dict:
    return {
        "id": r["id"], "at": r["at"].isoformat(), "actor": r["actor"], "resource": r["resource"],
        "key": r["key"], "action": r["action"],
        "before": json.loads(r["before"]) if r["before"] else None,
        "after": json.loads(r["after"]) if r["after"] else None,
    }  # fmt: skip


@router.get("/provisioning/audit")
async def list_audit(request: Request, resource: str | None = None, key: str | None = None,
                     actor_name: Annotated[str | None, Query(alias="actor")] = None,
                     limit: Limit = 100, cursor: str | None = None) -> dict:  # fmt: skip
    """Every provisioning change, oldest first: who, when, the row before and after."""
    where: list[str] = []
    args: list = []
    _filter(where, args, "resource", resource)
    _filter(where, args, "key", key)
    _filter(where, args, "actor", actor_name)
    after = _after(cursor)
    if after is not None:
        if not (after.isascii() and after.isdigit()):
            raise HTTPException(400, "cursor: not a cursor this API returned")
        args.append(int(after))
        where.append(f"id > ${len(args)}")
    args.append(limit + 1)
    rows = await _pool(request).fetch(
        "SELECT * FROM provisioning_audit" + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY id LIMIT ${len(args)}", *args)  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [audit_json(r) for r in rows],
            "next_cursor": _cursor(str(rows[-1]["id"])) if more else None}  # fmt: skip
