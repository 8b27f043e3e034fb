"""US states and NANP regions of a number, from phonenumbers' geocoding data.

Reference data imported later (NPA-NXX-X blocks, rule R6) is more precise; this is the
out-of-the-box answer that needs no import: the state of an NPA.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata, geocoder

STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA",
    "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
    "Washington DC": "DC", "District of Columbia": "DC",
}  # fmt: skip
CODES = frozenset(STATES.values())

# NANP regions outside the continental US that the agreement names (rule R2), by
# phonenumbers region code.
NANP_TERRITORIES = {"PR": "PR", "VI": "VI", "GU": "GU", "MP": "MP", "AS": "AS"}


@lru_cache(maxsize=4096)
def _state_of_npanxx(npanxx: str) -> str | None:
    number = phonenumbers.parse("+1" + npanxx + "0000")
    region = phonenumbers.region_code_for_number(number)
    if region in NANP_TERRITORIES:
        return NANP_TERRITORIES[region]
    if region != "US":
        return None
    text = geocoder.description_for_number(number, "en")
    if not text:
        return None
    # "Florida" or "Clearwater, FL"
    head, _, tail = text.rpartition(", ")
    if head and tail in CODES:
        return tail
    return STATES.get(text)


# Exchanges tried, in order, to find an NPA's state: the geocoder knows most NPAs by any
# exchange, a few only by some.
_SAMPLE_NXX = ("200", "555", "234", "310", "456", "521", "730", "845", "901", "670", "383")


@lru_cache(maxsize=2048)
def _state_of_npa(npa: str) -> str | None:
    # A geographic NPA never crosses a state line, so the state is cached per NPA: 1,000
    # entries, not one phonenumbers look-up (about 200 µs) per new NPA-NXX on the call path.
    for nxx in _SAMPLE_NXX:
        state = _state_of_npanxx(npa + nxx)
        if state is not None:
            return state
    return None


def state_of(e164: str) -> str | None:
    """Two-letter state (or territory) of a NANP number, or None when unknown."""
    if not e164.startswith("+1") or len(e164) != 12:
        return None
    return _state_of_npa(e164[2:5])


# NPAs whose area differs from the rest of their region: phonenumbers calls them "US", the
# agreement treats them apart (R2, R7, R10). Each state has exactly one NPA.
_US_NPA_AREAS = {"907": "AK", "808": "HI"}
_NANP_LEADING = tuple(
    (re.compile(md.leading_digits), region)
    for region in phonenumbers.region_codes_for_country_code(1)
    if (md := PhoneMetadata.metadata_for_region(region)) is not None and md.leading_digits
)
# Canada and the US share the NANP without leading digits; their fixed-line patterns list
# their NPAs (any NXX of 2-9 follows).
_CA_PATTERN = re.compile(PhoneMetadata.metadata_for_region("CA").fixed_line.national_number_pattern)
_US_PATTERN = re.compile(PhoneMetadata.metadata_for_region("US").fixed_line.national_number_pattern)


@lru_cache(maxsize=2048)
def nanp_area(npa: str) -> str | None:
    """The area of a NANP geographic NPA: 'US' (continental, with DC), 'AK', 'HI', a US
    territory ('PR', 'VI', 'GU', 'MP', 'AS'), 'CA', another NANP country's ISO code, or None."""
    if npa in _US_NPA_AREAS:
        return _US_NPA_AREAS[npa]
    sample = npa + "2345678"
    for pattern, region in _NANP_LEADING:
        if pattern.match(sample):
            return region
    if _CA_PATTERN.fullmatch(sample):
        return "CA"
    if _US_PATTERN.fullmatch(sample):
        return "US"
    return None


@lru_cache(maxsize=4096)
def _country_area(prefix: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + prefix)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_country_code(number.country_code)
    return None if region == "ZZ" else region


def area_of(e164: str) -> str | None:
    """The area of an E.164 number as the agreement sees it (see `nanp_area`); outside the
    NANP the ISO region of its country code ('MX', 'GB'; '001' for global services)."""
    if e164.startswith("+1"):
        return nanp_area(e164[2:5]) if len(e164) == 12 else None
    # Country codes are 1-3 digits; 8 digits always hold one with room to parse.
    return _country_area(e164[1:9])
