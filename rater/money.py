"""Money and time rounding. Every rounding rule of the agreement is one named function here.

Amounts are Decimal with 5 decimal places inside the system (DESIGN.md: Money) and are
rounded half-up to cents only on invoices.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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
