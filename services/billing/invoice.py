"""Invoice assembly: the month's inputs → the invoice's lines, in cents, with no I/O."""

from __future__ import annotations

from dataclasses import replace

from rater.money import allocate_cents
from services.billing import charges, rules, taxes, usage
from services.billing.model import BillingInputs, Invoice, Line

# Lines a tax may be charged on come before the taxes; account lines come last.
SECTIONS = {
    "charges": ("mrc", "usage", "short_calls", "local_inbound_cap", "ld_minimum",
                "rboc_threshold", "nrc", "early_termination"),
    "credits": ("sla_credit", "dispute_credit", "adjustment"),
    "taxes": ("tax",),
    "account": ("previous_balance", "payment"),
}  # fmt: skip


def exact_lines(inp: BillingInputs) -> list[Line]:
    """Every line at working precision, in invoice order."""
    summary = usage.by_jurisdiction(inp.calls)
    lines = charges.mrc_lines(inp.terms, inp.period, inp.events)
    lines += usage.usage_lines(summary)
    lines += [line for rule in rules.USAGE_RULES if (line := rule(inp.calls, inp.terms))]
    lines += charges.nrc_lines(inp.events)
    if (etf := charges.early_termination(inp.terms, inp.events)) is not None:
        lines.append(etf)
    lines += charges.sla_credits(inp.terms, inp.outages_last_month, inp.period.previous())
    lines += charges.dispute_lines(inp.dispute_credits)
    lines += charges.adjustment_lines(inp.adjustments)
    lines += taxes.tax_lines(lines, inp.taxes)
    lines += charges.account_lines(inp.previous_balance, inp.payments)
    return lines


def assemble(inp: BillingInputs) -> Invoice:
    lines = exact_lines(inp)
    cents = allocate_cents([ln.exact for ln in lines])
    return Invoice(
        customer_id=inp.terms.customer_id, period=inp.period,
        lines=tuple(replace(ln, amount=c) for ln, c in zip(lines, cents, strict=True)),
        usage_by_jurisdiction=usage.by_jurisdiction(inp.calls),
    )  # fmt: skip
