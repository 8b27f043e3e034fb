"""Invite-code discounts (F5, F6) as pure functions.

Source: seeds/referral-invite-codes-ru.txt. Its discount table, by clients brought:

    1 → 20% for 3 months; 2 → 40% for 6; 3 → 60% for 12 + 1,200 SMS;
    4 → 80% for 12; 5 → 100% for 12 + 3,200 SMS.

"On the day your friend registers with your code you get 20%; if you already had an active
discount for brought clients, it is raised by 20% and extended." Decision (docs/REFERRALS.md):
the *level* is the number of clients brought while the discount stayed active — a client
who registers while a discount runs raises the level by one, a client who registers after
it lapsed starts again at level 1. The new grant starts that day and runs for its level's
term, but never ends before the grant it replaces (extended, never shortened). Beyond
level 5 the discount stays at 100% and is extended by 12 months. The SMS packages go with
the third and the fifth client brought in all (they are packages, not discounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.referrals.periods import add_months

CLIENT_PERCENT = 20  # F5
CLIENT_MONTHS = 3  # F5
REGISTRATION_WINDOW_MONTHS = 1  # F5: a code is registered within a month of the PBX's


@dataclass(frozen=True)
class Tier:
    percent: int
    months: int


TIERS: dict[int, Tier] = {
    1: Tier(20, 3),
    2: Tier(40, 6),
    3: Tier(60, 12),
    4: Tier(80, 12),
    5: Tier(100, 12),
}
SMS_PACKAGES: dict[int, int] = {3: 1200, 5: 3200}  # clients brought in all → SMS in the package


def tier(level: int) -> Tier:
    if level < 1:
        raise ValueError(f"a discount level starts at 1, got {level}")
    return TIERS[min(level, max(TIERS))]


def registration_window_closes(pbx_registered_on: date) -> date:
    """The last day a new client may register a code (F5): one calendar month on."""
    return add_months(pbx_registered_on, REGISTRATION_WINDOW_MONTHS)


def client_discount(registered_on: date, promo_ends_on: date | None) -> tuple[date, date]:
    """F5: [from, to) of the new client's 20% — three months, starting when its promo
    period ends (or on the day it registers the code, if the promo is already over)."""
    start = max(registered_on, promo_ends_on or registered_on)
    return start, add_months(start, CLIENT_MONTHS)


@dataclass(frozen=True)
class Grant:
    level: int
    percent: int
    starts_on: date
    ends_on: date  # first day no longer covered
    sms_package: int | None


def owner_grant(
    day: date, active: Grant | None, clients_before: int
) -> Grant:
    """F6: the owner's grant on the day a new client registers its code.

    `active` is the owner's grant in force that day (None if none or lapsed);
    `clients_before` counts the clients the owner had brought before this one."""
    level = active.level + 1 if active is not None and active.ends_on > day else 1
    t = tier(level)
    ends = add_months(day, t.months)
    if active is not None and active.ends_on > ends:
        ends = active.ends_on
    return Grant(level, t.percent, day, ends, SMS_PACKAGES.get(clients_before + 1))
