"""An invoice as a person reads it: HTML from a Jinja2 template, PDF from that HTML with
WeasyPrint (which needs Debian's Pango; see the Makefile). The usage chart is inline SVG,
drawn here, so the PDF carries it without any JavaScript or image library."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from services.billing.invoice import SECTIONS
from services.billing.model import Invoice
from services.billing.usage import LABELS

CHART_WIDTH = 520
BAR_HEIGHT = 22
LABEL_WIDTH = 190


@cache
def _env() -> Environment:
    env = Environment(loader=PackageLoader("services.billing", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))  # fmt: skip
    env.filters["money"] = lambda v: "" if v is None else f"{v:,.2f}"
    return env


def usage_chart(inv: Invoice) -> dict:
    """Bars of billed minutes by jurisdiction, scaled to the longest."""
    rows = [(LABELS.get(j, j), calls, minutes, amount)
            for j, (calls, minutes, amount) in inv.usage_by_jurisdiction.items()]  # fmt: skip
    top = max((m for _, _, m, _ in rows), default=Decimal(0)) or Decimal(1)
    span = CHART_WIDTH - LABEL_WIDTH - 110
    bars = [{"label": label, "y": i * (BAR_HEIGHT + 6), "calls": calls,
             "minutes": f"{minutes:,.1f}", "amount": f"{amount:,.2f}",
             "width": max(1, int(minutes / top * span))}
            for i, (label, calls, minutes, amount) in enumerate(rows)]  # fmt: skip
    return {"bars": bars, "width": CHART_WIDTH, "label_width": LABEL_WIDTH,
            "height": max(1, len(bars)) * (BAR_HEIGHT + 6), "bar_height": BAR_HEIGHT}  # fmt: skip


def html(inv: Invoice, customer_name: str = "") -> str:
    sections = [(name, [ln for ln in inv.lines if ln.kind in kinds])
                for name, kinds in SECTIONS.items()]  # fmt: skip
    return _env().get_template("invoice.html.j2").render(
        inv=inv, customer_name=customer_name or inv.customer_id,
        sections=[(n, lines) for n, lines in sections if lines],
        other=[ln for ln in inv.lines if not any(ln.kind in k for k in SECTIONS.values())],
        chart=usage_chart(inv),
    )  # fmt: skip


def pdf(inv: Invoice, customer_name: str = "") -> bytes:
    from weasyprint import HTML  # loads Pango; only the PDF path needs it

    return HTML(string=html(inv, customer_name)).write_pdf()
