"""Reference data as the call path reads it: an immutable in-memory snapshot.

NPA-NXX codes and thousands blocks (rule R6), LATAs (R8), local calling areas (R3) and
international rate decks (R11), every entry with the dates it is in force (R15). The
snapshot is built by services/refdata.py from Postgres; nothing here does I/O, so a
lookup is a few dict probes.

Theory of operation. Every key (an NPA-NXX, a block, a rate center, a prefix) maps to its
*versions*: `(from_day, to_day, value)` tuples, newest first, days being proleptic
ordinals (`date.toordinal()`). The version in force on day D is the newest one with
`from_day <= D`, unless its `to_day` has passed — then nothing is in force. Effective
dates are UTC calendar days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from rater.geography import state_of

ALWAYS = date.min.toordinal()
FOREVER = date.max.toordinal() + 1

Version = tuple[int, int, Any]
CATEGORIES = ("rboc_ilec", "wireless", "clec", "other")  # rule R6


def in_force(versions: tuple[Version, ...] | None, day: int) -> Any:
    """The value in force on `day`, or None."""
    if versions:
        for start, end, value in versions:
            if start <= day:
                return value if day < end else None
    return None


def versions_of(rows: Iterable[tuple[int, int, Any]]) -> tuple[Version, ...]:
    return tuple(sorted(rows, key=lambda v: v[0], reverse=True))


@dataclass(frozen=True, slots=True)
class Code:
    """An NPA-NXX as the central office code report lists it."""

    state: str
    rate_center: str | None
    ocn: str | None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """A pooled thousands block (NPA-NXX-X): its own rate center and carrier (R6)."""

    rate_center: str
    ocn: str | None
    state: str | None = None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where a number is, as far as the reference data (or phonenumbers) knows."""

    state: str | None
    rate_center: str | None = None
    lata: str | None = None
    ocn: str | None = None
    category: str | None = None
    pooled: bool = False  # the rate center came from a thousands block


@dataclass(frozen=True, slots=True)
class DeckRate:
    prefix: str
    rate_per_minute: Decimal
    description: str


@dataclass(slots=True)
class Deck:
    rates: dict[str, tuple[Version, ...]] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()  # distinct prefix lengths, longest first

    def index(self) -> Deck:
        self.lengths = tuple(sorted({len(p) for p in self.rates}, reverse=True))
        return self

    def lookup(self, digits: str, day: int) -> DeckRate | None:
        """Rule R11: the longest prefix of `digits` with a rate in force on `day`."""
        rates = self.rates
        for n in self.lengths:
            if n <= len(digits):
                hit = in_force(rates.get(digits[:n]), day)
                if hit is not None:
                    return hit
        return None


_PLACE_CACHE_MAX = 200_000


@dataclass(slots=True)
class RefData:
    codes: dict[str, tuple[Version, ...]] = field(default_factory=dict)  # 'NPANXX' → Code
    blocks: dict[str, tuple[Version, ...]] = field(default_factory=dict)  # 'NPANXXX' → Block
    latas: dict[tuple[str, str], tuple[Version, ...]] = field(default_factory=dict)
    categories: dict[str, tuple[Version, ...]] = field(default_factory=dict)  # OCN → category
    # (state, rate center, state, rate center) → True: the second lies in the first's LCA.
    lca: dict[tuple[str, str, str, str], tuple[Version, ...]] = field(default_factory=dict)
    decks: dict[str, Deck] = field(default_factory=dict)
    token: Any = None  # identifies the database state this snapshot was loaded from
    _places: dict[tuple[str, int], Place | None] = field(default_factory=dict)

    @property
    def has_numbering(self) -> bool:
        return bool(self.codes or self.blocks)

    def place(self, e164: str, day: int) -> Place | None:
        """The place of a NANP number from the imported codes and blocks, or None when
        neither knows it. A pooled block's rate center and OCN win over its NXX's (R6)."""
        if not (self.codes or self.blocks) or len(e164) != 12 or not e164.startswith("+1"):
            return None
        key = (e164[2:9], day)
        try:
            return self._places[key]
        except KeyError:
            pass
        found = self._locate(e164[2:9], day)
        if len(self._places) >= _PLACE_CACHE_MAX:
            self._places.clear()
        self._places[key] = found
        return found

    def _locate(self, npanxxx: str, day: int) -> Place | None:
        code: Code | None = in_force(self.codes.get(npanxxx[:6]), day)
        block: Block | None = in_force(self.blocks.get(npanxxx), day)
        if code is None and block is None:
            return None
        state = (block.state if block is not None else None) or (code.state if code else None)
        if state is None:
            state = state_of("+1" + npanxxx + "000")
        if block is not None:
            rate_center, ocn = block.rate_center, block.ocn or (code.ocn if code else None)
        else:
            assert code is not None
            rate_center, ocn = code.rate_center, code.ocn
        lata = in_force(self.latas.get((state, rate_center)), day) if state and rate_center else None
        category = in_force(self.categories.get(ocn), day) if ocn else None
        return Place(state, rate_center, lata, ocn, category or ("other" if ocn else None),
                     block is not None)  # fmt: skip

    def is_local(self, origin: Place, target: Place, day: int) -> bool:
        """Rule R3: `target` lies in the local calling area of `origin`'s rate center. A rate
        center is always in its own LCA; other pairs are local as the imported LCAs list them."""
        if not (origin.rate_center and target.rate_center and origin.state and target.state):
            return False
        if origin.rate_center == target.rate_center and origin.state == target.state:
            return True
        key = (origin.state, origin.rate_center, target.state, target.rate_center)
        return in_force(self.lca.get(key), day) is not None

    def intl_rate(self, deck: str, digits: str, day: int) -> DeckRate | None:
        d = self.decks.get(deck)
        return d.lookup(digits, day) if d is not None else None
