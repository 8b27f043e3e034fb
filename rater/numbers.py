"""Number analysis: E.164 normalisation of SIP user parts and the kind of a dialled number.

Input is what PBXs and carriers put in user parts and URIs: '+17275550100', '17275550100',
'7275550100', 'tel:+1-727-555-0100;oli=27', 'sip:+17275550100@pbx;user=phone',
'011 44 20 7946 0000', '911', '10102881...'. Output is E.164 or a service code, never a
guess: an ANI that is not a valid number is `None` (rule R5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers

from rater.geography import area_of

_VISUAL = re.compile(r"[\s\-.()]")
_NANP = re.compile(r"^[2-9]\d{2}[2-9]\d{6}$")
_OLI = re.compile(r";(?:isup-)?oli=(\d{1,2})\b", re.IGNORECASE)


class Kind(StrEnum):
    GEOGRAPHIC = "geographic"  # NANP geographic number (US, its territories, Canada, Caribbean)
    TOLL_FREE = "toll_free"  # 8XX
    PREMIUM_900 = "premium_900"  # rule A2
    PREMIUM_976 = "premium_976"  # rule A2
    DIAL_AROUND = "dial_around"  # 1010XXX / 101XXXX, rule A2
    N11 = "n11"  # 211 … 911
    TEST_933 = "test_933"  # the 911 address read-back test
    OPERATOR = "operator"  # 0, 00, 0+number, 01+international (rule R14)
    INTERNATIONAL = "international"  # outside the NANP
    INVALID = "invalid"


TOLL_FREE_NPAS = frozenset({"800", "833", "844", "855", "866", "877", "888"})


@dataclass(frozen=True, slots=True)
class Dialled:
    kind: Kind
    e164: str | None  # for numbers; None for service codes and invalid input
    digits: str  # the cleaned digits as dialled
    # 'US' (continental), 'AK', 'HI', 'PR', 'VI', 'GU', 'MP', 'AS', 'CA', another NANP
    # country's or a foreign ISO region ('MX', 'GB', '001' for global services); None for
    # service codes, toll-free, premium and invalid input.
    area: str | None = None

    @property
    def is_emergency(self) -> bool:
        return self.kind is Kind.N11 and self.digits == "911"

    @property
    def is_directory_assistance(self) -> bool:
        return self.kind is Kind.N11 and self.digits == "411"


def _user_part(user: str) -> str:
    text = user.strip()
    head = text[:5].lower()
    if head.startswith("tel:"):
        text = text[4:]
    elif head.startswith("sip:"):
        text = text[4:]
    elif head.startswith("sips:"):
        text = text[5:]
    return text.split("@", 1)[0]


def clean(user: str) -> str:
    """Strip URI scheme, host, visual separators and user-part parameters (';isub=', ';oli=')."""
    return _VISUAL.sub("", _user_part(user).split(";", 1)[0])


def oli_of(user: str | None) -> str | None:
    """The ANI II / OLI digits carried as an `oli` or `isup-oli` user-part parameter (R12)."""
    if not user or ";" not in user:
        return None
    m = _OLI.search(user)
    return m.group(1).zfill(2) if m else None


@lru_cache(maxsize=131072)
def normalize(user: str) -> str | None:
    """E.164 for a NANP or international number in any common dialled form, else None."""
    text = clean(user)
    if text.startswith("+"):
        digits = text[1:]
        if not (digits.isascii() and digits.isdigit()):
            return None
        return _valid_e164("+" + digits)
    if not (text.isascii() and text.isdigit()):
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


def _operator(bare: str) -> Dialled | None:
    """0 (operator), 00 (long-distance operator), 0+NPA-NXX-XXXX, 01+international."""
    if bare in ("0", "00"):
        return Dialled(Kind.OPERATOR, None, bare)
    if len(bare) == 11 and _NANP.match(bare[1:]):
        return Dialled(Kind.OPERATOR, "+" + "1" + bare[1:], bare)
    if bare.startswith("01") and not bare.startswith("011") and len(bare) > 7:
        e164 = _valid_e164("+" + bare[2:])
        if e164 is not None:
            return Dialled(Kind.OPERATOR, e164, bare, area_of(e164))
    return None


@lru_cache(maxsize=131072)
def analyse(user: str) -> Dialled:
    """The kind of a dialled number (DNIS), for blocking (A2) and rating (R1–R14)."""
    digits = clean(user)
    bare = digits.lstrip("+")
    if bare.isascii() and bare.isdigit() and not digits.startswith("+"):
        local = bare[1:] if len(bare) == 4 and bare[0] == "1" else bare
        if len(local) == 3 and local[1:] == "11" and local[0] in "23456789":
            return Dialled(Kind.N11, None, local)
        if local == "933":
            return Dialled(Kind.TEST_933, None, local)
        # 1010XXX and its 4-digit-CIC successor 101XXXX: no NANP number starts with 10.
        if bare.startswith("101") and len(bare) >= 7:
            return Dialled(Kind.DIAL_AROUND, None, bare)
        if bare[0] == "0" and not bare.startswith("011"):
            found = _operator(bare)
            if found is not None:
                return found
    e164 = normalize(user)
    if e164 is None:
        return Dialled(Kind.INVALID, None, digits)
    if not e164.startswith("+1"):
        return Dialled(Kind.INTERNATIONAL, e164, digits, area_of(e164))
    npa, nxx = e164[2:5], e164[5:8]
    if npa in TOLL_FREE_NPAS:
        return Dialled(Kind.TOLL_FREE, e164, digits)
    if npa == "900":
        return Dialled(Kind.PREMIUM_900, e164, digits)
    if nxx == "976":
        return Dialled(Kind.PREMIUM_976, e164, digits)
    return Dialled(Kind.GEOGRAPHIC, e164, digits, area_of(e164))


@lru_cache(maxsize=131072)
def area_of_number(e164: str) -> str | None:
    """The area an E.164 number (an ANI, say) lies in; None for toll-free and unknown NPAs."""
    if e164.startswith("+1") and e164[2:5] in TOLL_FREE_NPAS:
        return None
    return area_of(e164)
