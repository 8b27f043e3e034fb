"""Number analysis: E.164 forms and dialled kinds."""

import pytest

from rater.geography import state_of
from rater.numbers import Kind, analyse, normalize


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
