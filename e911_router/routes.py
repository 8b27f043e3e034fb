"""HTTP routes of the E911 router (DESIGN.md: `POST /v1/e911/route`), registered addresses
and PSAPs. The route answer is the same decision the edge takes in-process."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from e911_router.address import Address, AddressError, normalize
from e911_router.provisioning import store_address
from e911_router.routing import E911Route, route_call
from rater.numbers import normalize as e164

router = APIRouter(prefix="/v1/e911", tags=["e911"])


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ani: str | None = Field(default=None, max_length=64)
    trunk_id: str


class AddressBody(BaseModel):
    """A registered address: one `line`, or the fields. `confirmed: true` processes a move
    at once; otherwise a changed address is a move pending confirmation (E5)."""

    model_config = ConfigDict(extra="forbid")
    line: str | None = Field(default=None, max_length=300)
    street: str | None = Field(default=None, max_length=200)
    unit: str | None = Field(default=None, max_length=60)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=30)
    zip: str | None = Field(default=None, max_length=10)
    confirmed: bool = False


def _address_out(a: Address | None) -> dict | None:
    return None if a is None else {**a.to_dict(), "one_line": a.one_line()}


def route_out(r: E911Route) -> dict:
    return {
        "level": r.level, "rule": r.rule, "reason": r.reason, "callback": r.callback,
        "customer_id": r.customer_id, "sends_location": r.sends_location,
        "targets": [{"kind": t.kind, "name": t.name, "uri": t.uri} for t in r.targets],
        "psap": None if r.psap is None else {"id": r.psap.id, "name": r.psap.name,
                                            "capability": r.psap.capability},
        "address": _address_out(r.address),
    }  # fmt: skip


@router.post("/route")
async def route(request: Request, body: RouteIn) -> dict:
    """Where a 911 call from `ani` on `trunk_id` goes (E1-E7), and why."""
    inv = request.app.state.node.inventory
    tg = inv.trunk_groups.get(body.trunk_id)
    if tg is None:
        raise HTTPException(404, f"no trunk {body.trunk_id!r}")
    tn = e164(body.ani) if body.ani else None
    return route_out(route_call(inv, tn, tg))


def _tn(raw: str) -> str:
    tn = e164(raw)
    if tn is None:
        raise HTTPException(422, f"{raw!r} is not a valid telephone number")
    return tn


@router.get("/addresses/{tn}")
async def get_address(request: Request, tn: str) -> dict:
    """A TN's registered address and every earlier version (E6: history kept)."""
    tn = _tn(tn)
    pool = request.app.state.node.pool
    row = await pool.fetchrow(
        "SELECT parts, move_pending, confirmed_at, updated_at FROM registered_addresses WHERE tn = $1", tn
    )
    if row is None:
        raise HTTPException(404, f"no registered address for {tn}")
    history = await pool.fetch(
        """SELECT street, unit, city, state, zip, county_fips, move_pending, recorded_at
           FROM registered_address_history WHERE tn = $1 ORDER BY id""", tn)  # fmt: skip
    parts = json.loads(row["parts"]) if row["parts"] else None
    return {
        "tn": tn, "address": _address_out(Address.from_dict(parts) if parts else None),
        "move_pending": row["move_pending"], "confirmed_at": row["confirmed_at"],
        "updated_at": row["updated_at"], "history": [dict(h) for h in history],
    }  # fmt: skip


@router.put("/addresses/{tn}")
async def put_address(request: Request, tn: str, body: AddressBody) -> dict:
    """Set a TN's registered address. A changed address is a move: E911 non-compliant
    (national call center) until confirmed (E5)."""
    tn = _tn(tn)
    try:
        a = normalize(body.street, body.unit, body.city, body.state, body.zip, line=body.line)
    except AddressError as exc:
        raise HTTPException(422, str(exc)) from None
    pool = request.app.state.node.pool
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM numbers WHERE tn = $1", tn) is None:
            raise HTTPException(404, f"{tn} is not a number in the inventory")
        old = await conn.fetchrow(
            "SELECT parts, move_pending FROM registered_addresses WHERE tn = $1 FOR UPDATE", tn
        )
        if old is not None and old["parts"] and Address.from_dict(json.loads(old["parts"])) == a:
            pending = old["move_pending"] and not body.confirmed
        else:
            pending = old is not None and not body.confirmed
        await store_address(conn, tn, a, pending)
        await conn.execute("NOTIFY sipcc_inventory")
    return {"tn": tn, "address": _address_out(a), "move_pending": pending}


@router.post("/addresses/{tn}/confirm")
async def confirm_move(request: Request, tn: str) -> dict:
    """The move order is processed: 911 routes by the new address again (E5)."""
    tn = _tn(tn)
    pool = request.app.state.node.pool
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            """UPDATE registered_addresses SET move_pending = false, confirmed_at = now(),
                      updated_at = now() WHERE tn = $1 RETURNING tn""", tn)  # fmt: skip
        if done is None:
            raise HTTPException(404, f"no registered address for {tn}")
        await conn.execute("NOTIFY sipcc_inventory")
    return {"tn": tn, "move_pending": False}


@router.get("/psaps")
async def psaps(request: Request) -> list[dict]:
    """PSAPs as the call path sees them, with the areas each serves."""
    data = request.app.state.node.inventory.e911
    areas: dict[str, dict[str, list[str]]] = {}
    for (kind, code), pid in sorted(data.areas.items()):
        areas.setdefault(pid, {"zips": [], "counties": []})["zips" if kind == "zip" else "counties"].append(code)
    return [
        {"id": p.id, "name": p.name, "capability": p.capability, "route": p.route_uri,
         "state": p.state, "county": p.county, "city": p.city,
         "serves": areas.get(p.id, {"zips": [], "counties": []})}
        for p in sorted(data.psaps.values(), key=lambda p: p.id)
    ]  # fmt: skip
