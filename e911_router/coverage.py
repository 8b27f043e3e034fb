"""What 911 routing reads on the hot path: PSAPs, their areas, registered addresses.

Loaded whole from Postgres with the rest of the inventory (services/inventory.py) and
looked up in dicts, so routing a 911 call costs no query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import asyncpg

from e911_router.address import Address
from services.pacing import paced


@dataclass(frozen=True, slots=True)
class Psap:
    id: str
    name: str
    capability: str  # "e911" | "basic"
    route_uri: str | None  # None: no route known → national call center (E4)
    state: str | None = None
    county: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    """A TN's registered address and whether 911 may use it (E5, E6)."""

    tn: str
    address: Address | None  # None: stored before normalisation, not validated
    move_pending: bool = False


@dataclass(slots=True)
class E911Data:
    psaps: dict[str, Psap] = field(default_factory=dict)
    areas: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, code) → psap id
    addresses: dict[str, Registered] = field(default_factory=dict)
    national_call_center: str | None = None
    webhooks: dict[str, str] = field(default_factory=dict)  # customer id → URL

    def psap_for(self, address: Address) -> Psap | None:
        """The PSAP serving an address: by its ZIP, else by its county."""
        pid = self.areas.get(("zip", address.zip[:5]))
        if pid is None and address.county_fips:
            pid = self.areas.get(("county", address.county_fips))
        return self.psaps.get(pid) if pid else None


async def load(conn: asyncpg.Connection | asyncpg.Pool) -> E911Data:
    data = E911Data()
    for r in await conn.fetch(
        "SELECT id, name, capability, route_uri, state, county, city FROM psaps"
    ):
        data.psaps[r["id"]] = Psap(**dict(r))
    for r in await conn.fetch("SELECT kind, code, psap_id FROM psap_areas"):
        data.areas[(r["kind"], r["code"])] = r["psap_id"]
    async for r in paced(await conn.fetch("SELECT tn, parts, move_pending FROM registered_addresses")):
        parts = json.loads(r["parts"]) if r["parts"] else None
        data.addresses[r["tn"]] = Registered(
            r["tn"], Address.from_dict(parts) if parts else None, r["move_pending"]
        )
    data.national_call_center = await conn.fetchval(
        "SELECT national_call_center_uri FROM e911_settings"
    )
    for r in await conn.fetch(
        "SELECT id, e911_webhook_url FROM customers WHERE e911_webhook_url IS NOT NULL"
    ):
        data.webhooks[r["id"]] = r["e911_webhook_url"]
    return data
