"""Registered addresses (rule E6): messy input in, a dispatchable civic address out.

A PSAP dispatches to a door: street number, street, unit, city, state, ZIP. Parsing is
usaddress's (a CRF model trained on real US addresses), normalisation USPS Publication 28
(usaddress-scourgify: STREET → ST, SUITE → STE, directionals), the ZIP's county from the
`zipcodes` data and its FIPS code from `addfips` (PSAPs serve counties or ZIPs). Whatever
cannot be dispatched — a PO box, no house number, no street, a ZIP that is not in the
state — is an AddressError saying what is wrong, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

import usaddress
from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError

_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")
# RFC 5139 has elements of its own for a floor and a room; anything else is a UNIT.
_FLOOR_TYPES = frozenset({"FL", "FLR", "FLOOR"})
_ROOM_TYPES = frozenset({"RM", "ROOM"})
_BOX_LABELS = ("USPSBoxType", "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID")


class AddressError(ValueError):
    """Not a dispatchable address (rule E6); the message says why."""


@dataclass(frozen=True, slots=True)
class Address:
    """A normalised, dispatchable US civic address (upper case, USPS abbreviations)."""

    house_number: str
    street_name: str
    city: str
    state: str
    zip: str
    pre_directional: str | None = None
    street_suffix: str | None = None
    post_directional: str | None = None
    unit: str | None = None  # e.g. "STE 200", "APT 4B"
    floor: str | None = None  # e.g. "3"
    room: str | None = None
    county: str | None = None  # e.g. "Pinellas County"
    county_fips: str | None = None  # 5 digits, state + county

    @property
    def street(self) -> str:
        """The delivery line without the unit: '600 N CLEVELAND ST'."""
        parts = (self.house_number, self.pre_directional, self.street_name, self.street_suffix,
                 self.post_directional)  # fmt: skip
        return " ".join(p for p in parts if p)

    @property
    def unit_line(self) -> str | None:
        parts = [self.unit, f"FL {self.floor}" if self.floor else None,
                 f"RM {self.room}" if self.room else None]  # fmt: skip
        line = " ".join(p for p in parts if p)
        return line or None

    def one_line(self) -> str:
        unit = f" {self.unit_line}" if self.unit_line else ""
        return f"{self.street}{unit}, {self.city}, {self.state} {self.zip}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Address:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


def _repeated(tokens: list[tuple[str, str]]) -> str:
    """The label usaddress found in two places of the text (its error names none)."""
    seen: set[str] = set()
    last = None
    for _token, label in tokens:
        if label != last and label in seen:
            return label
        seen.add(label)
        last = label
    return "parts of the same kind"


def normalize(street: str | None = None, unit: str | None = None, city: str | None = None,
              state: str | None = None, zip: str | None = None, *,
              line: str | None = None) -> Address:  # fmt: skip
    """A dispatchable Address from structured fields or one free-text `line`.

    A missing ZIP is filled in only when the city has exactly one ZIP code; otherwise it
    must be given (the PSAP's area may follow the ZIP)."""
    text = line if line is not None else _join(street, unit, city, state, zip)
    text = " ".join((text or "").split())
    if not text:
        raise AddressError("the address is empty")
    try:
        tags, kind = usaddress.tag(text)
    except usaddress.RepeatedLabelError as exc:
        raise AddressError(f"cannot read {text!r}: it has two {_repeated(exc.parsed_string)}s") from None
    if kind == "PO Box" or any(label in tags for label in _BOX_LABELS):
        raise AddressError(f"{text!r} is a PO box: 911 needs the street address where the "
                           "phone is (rule E6)")  # fmt: skip
    if not tags.get("AddressNumber"):
        raise AddressError(f"{text!r} has no house number: not a dispatchable address (E6)")
    if not tags.get("StreetName"):
        raise AddressError(f"{text!r} has no street name: not a dispatchable address (E6)")
    try:
        record = normalize_address_record(text, strict=False)
    except AddressNormalizationError as exc:
        raise AddressError(f"cannot read {text!r}: {_first_line(exc)}") from None
    line1 = record.get("address_line_1") or ""
    parts, _kind = usaddress.tag(line1)
    st = (record.get("state") or "").upper()
    if not re.fullmatch(r"[A-Z]{2}", st):
        raise AddressError(f"{text!r}: no US state (two letters, e.g. FL)")
    town = (record.get("city") or "").upper()
    if not town:
        raise AddressError(f"{text!r}: no city")
    code = (record.get("postal_code") or "").strip()
    county = None
    if code:
        if not _ZIP.match(code):
            raise AddressError(f"{text!r}: ZIP {code!r} is not 5 digits (or ZIP+4)")
        info = _zip_info(code[:5])
        if info is None:
            raise AddressError(f"{text!r}: ZIP {code[:5]} does not exist")
        if info[0] != st:
            raise AddressError(f"{text!r}: ZIP {code[:5]} is in {info[0]}, not {st}")
        county = info[1]
    else:
        codes = _zips_of(town, st)
        if len(codes) != 1:
            found = f"{town}, {st} has {len(codes)} ZIP codes" if codes else f"no ZIP known for {town}, {st}"
            raise AddressError(f"{text!r}: the ZIP code is missing ({found}); give it")
        code = codes[0]
        county = (_zip_info(code) or (st, None))[1]
    unit_kind, unit_id = _occupancy(record.get("address_line_2"))
    floor = room = unit_value = None
    if unit_kind in _FLOOR_TYPES:
        floor = unit_id
    elif unit_kind in _ROOM_TYPES:
        room = unit_id
    elif unit_kind or unit_id:
        unit_value = " ".join(p for p in (unit_kind, unit_id) if p)
    return Address(
        house_number=parts.get("AddressNumber", tags["AddressNumber"]).upper(),
        street_name=parts.get("StreetName", tags["StreetName"]).upper(),
        pre_directional=_upper(parts.get("StreetNamePreDirectional")),
        street_suffix=_upper(parts.get("StreetNamePostType")),
        post_directional=_upper(parts.get("StreetNamePostDirectional")),
        unit=unit_value, floor=floor, room=room, city=town, state=st, zip=code,
        county=county, county_fips=_fips(county, st) if county else None,
    )  # fmt: skip


def _join(street, unit, city, state, zip) -> str:
    head = " ".join(p.strip() for p in (street, unit) if p and p.strip())
    tail = " ".join(p.strip() for p in (state, zip) if p and p.strip())
    return ", ".join(p for p in (head, (city or "").strip(), tail) if p)


def _occupancy(line2: str | None) -> tuple[str | None, str | None]:
    if not line2:
        return None, None
    words = line2.replace("#", " ").split()
    if len(words) == 1:
        return None, words[0]
    return words[0].upper(), " ".join(words[1:]).upper()


def _upper(v: str | None) -> str | None:
    return v.upper().rstrip(".") if v else None


def _first_line(exc: Exception) -> str:
    return str(exc).split(",", 1)[0].strip().lower()


@lru_cache(maxsize=4096)
def _zip_info(code: str) -> tuple[str, str | None] | None:
    import zipcodes  # its data loads on first use (a quarter second), not at import

    try:
        hits = zipcodes.matching(code)
    except (ValueError, TypeError):
        return None
    if not hits:
        return None
    return hits[0]["state"], hits[0].get("county") or None


@lru_cache(maxsize=1024)
def _zips_of(city: str, state: str) -> tuple[str, ...]:
    import zipcodes

    hits = zipcodes.filter_by(city=city.title(), state=state, active=True)
    return tuple(sorted({h["zip_code"] for h in hits if h.get("zip_code_type") != "PO BOX"}))


@lru_cache(maxsize=1)
def _fips_table():
    import addfips

    return addfips.AddFIPS()


def county_fips(county: str, state: str) -> str | None:
    """'Pinellas County', 'FL' → '12103' (PSAP coverage by county)."""
    return _fips(county, state)


@lru_cache(maxsize=4096)
def _fips(county: str, state: str) -> str | None:
    try:
        return _fips_table().get_county_fips(county, state=state)
    except (KeyError, ValueError):
        return None
