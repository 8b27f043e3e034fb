"""Monthly billing (SPEC B1–B10): one invoice per customer per calendar month (UTC).

Theory of operation. `store.load_inputs` reads everything a customer-month needs from
Postgres into plain values (`model.BillingInputs`): the customer's terms and services,
its rated CDRs, events, outages, won disputes, payments, adjustments and the previous
balance. `invoice.assemble` turns those into an `model.Invoice` with no I/O at all — every
rule is one named function in `rules.py` (usage rules B1–B4), `charges.py` (MRC,
pro-ration, B5 NRCs, B7, B8, B9) and `taxes.py` (B6) — so the golden tests compute the
service agreement's figures from in-memory inputs. Lines are computed at the system's
working precision (5 places) and turned into cents together (`rater.money.allocate_cents`),
so the total is the sum of its lines and no cent is lost or made. `store.issue` writes an
invoice once: an issued period is never recomputed (a re-run returns it unchanged), and
the database refuses any change to an issued invoice or its lines; a correction is a
credit note. `render.py` makes the HTML (Jinja2) and the PDF (WeasyPrint).
"""
