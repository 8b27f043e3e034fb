"""Property (hypothesis, real Postgres): once a period is issued, running it again changes
nothing — whatever CDRs, events, payments or adjustments turn up for that month later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.billing import runner
from services.billing.model import Period
from tests.integration.test_billing_run import SEPT, _cdrs, acme  # noqa: F401 (fixture)

NOW = datetime(2026, 10, 3, tzinfo=UTC)
batch = st.tuples(st.integers(0, 30), st.sampled_from(["interstate", "intrastate", "local",
                  "inbound", "international"]), st.integers(1, 900), st.sampled_from(
                  ["0", "0.005", "0.012", "0.018", "0.25"]))  # fmt: skip


async def _snapshot(conn) -> list[tuple]:
    return [tuple(r) for r in await conn.fetch(
        """SELECT i.number, i.total, i.issued_at, l.line_no, l.kind, l.exact, l.amount
           FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
           ORDER BY i.id, l.line_no""")]  # fmt: skip


@pytest.mark.rule("B6")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(batch, max_size=3), after=st.lists(batch, min_size=1, max_size=3),
       paid=st.decimals(Decimal("0.01"), Decimal("999"), places=2))
async def test_rerun_of_an_issued_period_changes_nothing(acme, before, after, paid) -> None:  # noqa: F811
    await acme.execute("TRUNCATE invoices CASCADE")
    await acme.execute("DELETE FROM cdrs WHERE call_id LIKE 'p-%'")
    for i, (n, j, secs, rate) in enumerate(before):
        await _cdrs(acme, n, j, secs, rate, SEPT + timedelta(days=i + 1), prefix=f"p-b{i}")
    first = await runner.run(acme, Period(2026, 9), "acme", now=NOW)
    assert first[0].created
    stored = await _snapshot(acme)
    for i, (n, j, secs, rate) in enumerate(after):
        await _cdrs(acme, n, j, secs, rate, SEPT + timedelta(days=i + 10), prefix=f"p-a{i}")
    await acme.execute("INSERT INTO payments (customer_id, received_at, amount) "
                       "VALUES ('acme', '2026-09-15T00:00Z', $1)", paid)  # fmt: skip
    await acme.execute("""INSERT INTO billing_events (customer_id, kind, at, tns)
                          VALUES ('acme', 'disconnect', '2026-09-25T00:00Z', '{+17275550103}')""")
    second = await runner.run(acme, Period(2026, 9), now=NOW + timedelta(days=1))
    assert [(i.created, i.invoice) for i in second] == [(False, first[0].invoice)]
    assert await _snapshot(acme) == stored
