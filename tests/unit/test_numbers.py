"""Number analysis: E.164 forms and dialled kinds."""

import pytest

from rater.geography import state_of
from rater.numbers import Kind, analyse, normalize, oli_of


@pytest.mark.parametrize(
    "user",
    ["+17275550100", "17275550100", "7275550100", "tel:+1-727-555-0100", "+1 (727) 555-0100",
     "7275550100;isub=1", "tel:+17275550100;oli=27"],
)  # fmt: skip
def test_normalize_nanp_forms(user: str) -> None:
    assert normalize(user) == "+17275550100"


@pytest.mark.rule("R5")
@pytest.mark.parametrize("user", ["", "anonymous", "123", "+1727555010", "0275550100", "+1abc"])
def test_invalid_ani_is_none(user: str) -> None:
    assert normalize(user) is None


@pytest.mark.rule("A2")
@pytest.mark.parametrize(
    ("dialled", "kind"),
    [
        ("+19005551234", Kind.PREMIUM_900),
        ("19005551234", Kind.PREMIUM_900),
        ("2129765555", Kind.PREMIUM_976),
        ("10102881234567", Kind.DIAL_AROUND),
        ("1010321", Kind.DIAL_AROUND),
        ("911", Kind.N11),
        ("411", Kind.N11),
        ("933", Kind.TEST_933),
        ("+18005551234", Kind.TOLL_FREE),
        ("+442079460000", Kind.INTERNATIONAL),
        ("011442079460000", Kind.INTERNATIONAL),
        ("2125551234", Kind.GEOGRAPHIC),
        ("hello", Kind.INVALID),
    ],
)
def test_dialled_kinds(dialled: str, kind: Kind) -> None:
    assert analyse(dialled).kind is kind


def test_911_is_emergency() -> None:
    assert analyse("911").is_emergency
    assert analyse("1911").is_emergency
    assert not analyse("411").is_emergency


@pytest.mark.rule("R2")
@pytest.mark.parametrize(
    ("e164", "state"),
    [("+17275550100", "FL"), ("+12125551234", "NY"), ("+19075551234", "AK"),
     ("+18085551234", "HI"), ("+17875551234", "PR"), ("+13405551234", "VI"),
     ("+16715551234", "GU"), ("+16705551234", "MP"), ("+14165551234", None)],
)  # fmt: skip
def test_state_of(e164: str, state: str | None) -> None:
    assert state_of(e164) == state


@pytest.mark.parametrize(
    "user",
    ["sip:+17275550100@pbx.example;user=phone", "sips:7275550100@pbx", "tel:17275550100",
     "sip:+1-727-555-0100;isub=12@pbx"],
)  # fmt: skip
def test_normalize_uri_forms(user: str) -> None:
    assert normalize(user) == "+17275550100"


@pytest.mark.parametrize(
    ("user", "e164"),
    [("011442079460000", "+442079460000"), ("+44 20 7946 0000", "+442079460000"),
     ("011 52 55 1234 5678", "+525512345678")],
)  # fmt: skip
def test_normalize_international(user: str, e164: str) -> None:
    assert normalize(user) == e164


@pytest.mark.rule("R14")
@pytest.mark.parametrize(
    ("dialled", "kind", "e164"),
    [("0", Kind.OPERATOR, None), ("00", Kind.OPERATOR, None),
     ("02125551234", Kind.OPERATOR, "+12125551234"),
     ("01442079460000", Kind.OPERATOR, "+442079460000"),
     ("411", Kind.N11, None), ("1411", Kind.N11, None)],
)  # fmt: skip
def test_operator_and_directory(dialled: str, kind: Kind, e164: str | None) -> None:
    got = analyse(dialled)
    assert (got.kind, got.e164) == (kind, e164)
    assert got.is_directory_assistance is (dialled.endswith("411"))


@pytest.mark.rule("A2")
@pytest.mark.parametrize("dialled", ["1010288", "10102881234567", "1012881", "101288112125551234"])
def test_dial_around_forms(dialled: str) -> None:
    assert analyse(dialled).kind is Kind.DIAL_AROUND


@pytest.mark.rule("R2")
@pytest.mark.parametrize(
    ("dialled", "area"),
    [("+12125551234", "US"), ("+12025551234", "US"), ("+19075551234", "AK"),
     ("+18085551234", "HI"), ("+17875551234", "PR"), ("+19395551234", "PR"),
     ("+13405551234", "VI"), ("+16715551234", "GU"), ("+16705551234", "MP"),
     ("+16845551234", "AS"), ("+14165551234", "CA"), ("+16045551234", "CA"),
     ("+18765551234", "JM"), ("+525512345678", "MX"), ("+442079460000", "GB"),
     ("+870773112345", "001")],
)  # fmt: skip
def test_areas(dialled: str, area: str) -> None:
    assert analyse(dialled).area == area


def test_mexico_and_canada_kinds() -> None:
    assert analyse("011525512345678").kind is Kind.INTERNATIONAL
    assert analyse("+14165551234").kind is Kind.GEOGRAPHIC  # NANP, rated as international
    assert analyse("+18005551234").area is None


@pytest.mark.rule("R12")
@pytest.mark.parametrize(
    ("user", "oli"),
    [("tel:+12125551234;oli=27", "27"), ("+12125551234;isup-oli=70", "70"),
     ("sip:+12125551234;OLI=29@carrier", "29"), ("+12125551234;oli=7", "07"),
     ("+12125551234", None), (None, None), ("+12125551234;isub=27", None)],
)  # fmt: skip
def test_oli_of(user: str | None, oli: str | None) -> None:
    assert oli_of(user) == oli
