"""B6: taxes and surcharges (e.g. the Federal USF) passed through at configurable rates.

A tax applies to the lines whose kind, or kind:jurisdiction, is in its `applies_to`
(e.g. "mrc", "usage:interstate"): its base is their exact sum, its amount base × rate at
working precision. Credits among those kinds lower the base.
"""

from __future__ import annotations

from decimal import Decimal

from rater.money import round_internal
from services.billing.model import Line, TaxRate

# Decision: by default the USF is passed through on interstate and international usage,
# the revenue it is assessed on; rate = the FCC's quarterly contribution factor, which the
# operator keeps current (SIPCC_BILLING_TAXES).
DEFAULT_TAXES = (
    TaxRate("USF", "Federal Universal Service Fund", Decimal("0.366"),
            ("usage:interstate", "usage:international")),
)  # fmt: skip


def applies(tax: TaxRate, line: Line) -> bool:
    return line.kind in tax.applies_to or f"{line.kind}:{line.jurisdiction}" in tax.applies_to


def tax_lines(lines: list[Line], taxes: list[TaxRate]) -> list[Line]:
    out = []
    for tax in taxes:
        base = sum((ln.exact for ln in lines if applies(tax, ln)), Decimal(0))
        if not base:
            continue
        out.append(Line(
            kind="tax", rule="B6", exact=round_internal(base * tax.rate), quantity=base,
            unit_price=tax.rate, ref=tax.code,
            description=f"{tax.name} ({tax.code}) {tax.rate * 100:g}% of {round_internal(base)}",
        ))  # fmt: skip
    return out


def parse_taxes(raw: list[dict]) -> list[TaxRate]:
    """Settings' `billing_taxes` (a JSON list) → TaxRates; errors name the entry."""
    out = []
    for i, t in enumerate(raw):
        try:
            rate = Decimal(str(t["rate"]))
            if not 0 <= rate <= 1:
                raise ValueError("rate must lie between 0 and 1")
            applies_to = tuple(t["applies_to"])
            out.append(TaxRate(str(t["code"]), str(t.get("name", t["code"])), rate, applies_to))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"billing_taxes[{i}]: {exc!r} (need code, rate, applies_to)") from None
    return out
