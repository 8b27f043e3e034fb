"""Number analysis: E.164 normalisation of SIP user parts and the kind of a dialled number.

Input is what PBXs put in user parts: '+17275550100', '17275550100', '7275550100',
'tel:+1-727-555-0100', '011 44 20 7946 0000', '911', '1010288...'. Output is E.164 or a
service code, never a guess: an ANI that is not a valid number is `None` (rule R5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers

_VISUAL = re.compile(r"[\s\-.()]")
_NANP = re.compile(r"^[2-9]\d{2}[2-9]\d{6}$")


class Kind(StrEnum):
    GEOGRAPHIC = "geographic"  # NANP geographic number
    TOLL_FREE = "toll_free"  # 8XX
    PREMIUM_900 = "premium_900"  # rule A2
    PREMIUM_976 = "premium_976"  # rule A2
    DIAL_AROUND = "dial_around"  # 1010XXX, rule A2
    N11 = "n11"  # 211 … 911
    TEST_933 = "test_933"
    INTERNATIONAL = "international"
    INVALID = "invalid"


TOLL_FREE_NPAS = frozenset({"800", "833", "844", "855", "866", "877", "888"})


@dataclass(frozen=True, slots=True)
class Dialled:
    kind: Kind
    e164: str | None  # for numbers; None for service codes and invalid input
    digits: str  # the cleaned digits as dialled

    @property
    def is_emergency(self) -> bool:
        return self.kind is Kind.N11 and self.digits == "911"


def clean(user: str) -> str:
    """Strip URI scheme, visual separators and user-part parameters (';isub=', ';oli=')."""
    text = user.strip()
    if text[:4].lower() == "tel:":
        text = text[4:]
    text = text.split(";", 1)[0]
    return _VISUAL.sub("", text)


@lru_cache(maxsize=131072)
def normalize(user: str) -> str | None:
    """E.164 for a NANP or international number in any common dialled form, else None."""
    text = clean(user)
    if text.startswith("+"):
        digits = text[1:]
        if not digits.isdigit():
            return None
        return _valid_e164("+" + digits)
    if not text.isdigit():
        return None
    if len(text) == 10 and _NANP.match(text):
        return "+1" + text
    if len(text) == 11 and text[0] == "1" and _NANP.match(text[1:]):
        return "+" + text
    if text.startswith("011") and len(text) > 6:
        return _valid_e164("+" + text[3:])
    return None


def _valid_e164(candidate: str) -> str | None:
    if not 8 <= len(candidate) <= 16:
        return None
    if candidate.startswith("+1"):
        return candidate if len(candidate) == 12 and _NANP.match(candidate[2:]) else None
    try:
        parsed = phonenumbers.parse(candidate)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=131072)
def analyse(user: str) -> Dialled:
    """The kind of a dialled number (DNIS), for blocking (A2) and rating (R1–R14)."""
    digits = clean(user)
    bare = digits.lstrip("+")
    if bare.isdigit():
        local = bare[1:] if len(bare) == 4 and bare[0] == "1" else bare
        if len(local) == 3 and local[1:] == "11" and local[0] in "23456789":
            return Dialled(Kind.N11, None, local)
        if local == "933":
            return Dialled(Kind.TEST_933, None, local)
        if not digits.startswith("+") and bare.startswith("1010") and len(bare) >= 7:
            return Dialled(Kind.DIAL_AROUND, None, bare)
    e164 = normalize(user)
    if e164 is None:
        return Dialled(Kind.INVALID, None, digits)
    if not e164.startswith("+1"):
        return Dialled(Kind.INTERNATIONAL, e164, digits)
    npa, nxx = e164[2:5], e164[5:8]
    if npa in TOLL_FREE_NPAS:
        return Dialled(Kind.TOLL_FREE, e164, digits)
    if npa == "900":
        return Dialled(Kind.PREMIUM_900, e164, digits)
    if nxx == "976":
        return Dialled(Kind.PREMIUM_976, e164, digits)
    return Dialled(Kind.GEOGRAPHIC, e164, digits)
