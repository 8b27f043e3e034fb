"""GET /v1/cdrs (filters, cursor pages), the month's CSV export, and partition upkeep."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import types
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest

from services import cdr_partitions
from services.api import create_app
from services.cdr import CdrWriter
from tests.integration.test_cdr_writer import event
from tests.support import apikeys
from tests.support.node import ROOT

NOV = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pool(pg_dsn, pg):
    p = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=3)
    yield p
    await p.close()


@pytest.fixture
async def api(pool):
    app = create_app(types.SimpleNamespace(pool=pool))
    headers = await apikeys.headers(pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=headers) as c:  # fmt: skip
        yield c


async def store(pool, events) -> None:
    await CdrWriter(pool, None, "")._store(events)  # type: ignore[arg-type]


def calls(n: int, when: datetime, **changes):
    out = []
    for i in range(n):
        e = event(i, when + timedelta(seconds=i % 7))  # ties in started_at on purpose
        e.call_id = f"{changes.get('prefix', 'c')}-{i:04d}"
        for k, v in changes.items():
            if k != "prefix":
                setattr(e, k, v)
        out.append(e)
    return out


async def test_cursor_pages_cover_every_row_once_in_order(api, pool) -> None:
    await store(pool, calls(250, NOV) + calls(30, NOV, prefix="b", customer_id="beta"))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"customer_id": "acme", "period": "2026-11", "limit": 40}
        if cursor:
            params["cursor"] = cursor
        r = await api.get("/v1/cdrs", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [(c["started_at"], c["call_id"]) for c in body["cdrs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 7 and len(seen) == 250 and len(set(seen)) == 250
    assert seen == sorted(seen)
    row = (await api.get("/v1/cdrs", params={"customer_id": "beta", "limit": 1})).json()["cdrs"][0]
    assert row["amount"] == "0.00120" and row["rate_per_minute"] == "0.01200"  # exact, as text


async def test_filters_by_trunk_disposition_and_time(api, pool) -> None:
    await store(pool, calls(5, NOV) + calls(3, NOV, prefix="busy", disposition="busy", trunk_id="t2")
                + calls(4, NOV + timedelta(days=40), prefix="dec"))  # fmt: skip
    got = await api.get("/v1/cdrs", params={"trunk_id": "t2", "disposition": "busy"})
    assert [c["call_id"] for c in got.json()["cdrs"]] == ["busy-0000", "busy-0001", "busy-0002"]
    dec = await api.get("/v1/cdrs", params={"from": "2026-12-01T00:00:00Z"})
    assert len(dec.json()["cdrs"]) == 4
    nov = await api.get("/v1/cdrs", params={"period": "2026-11"})
    assert len(nov.json()["cdrs"]) == 8


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"period": "2026-13"}, 422, "period: month must be YYYY-MM, got '2026-13'"),
        ({"cursor": "not-a-cursor"}, 400, "cursor: not a cursor this API returned"),
        ({"disposition": "maybe"}, 422, "disposition"),
        ({"from": "2026-11-01T00:00:00"}, 422, "from: give a time zone"),
        ({"limit": "0"}, 422, "limit"),
    ],
)
async def test_bad_queries_say_what_is_wrong(api, params, status, words) -> None:
    r = await api.get("/v1/cdrs", params=params)
    assert r.status_code == status and words in r.text


async def test_month_export_streams_csv(api, pool) -> None:
    await store(pool, calls(4500, NOV) + calls(3, NOV + timedelta(days=40), prefix="dec"))
    r = await api.get("/v1/cdrs/export", params={"month": "2026-11"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4500 and len({x["call_id"] for x in rows}) == 4500
    assert rows[0]["amount"] == "0.00120" and rows[0]["answered_at"].startswith("2026-11-03")
    bad = await api.get("/v1/cdrs/export", params={"month": "November"})
    assert bad.status_code == 422 and "month: month must be YYYY-MM" in bad.text


async def test_partitions_ahead_and_detach_for_archive(pool, pg, pg_dsn) -> None:
    async with pool.acquire() as conn:
        await cdr_partitions.ensure_ahead(conn, date(2031, 5, 17))
        months = [m for _, m in await cdr_partitions.attached(conn)]
    assert {date(2031, 5, 1), date(2031, 6, 1), date(2031, 7, 1), date(2031, 8, 1)} <= set(months)
    await store(pool, calls(3, datetime(2031, 5, 2, tzinfo=UTC), prefix=uuid.uuid4().hex[:6]))

    out = await sipcc(pg_dsn, "cdr", "detach", "--before", "2031-06")
    assert out.returncode == 0, out.stderr
    assert "archive_cdrs_2031_05" in out.stdout
    assert await pg.fetchval("SELECT count(*) FROM cdrs WHERE started_at >= '2031-05-01'") == 0
    assert await pg.fetchval("SELECT count(*) FROM archive_cdrs_2031_05") == 3
    # A late event of the detached month still finds a partition (a new one).
    await store(pool, calls(1, datetime(2031, 5, 9, tzinfo=UTC), prefix="late"))
    assert await pg.fetchval("SELECT count(*) FROM cdrs WHERE started_at >= '2031-05-01'") == 1
    for (name,) in await pg.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'archive_cdrs_%'"):
        await pg.execute(f'DROP TABLE "{name}"')  # every month before 2031-06 went
    bad = await sipcc(pg_dsn, "cdr", "detach", "--before", "June")
    assert bad.returncode == 2 and "--before: month must be YYYY-MM, got 'June'" in bad.stderr


async def test_cli_export_writes_the_month(pool, pg_dsn, tmp_path) -> None:
    await store(pool, calls(10, NOV))
    out = await sipcc(pg_dsn, "cdr", "export", "--month", "2026-11", "-o", str(tmp_path / "nov.csv"))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader((tmp_path / "nov.csv").open()))
    assert len(rows) == 10 and rows[0]["customer_id"] == "acme"


async def sipcc(dsn: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIPCC_DATABASE_URL": dsn}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli", *args], env=env,
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
