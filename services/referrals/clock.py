"""The clock the routes and the CLI read. The rules themselves never read one: they take
`today`/`now` as arguments, so a test can put the programmes on any day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()


class FixedClock:
    """A clock that stays where it is put (tests, `sipcc referrals settle --today`)."""

    def __init__(self, at: datetime | date) -> None:
        self.set(at)

    def set(self, at: datetime | date) -> None:
        if not isinstance(at, datetime):
            at = datetime(at.year, at.month, at.day, 12, tzinfo=UTC)
        self._now = at

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)

    def now(self) -> datetime:
        return self._now

    def today(self) -> date:
        return self._now.date()
