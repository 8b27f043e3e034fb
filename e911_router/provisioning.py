"""The E911 parts of `sipcc provision apply`: PSAPs, their areas, the national call center,
registered addresses and on-site notification webhooks (services/provision.py calls in).

Same contract as the rest of the file: validated before anything is written, applied in the
caller's transaction, rows touched only when a value differs.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from e911_router.address import Address, AddressError, normalize

SipUri = Annotated[str, StringConstraints(pattern=r"^sips?:[^\s]+$")]
Code5 = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
PsapId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddressIn(_Strict):
    """A registered address (E6): structured fields or one `line`, normalised on load.
    `move_pending: true` marks a service moved without the move order processed (E5)."""

    line: str | None = None
    street: str | None = None
    unit: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    move_pending: bool = False
    _address: Address | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _dispatchable(self) -> AddressIn:
        if self.line is not None and any((self.street, self.unit, self.city, self.state, self.zip)):
            raise ValueError("give either 'line' or the fields street/unit/city/state/zip")
        try:
            self._address = normalize(self.street, self.unit, self.city, self.state, self.zip,
                                      line=self.line)  # fmt: skip
        except AddressError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def address(self) -> Address:
        assert self._address is not None
        return self._address


class AreasIn(_Strict):
    zips: list[Code5] = []
    counties: list[Code5] = []  # county FIPS codes, e.g. 12103 (Pinellas, FL)


class PsapIn(_Strict):
    id: PsapId
    name: str
    capability: Literal["e911", "basic"]
    route: SipUri | None = None
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    county: str | None = None
    city: str | None = None
    serves: AreasIn = AreasIn()


class E911In(_Strict):
    national_call_center: SipUri | None = None
    psaps: list[PsapIn] = []

    @model_validator(mode="after")
    def _one_psap_per_area(self) -> E911In:
        seen: dict[tuple[str, str], str] = {}
        for p in self.psaps:
            for kind, codes in (("zip", p.serves.zips), ("county", p.serves.counties)):
                for code in codes:
                    other = seen.setdefault((kind, code), p.id)
                    if other != p.id:
                        raise ValueError(f"{kind} {code} is served by both {other!r} and {p.id!r}")
        return self


Webhook = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$"), Field(max_length=2000)]

_UPSERT_PSAP = """
INSERT INTO psaps (id, name, capability, route_uri, state, county, city)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, capability = EXCLUDED.capability,
    route_uri = EXCLUDED.route_uri, state = EXCLUDED.state, county = EXCLUDED.county,
    city = EXCLUDED.city, updated_at = now()
WHERE (psaps.name, psaps.capability, psaps.route_uri, psaps.state, psaps.county, psaps.city)
   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.capability, EXCLUDED.route_uri, EXCLUDED.state,
       EXCLUDED.county, EXCLUDED.city)
"""
_DELETE_AREAS = """
DELETE FROM psap_areas WHERE psap_id = $1
   AND NOT ((kind = 'zip' AND code = ANY($2::text[])) OR (kind = 'county' AND code = ANY($3::text[])))
"""
_UPSERT_AREA = """
INSERT INTO psap_areas (kind, code, psap_id) VALUES ($1, $2, $3)
ON CONFLICT (kind, code) DO UPDATE SET psap_id = EXCLUDED.psap_id
WHERE psap_areas.psap_id IS DISTINCT FROM EXCLUDED.psap_id
"""
_UPSERT_SETTINGS = """
INSERT INTO e911_settings (one, national_call_center_uri) VALUES (true, $1)
ON CONFLICT (one) DO UPDATE SET national_call_center_uri = EXCLUDED.national_call_center_uri,
    updated_at = now()
WHERE e911_settings.national_call_center_uri IS DISTINCT FROM EXCLUDED.national_call_center_uri
"""
UPSERT_ADDRESS = """
INSERT INTO registered_addresses (tn, street, unit, city, state, zip, parts, county_fips,
                                  move_pending, confirmed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, CASE WHEN $9 THEN NULL ELSE now() END)
ON CONFLICT (tn) DO UPDATE SET street = EXCLUDED.street, unit = EXCLUDED.unit,
    city = EXCLUDED.city, state = EXCLUDED.state, zip = EXCLUDED.zip, parts = EXCLUDED.parts,
    county_fips = EXCLUDED.county_fips, move_pending = EXCLUDED.move_pending,
    confirmed_at = CASE WHEN EXCLUDED.move_pending THEN NULL
                        ELSE coalesce(registered_addresses.confirmed_at, now()) END,
    updated_at = now()
WHERE (registered_addresses.street, registered_addresses.unit, registered_addresses.city,
       registered_addresses.state, registered_addresses.zip, registered_addresses.parts,
       registered_addresses.county_fips, registered_addresses.move_pending)
   IS DISTINCT FROM (EXCLUDED.street, EXCLUDED.unit, EXCLUDED.city, EXCLUDED.state,
       EXCLUDED.zip, EXCLUDED.parts, EXCLUDED.county_fips, EXCLUDED.move_pending)
"""
_SET_WEBHOOK = """
UPDATE customers SET e911_webhook_url = $2, updated_at = now()
WHERE id = $1 AND e911_webhook_url IS DISTINCT FROM $2
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def address_args(tn: str, a: Address, move_pending: bool) -> tuple:
    return (tn, a.street, a.unit_line, a.city, a.state, a.zip,
            json.dumps(a.to_dict(), sort_keys=True), a.county_fips, move_pending)  # fmt: skip


async def store_address(conn: asyncpg.Connection, tn: str, a: Address, move_pending: bool) -> int:
    return _count(await conn.execute(UPSERT_ADDRESS, *address_args(tn, a, move_pending)))


async def apply_psaps(conn: asyncpg.Connection, spec: E911In) -> dict[str, int]:
    """Write the `e911` section."""
    changed = {"psaps": 0, "psap_areas": 0, "e911_settings": 0}
    if spec.national_call_center is not None:
        changed["e911_settings"] += _count(await conn.execute(_UPSERT_SETTINGS, spec.national_call_center))
    for p in spec.psaps:
        changed["psaps"] += _count(await conn.execute(
            _UPSERT_PSAP, p.id, p.name, p.capability, p.route, p.state, p.county, p.city))  # fmt: skip
        # A PSAP's areas are part of its entry: the file's list is the whole list.
        changed["psap_areas"] += _count(
            await conn.execute(_DELETE_AREAS, p.id, p.serves.zips, p.serves.counties)
        )
        for kind, codes in (("zip", p.serves.zips), ("county", p.serves.counties)):
            for code in codes:
                changed["psap_areas"] += _count(await conn.execute(_UPSERT_AREA, kind, code, p.id))
    return changed


async def set_webhook(conn: asyncpg.Connection, customer_id: str, url: str | None) -> int:
    return _count(await conn.execute(_SET_WEBHOOK, customer_id, url))
