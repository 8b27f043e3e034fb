"""`sipcc psaps import FILE.csv`: PSAPs from a CSV shaped like the FCC PSAP registry.

Columns (header names as the FCC file has them, case and spacing ignored): `PSAP ID`,
`PSAP Name`, `State`, `County`, `City`, `Type` (E911 / Enhanced / Phase I / Phase II →
e911; Basic → basic). Optional: `County FIPS` (else looked up from county and state),
`ZIPs` (space- or semicolon-separated, served besides the county), `Route` (the PSAP's SIP
URI; left as it was when absent, so a registry refresh keeps the routes operators set).

The whole file is checked first; one bad row refuses the file, naming its line and column.
A PSAP whose type turns E911 upgrades its callers at once (E3): the level is read at call
time from the PSAP.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from e911_router.address import county_fips

_ALIASES = {
    "psapid": "id", "fccid": "id", "psapname": "name", "name": "name", "state": "state",
    "county": "county", "city": "city", "type": "type", "psaptype": "type",
    "typeofservice": "type", "countyfips": "fips", "fips": "fips", "zips": "zips",
    "zip": "zips", "zipcodes": "zips", "route": "route", "routeuri": "route", "sipuri": "route",
}  # fmt: skip
_REQUIRED = ("id", "name", "state", "county", "type")


class PsapCsvError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PsapRow:
    id: str
    name: str
    state: str
    county: str
    city: str | None
    capability: str
    fips: str
    zips: tuple[str, ...]
    route: str | None


def capability_of(kind: str) -> str | None:
    k = kind.strip().lower()
    if "basic" in k:
        return "basic"
    if any(w in k for w in ("e911", "enhanced", "phase", "ng911", "ng9-1-1", "e9-1-1")):
        return "e911"
    return None


def parse(text: str, source: str = "<csv>") -> list[PsapRow]:
    sample = text[:4096]
    dialect = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise PsapCsvError(f"{source}: empty file") from None
    cols = {}
    for i, name in enumerate(header):
        key = _ALIASES.get(re.sub(r"[^a-z0-9]", "", name.lower()))
        if key and key not in cols:
            cols[key] = i
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise PsapCsvError(f"{source}: header lacks column(s) {', '.join(missing)} "
                           f"(have: {', '.join(header)})")  # fmt: skip
    rows: list[PsapRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if not any(v.strip() for v in raw):
            continue

        def get(key: str, raw=raw) -> str:
            i = cols.get(key)
            return raw[i].strip() if i is not None and i < len(raw) else ""

        at = f"{source}:{line}"
        pid, state, county = get("id"), get("state").upper(), get("county")
        problems = []
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", pid):
            problems.append(f"PSAP ID {pid!r} is not an id")
        if not re.fullmatch(r"[A-Z]{2}", state):
            problems.append(f"State {state!r} is not a two-letter state")
        cap = capability_of(get("type"))
        if cap is None:
            problems.append(f"Type {get('type')!r} is neither E911 nor basic")
        fips = get("fips")
        if fips and not re.fullmatch(r"[0-9]{5}", fips):
            problems.append(f"County FIPS {fips!r} is not 5 digits")
        if not fips and county and not problems:
            fips = county_fips(county, state) or ""
            if not fips:
                problems.append(f"County {county!r} is not a county of {state}")
        zips = tuple(z for z in re.split(r"[\s;,]+", get("zips")) if z)
        bad = [z for z in zips if not re.fullmatch(r"[0-9]{5}", z)]
        if bad:
            problems.append(f"ZIPs {', '.join(bad)} are not 5-digit ZIP codes")
        route = get("route") or None
        if route and not re.fullmatch(r"sips?:\S+", route):
            problems.append(f"Route {route!r} is not a sip: or sips: URI")
        if pid in seen:
            problems.append(f"PSAP ID {pid!r} repeats line {seen[pid]}")
        seen.setdefault(pid, line)
        if problems:
            errors.extend(f"{at}: {p}" for p in problems)
            continue
        rows.append(PsapRow(pid, get("name") or pid, state, county, get("city") or None,
                            cap or "basic", fips, zips, route))  # fmt: skip
    if errors:
        raise PsapCsvError("\n".join(errors))
    return rows


_UPSERT = """
INSERT INTO psaps (id, name, capability, route_uri, state, county, city)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, capability = EXCLUDED.capability,
    route_uri = coalesce(EXCLUDED.route_uri, psaps.route_uri), state = EXCLUDED.state,
    county = EXCLUDED.county, city = EXCLUDED.city, updated_at = now()
WHERE (psaps.name, psaps.capability, psaps.route_uri, psaps.state, psaps.county, psaps.city)
   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.capability,
       coalesce(EXCLUDED.route_uri, psaps.route_uri), EXCLUDED.state, EXCLUDED.county,
       EXCLUDED.city)
"""
_AREA = """
INSERT INTO psap_areas (kind, code, psap_id) VALUES ($1, $2, $3)
ON CONFLICT (kind, code) DO UPDATE SET psap_id = EXCLUDED.psap_id
WHERE psap_areas.psap_id IS DISTINCT FROM EXCLUDED.psap_id
"""


async def import_rows(conn: asyncpg.Connection, rows: list[PsapRow]) -> dict[str, int]:
    """Upsert in one transaction; returns rows changed per table."""
    changed = {"psaps": 0, "psap_areas": 0}
    async with conn.transaction():
        for r in rows:
            status = await conn.execute(_UPSERT, r.id, r.name, r.capability, r.route, r.state,
                                        r.county, r.city)  # fmt: skip
            changed["psaps"] += int(status.rsplit(" ", 1)[-1])
            areas = [("county", r.fips)] + [("zip", z) for z in r.zips]
            for kind, code in areas:
                status = await conn.execute(_AREA, kind, code, r.id)
                changed["psap_areas"] += int(status.rsplit(" ", 1)[-1])
        if any(changed.values()):
            await conn.execute("NOTIFY sipcc_inventory")
    return changed


def parse_file(path: str | Path) -> list[PsapRow]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PsapCsvError(f"{path}: cannot read: {exc}") from None
    return parse(text, str(path))
