"""The invoice as a person reads it: HTML and a real PDF (WeasyPrint), whose extracted text
carries every line's amount and the total (B6), plus the usage chart by jurisdiction."""

from __future__ import annotations

import io
import re

import pypdf
import pytest

from services.billing import render
from services.billing.invoice import assemble
from tests.unit.test_billing_golden import bayside_april


@pytest.mark.rule("B6")
def test_html_and_pdf_carry_every_line_and_the_total() -> None:
    inv = assemble(bayside_april())  # B5, B6, B7, B8 and usage lines
    page = render.html(inv, "Bayside Logistics")
    assert "<svg" in page and "Interstate long distance" in page  # the usage chart
    text = pypdf.PdfReader(io.BytesIO(render.pdf(inv, "Bayside Logistics"))).pages
    words = " ".join(p.extract_text() for p in text)
    amounts = re.findall(r"-?[\d,]+\.\d\d", words)
    for ln in inv.lines:
        assert f"{ln.amount:,.2f}" in amounts, (ln.description, ln.amount)
    assert f"{inv.total:,.2f}" == "10,256.31" and "10,256.31" in amounts
    assert "Balance due" in words and "Usage by jurisdiction" in words
