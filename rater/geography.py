"""US states and NANP regions of a number, from phonenumbers' geocoding data.

Reference data imported later (NPA-NXX-X blocks, rule R6) is more precise; this is the
out-of-the-box answer that needs no import: the state of an NPA.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

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


@lru_cache(maxsize=65536)
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


def state_of(e164: str) -> str | None:
    """Two-letter state (or territory) of a NANP number, or None when unknown."""
    if not e164.startswith("+1") or len(e164) != 12:
        return None
    return _state_of_npanxx(e164[2:8])
