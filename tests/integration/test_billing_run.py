"""`sipcc billing run` from real CDR rows in Postgres to a stored, immutable invoice
(B1–B10 on the store; the arithmetic of each rule is proven in tests/unit/test_billing_*)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from services import inventory, provision

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "examples" / "provision.yaml"
SEPT = datetime(2026, 9, 1, tzinfo=UTC)


def _cli(*args: str, dsn: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIPCC_DATABASE_URL": dsn, "SIPCC_LOG_LEVEL": "warning"}
    env.pop("SIPCC_BILLING_TAXES", None)
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


async def _cdrs(conn, n: int, jurisdiction: str, secs: int, rate: str, start: datetime,
                answered: bool = True, prefix: str = "") -> None:  # fmt: skip
    amount = (D(secs) * D(rate) / 60).quantize(D("0.00001")) if answered else D(0)
    await conn.executemany(
        """INSERT INTO cdrs (call_id, customer_id, trunk_id, direction, ani, dnis, jurisdiction,
               started_at, answered_at, ended_at, duration_ms, billed_seconds, rate_per_minute,
               amount, disposition)
           VALUES ($1, 'acme', 'acme-main', 'outbound', '+17275550100', '+12125551234', $2,
                   $3, $4, $5, $6, $7, $8, $9, $10)""",
        [(f"{prefix}{jurisdiction}-{answered}-{i}", jurisdiction, start + timedelta(minutes=i),
          start + timedelta(minutes=i, seconds=2) if answered else None,
          start + timedelta(minutes=i, seconds=2 + secs), secs * 1000 if answered else 0,
          secs if answered else 0, D(rate), amount, "answered" if answered else "no_answer")
         for i in range(n)],
    )  # fmt: skip


@pytest.fixture
async def acme(pg):
    await provision.apply(pg, provision.load_file(PROVISION))
    await pg.execute("SELECT cdrs_ensure_partition($1::date)", SEPT.date())
    await pg.execute("""INSERT INTO billing_accounts (customer_id, enforce_ld_minimum,
                            credit_limit, deposit) VALUES ('acme', true, 100, 50)""")  # fmt: skip
    await pg.execute("""INSERT INTO billing_services (customer_id, id, description, kind,
                            unit_mrc, quantity) VALUES
                        ('acme', 'trunks', 'Two-Way SIP Trunk', 'trunk', 24.99, NULL),
                        ('acme', 'dids', 'DID numbers', 'did', 1.00, 10)""")  # fmt: skip
    await _cdrs(pg, 40, "interstate", 120, "0.012", SEPT + timedelta(days=3))
    await _cdrs(pg, 20, "intrastate", 60, "0.018", SEPT + timedelta(days=4))
    await _cdrs(pg, 3, "interstate", 0, "0.012", SEPT + timedelta(days=5), answered=False)
    await pg.execute("""INSERT INTO billing_events (customer_id, kind, at, tns)
                        VALUES ('acme', 'port_out', '2026-09-20T15:00Z', '{+17275550104}')""")
    await pg.execute("""INSERT INTO payments (customer_id, received_at, amount, reference)
                        VALUES ('acme', '2026-09-10T12:00Z', 20.00, 'ACH 42')""")
    await pg.execute("""INSERT INTO billing_adjustments (customer_id, period_start, kind,
                            description, amount, rule, source)
                        VALUES ('acme', '2026-09-01', 'referral_credit',
                                'Refer-a-friend credit', -10, 'F2', 'referrals')""")  # fmt: skip
    return pg


async def _stored(conn, number: str) -> list[tuple]:
    return [tuple(r) for r in await conn.fetch(
        """SELECT l.kind, l.rule, l.amount FROM invoice_lines l JOIN invoices i
           ON i.id = l.invoice_id WHERE i.number = $1 ORDER BY l.line_no""", number)]  # fmt: skip


@pytest.mark.rule("B3")
@pytest.mark.rule("B6")
async def test_billing_run_from_cdrs_to_a_stored_invoice_that_never_changes(acme, pg_dsn) -> None:
    run = _cli("billing", "run", "--period", "2026-09", "--customer", "acme", dsn=pg_dsn)
    assert run.returncode == 0, run.stderr
    assert "INV-acme-2026-09: 46.15 USD (issued)" in run.stdout
    lines = await _stored(acme, "INV-acme-2026-09")
    assert lines == [
        ("mrc", "B6", D("49.98")),  # 2 provisioned trunks × 24.99
        ("mrc", "B6", D("10.00")),  # 10 DIDs × 1.00
        ("usage", "B6", D("0.36")),  # intrastate 20 × 1 min × 0.018
        ("usage", "B6", D("0.96")),  # interstate 40 × 2 min × 0.012 (3 unanswered: nothing)
        ("ld_minimum", "B3", D("9.50")),  # (300 × 2 − 100) min × 0.019
        ("nrc", "B5", D("5.00")),  # port-out of 1 TN
        ("adjustment", "F2", D("-10.00")),  # from billing_adjustments (the referral hook)
        ("tax", "B6", D("0.35")),  # USF 0.96 × 0.366 = 0.35136
        ("previous_balance", None, D("0.00")),
        ("payment", None, D("-20.00")),
    ]
    # 49.98 + 10 + 0.36 + 0.96 + 9.50 + 5 − 10 + 0.35136 − 20 = 46.15136 → 46.15
    assert await acme.fetchval("SELECT total FROM invoices WHERE number = 'INV-acme-2026-09'") \
        == D("46.15")  # fmt: skip

    # A re-run of an issued period changes nothing, even when new CDRs turned up since.
    await _cdrs(acme, 5, "interstate", 600, "0.012", SEPT + timedelta(days=9))
    before = [tuple(r) for r in await acme.fetch("SELECT * FROM invoice_lines ORDER BY line_no")]
    again = _cli("billing", "run", "--period", "2026-09", dsn=pg_dsn)
    assert again.returncode == 0, again.stderr
    assert "INV-acme-2026-09: 46.15 USD (already issued, unchanged)" in again.stdout
    assert [tuple(r) for r in await acme.fetch("SELECT * FROM invoice_lines ORDER BY line_no")] \
        == before  # fmt: skip
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        await acme.execute("UPDATE invoice_lines SET amount = 0 WHERE line_no = 1")
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        await acme.execute("DELETE FROM invoices")

    # The next month carries the balance; payments and adjustments are not taken twice; a
    # dispute won on September is credited on October (B9).
    await acme.execute("""INSERT INTO disputes (invoice_id, customer_id, amount, reason,
                              answer_due, status, resolved_at)
                          SELECT id, 'acme', 5.00, 'port-out billed in error',
                                 now() + interval '30 days', 'won', now() - interval '1 hour'
                          FROM invoices WHERE number = 'INV-acme-2026-09'""")  # fmt: skip
    oct_run = _cli("billing", "run", "--period", "2026-10", "--customer", "acme", dsn=pg_dsn)
    assert oct_run.returncode == 0, oct_run.stderr
    october = await _stored(acme, "INV-acme-2026-10")
    assert ("previous_balance", None, D("46.15")) in october
    assert ("dispute_credit", "B9", D("-5.00")) in october
    assert not [ln for ln in october if ln[0] in ("payment", "adjustment")]


async def test_billing_run_refuses_bad_input_clearly(acme, pg_dsn) -> None:
    bad = _cli("billing", "run", "--period", "2026-13", dsn=pg_dsn)
    assert bad.returncode == 2 and "period must be YYYY-MM" in bad.stderr
    assert "Traceback" not in bad.stderr
    future = _cli("billing", "run", "--period", "2099-01", "--customer", "acme", dsn=pg_dsn)
    assert future.returncode == 2 and "has not ended yet" in future.stderr
    nobody = _cli("billing", "run", "--period", "2026-09", "--customer", "nobody", dsn=pg_dsn)
    assert nobody.returncode == 2 and "no customer 'nobody'" in nobody.stderr
    assert await acme.fetchval("SELECT count(*) FROM invoices") == 0


@pytest.mark.rule("B10")
@pytest.mark.rule("A6")
async def test_billing_credit_limit_and_deposit_are_the_rater_credit_level(acme) -> None:
    inv = await inventory.load(acme)
    assert inv.customers["acme"].credit_limit == D("150")  # billing: 100 limit + 50 deposit
    await acme.execute("DELETE FROM billing_accounts")
    inv = await inventory.load(acme)
    assert inv.customers["acme"].credit_limit == D("500")  # provisioning's, without billing


@pytest.fixture
async def api(acme, pg_dsn):
    """The real API app on a real pool (the node object only carries the pool)."""
    import types

    import httpx

    from services import db
    from services.api import create_app

    pool = await db.create_pool(pg_dsn, max_size=2)
    app = create_app(types.SimpleNamespace(pool=pool))
    from tests.support import apikeys

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing.test",
                                 headers=await apikeys.headers(pool)) as client:  # fmt: skip
        yield client
    await pool.close()


@pytest.mark.rule("B9")
@pytest.mark.rule("B5")
async def test_billing_http_api(acme, api) -> None:
    from services.billing import runner
    from services.billing.model import Period

    issued_at = datetime(2026, 10, 2, 9, tzinfo=UTC)
    await runner.run(acme, Period(2026, 9), "acme", now=issued_at)
    got = (await api.get("/v1/invoices/INV-acme-2026-09")).json()
    assert got["total"] == "46.15" and len(got["lines"]) == 10
    assert got["usage_by_jurisdiction"]["interstate"]["calls"] == 40
    assert [i["number"] for i in (await api.get("/v1/invoices?customer_id=acme")).json()] \
        == ["INV-acme-2026-09"]  # fmt: skip
    page = await api.get("/v1/invoices/INV-acme-2026-09/html")
    assert page.status_code == 200 and "46.15" in page.text and "<svg" in page.text
    pdf = await api.get("/v1/invoices/INV-acme-2026-09/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    assert (await api.get("/v1/invoices/INV-nobody")).status_code == 404

    # B9: within 30 days of receipt, answered within 30 days, won → next invoice.
    late = await api.post("/v1/disputes", json={
        "invoice_number": "INV-acme-2026-09", "amount": "5.00", "reason": "port-out",
        "opened_at": (issued_at + timedelta(days=31)).isoformat()})  # fmt: skip
    assert late.status_code == 422 and "within 30 days" in late.json()["detail"]
    too_much = await api.post("/v1/disputes", json={
        "invoice_number": "INV-acme-2026-09", "amount": "500.00", "reason": "all of it",
        "opened_at": (issued_at + timedelta(days=3)).isoformat()})  # fmt: skip
    assert too_much.status_code == 422 and "exceeds" in too_much.json()["detail"]
    opened = await api.post("/v1/disputes", json={
        "invoice_number": "INV-acme-2026-09", "amount": "5.00", "reason": "port-out in error",
        "opened_at": (issued_at + timedelta(days=29)).isoformat()})  # fmt: skip
    assert opened.status_code == 201
    dispute = opened.json()
    assert dispute["answer_due"].startswith("2026-11-30")
    won = await api.post(f"/v1/disputes/{dispute['id']}/resolve",
                         json={"outcome": "won", "resolution": "port-out was ours"})  # fmt: skip
    assert won.json()["status"] == "won"
    again = await api.post(f"/v1/disputes/{dispute['id']}/resolve",
                           json={"outcome": "lost", "resolution": "changed our mind"})  # fmt: skip
    assert again.status_code == 409

    # Events API (B5): bad input is named; an invoiced month takes no more events.
    no_foc = await api.post("/v1/billing/events", json={
        "customer_id": "acme", "kind": "lnp_cancel", "at": "2026-10-03T10:00Z", "tns": ["+1"]})
    assert no_foc.status_code == 422 and "foc_at" in no_foc.text
    closed = await api.post("/v1/billing/events", json={
        "customer_id": "acme", "kind": "disconnect", "at": "2026-09-30T10:00Z"})
    assert closed.status_code == 409 and "credit note" in closed.json()["detail"]
    ok = await api.post("/v1/billing/events", json={
        "customer_id": "acme", "kind": "lnp_cancel", "at": "2026-10-03T10:00Z",
        "foc_at": "2026-10-04T09:00Z", "tns": ["+18135550001"]})  # fmt: skip
    assert ok.status_code == 201

    await runner.run(acme, Period(2026, 10), "acme")  # now: after the resolution
    october = (await api.get("/v1/invoices/INV-acme-2026-10")).json()["lines"]
    assert {(ln["kind"], ln["rule"], ln["amount"]) for ln in october} >= {
        ("dispute_credit", "B9", "-5.00"), ("nrc", "B5", "75.00"),  # cancelled 23 h before FOC
        ("previous_balance", None, "46.15")}  # fmt: skip

    # A correction of an issued invoice is a credit note; the invoice stays as it was.
    cn = await api.post("/v1/invoices/INV-acme-2026-09/credit-notes", json={
        "reason": "goodwill", "lines": [{"description": "goodwill credit", "amount": "3.00"}]})
    assert cn.status_code == 201 and cn.json()["total"] == "-3.00"
    assert (await api.get("/v1/invoices/INV-acme-2026-09")).json()["total"] == "46.15"


@pytest.mark.rule("B10")
async def test_billing_account_api_sets_the_credit_level(acme, api) -> None:
    put = await api.put("/v1/billing/accounts/acme",
                        json={"credit_limit": "40", "deposit": "10.00", "enforce_ld_minimum": True})
    assert put.status_code == 200
    assert (await inventory.load(acme)).customers["acme"].credit_limit == D("50")
    bad = await api.put("/v1/billing/accounts/acme", json={"rboc_surcharge_per_minute": "0.07"})
    assert bad.status_code == 422 and "rboc_surcharge_per_minute" in bad.text
    assert (await api.put("/v1/billing/accounts/nobody", json={})).status_code == 404
