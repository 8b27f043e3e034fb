"""Money and time rounding. Every rounding rule of the agreement is one named function here.

Amounts are Decimal with 5 decimal places inside the system (DESIGN.md: Money) and are
rounded half-up to cents only on invoices.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

INTERNAL_QUANTUM = Decimal("0.00001")
CENT = Decimal("0.01")
SIXTY = Decimal(60)


def billed_seconds(duration_ms: int, initial: int, additional: int) -> int:
    """Rule R1: bill the initial increment, then whole additional increments, rounded up.

    Decision (SPEC R1): an answered call of at least 1 ms bills the initial increment; a call
    of 0 ms (never answered, or answered and torn down in the same millisecond) bills nothing.
    Works in integer milliseconds so 6.000 s and 6.001 s differ exactly.
    """
    if duration_ms <= 0:
        return 0
    if initial <= 0 or additional <= 0:
        raise ValueError(f"billing increments must be positive, got {initial}/{additional}")
    first_ms = initial * 1000
    if duration_ms <= first_ms:
        return initial
    step_ms = additional * 1000
    steps = -(-(duration_ms - first_ms) // step_ms)  # ceiling division on integers
    return initial + steps * additional


def round_internal(amount: Decimal) -> Decimal:
    """The system's working precision: 5 decimal places, half-up."""
    return amount.quantize(INTERNAL_QUANTUM, rounding=ROUND_HALF_UP)


def round_to_cents(amount: Decimal) -> Decimal:
    """Invoice precision: cents, half-up (DESIGN.md: Money)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def usage_amount(seconds: int, rate_per_minute: Decimal) -> Decimal:
    """The price of `seconds` billed seconds at a per-minute rate, at working precision."""
    return round_internal(Decimal(seconds) * rate_per_minute / SIXTY)


def call_amount(seconds: int, rate_per_minute: Decimal, per_call: Decimal | None = None) -> Decimal:
    """A call's price: its billed seconds at the per-minute rate, plus any per-call charge
    (R12 payphone surcharge, R14 directory assistance), at working precision."""
    amount = Decimal(seconds) * rate_per_minute / SIXTY
    if per_call:
        amount += per_call
    return round_internal(amount)


def allocate_cents(amounts: list[Decimal]) -> list[Decimal]:
    """Invoice lines in cents that neither lose nor create a cent: their sum is the exact
    sum rounded half-up to cents (`round_to_cents(sum(amounts))`), and each line is its
    own amount rounded down to the cent, plus one cent for the lines with the largest
    remainders (ties: the earlier line) until the sum is met — the largest-remainder
    method. Each line then lies within a cent of its exact amount, and a line whose
    remainder is at least half a cent is rounded up unless the lines' sum forbids it.

    Rounding each line half-up on its own can put the total a cent or more away from the
    sum it stands for (three lines of 0.005 make 0.03 for 0.015); this cannot.
    """
    floors = [a.quantize(CENT, rounding=ROUND_FLOOR) for a in amounts]
    target = round_to_cents(sum(amounts, Decimal(0)))
    extra = int((target - sum(floors, Decimal(0))) / CENT)
    order = sorted(range(len(amounts)), key=lambda i: (floors[i] - amounts[i], i))
    out = list(floors)
    for i in order[:extra]:
        out[i] += CENT
    return out


def prorated(monthly: Decimal, days: int, days_in_month: int) -> Decimal:
    """A monthly charge for `days` of a month of `days_in_month` days, at working precision
    (B6/B7: MRC of a partial month, by calendar days)."""
    if days >= days_in_month:
        return round_internal(monthly)
    return round_internal(monthly * days / days_in_month)
