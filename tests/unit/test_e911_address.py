"""Registered addresses (rule E6): messy real-world input, normalised or refused clearly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e911_router.address import Address, AddressError, normalize

pytestmark = pytest.mark.rule("E6")


@pytest.mark.parametrize(
    ("raw", "street", "unit", "floor", "zip_", "fips"),
    [
        # Abbreviations and case as people type them; USPS Pub 28 forms come out.
        ("600 cleveland street suite 200, clearwater, fl 33755",
         "600 CLEVELAND ST", "STE 200", None, "33755", "12103"),
        ("600 N. Cleveland St., Ste. 200, Clearwater, FL 33755",
         "600 N CLEVELAND ST", "STE 200", None, "33755", "12103"),
        ("123 North Main Street Apt #4B, Springfield, IL 62701",
         "123 N MAIN ST", "APT 4B", None, "62701", "17167"),
        ("1 Main St Floor 3, Tampa FL 33602", "1 MAIN ST", None, "3", "33602", "12057"),
        ("2000 Main Street #12, Fort Myers, FL 33901-1234",
         "2000 MAIN ST", "12", None, "33901-1234", "12071"),
        # No ZIP, but the city has only one: filled in.
        ("400 Gulf Blvd, Indian Rocks Beach, FL", "400 GULF BLVD", None, None, "33785", "12103"),
    ],
)  # fmt: skip
def test_messy_addresses_normalise(raw, street, unit, floor, zip_, fips) -> None:
    a = normalize(line=raw)
    assert a.street == street
    assert a.unit == unit and a.floor == floor
    assert a.zip == zip_ and a.county_fips == fips


def test_structured_fields_normalise_the_same_as_one_line() -> None:
    a = normalize(street="600 Cleveland Street", unit="Suite 200", city="clearwater", state="fl",
                  zip="33755")  # fmt: skip
    assert a == normalize(line="600 Cleveland St Ste 200, Clearwater, FL 33755")
    assert a.one_line() == "600 CLEVELAND ST STE 200, CLEARWATER, FL 33755"
    assert a.county == "Pinellas County"
    assert Address.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("PO Box 123, Clearwater FL 33755", "PO box"),
        ("P.O. Box 77, Tampa, FL 33602", "PO box"),
        ("Cleveland St, Clearwater, FL 33755", "no house number"),
        ("600 Cleveland St, Clearwater, FL", "ZIP code is missing (CLEARWATER, FL has"),
        ("600 Cleveland St, Clearwater, GA 33755", "ZIP 33755 is in FL, not GA"),
        ("600 Cleveland St, Clearwater, FL 00000", "ZIP 00000 does not exist"),
        ("600 Cleveland St, Clearwater", "no US state"),
        ("", "empty"),
    ],
)
def test_undispatchable_addresses_are_refused_clearly(raw, why) -> None:
    with pytest.raises(AddressError, match=None) as err:
        normalize(line=raw)
    assert why in str(err.value)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_an_address_or_an_address_error(text) -> None:
    try:
        a = normalize(line=text)
    except AddressError as exc:
        assert str(exc)
    else:
        assert a.house_number and a.street_name and len(a.state) == 2 and a.zip
