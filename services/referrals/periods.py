"""Calendar arithmetic of the programmes: "3 months", "within a month", day weights."""

from __future__ import annotations

from datetime import date, timedelta

from dateutil.relativedelta import relativedelta


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 → 28/29 Feb)."""
    return day + relativedelta(months=months)


def days(start: date, end: date) -> list[date]:
    """Every day of [start, end)."""
    return [start + timedelta(n) for n in range((end - start).days)]
