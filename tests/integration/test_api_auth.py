"""API keys over HTTP with a real Postgres: created by the CLI, hashed at rest, scoped,
revocable; /healthz, /readyz and /metrics stay open."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import asyncpg
import httpx
import pytest

from services import auth
from services.api import create_app
from services.config import Settings
from tests.support.node import ROOT


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIPCC_DATABASE_URL": dsn, "SIPCC_LOG_JSON": "false"}
    return subprocess.run([sys.executable, "-m", "services.cli", "apikey", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip


class Node(types.SimpleNamespace):
    async def check_dependencies(self) -> dict:
        return {"postgres": "ok"}


@pytest.fixture
async def app(pg_dsn, pg):
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    # No cache: a revoked key must fail on its next request in this test.
    yield create_app(Node(pool=pool, settings=Settings(api_key_cache_seconds=0)))
    await pool.close()


def client(app, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                             headers=headers)  # fmt: skip


async def test_cli_key_is_shown_once_stored_hashed_scoped_and_revocable(app, pg_dsn, pg) -> None:
    made = cli(pg_dsn, "create", "--name", "grafana", "--scopes", "ops", "--rate", "100")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id, secret = auth.KEY_RE.fullmatch(key).groups()
    row = await pg.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
    assert row["scopes"] == ["ops"] and row["name"] == "grafana"
    dump = str(dict(row)).encode() + bytes(row["secret_hash"])
    assert secret.encode() not in dump  # only the hash is kept
    listed = cli(pg_dsn, "list")
    assert key_id in listed.stdout and secret not in listed.stdout

    async with client(app, key) as ops, client(app) as anon:
        # ops reads any /v1 route, writes none.
        assert (await ops.get("/v1/cdrs", params={"customer_id": "acme"})).status_code == 200
        assert (await ops.get("/v1/invoices", params={"customer_id": "acme"})).status_code == 200
        refused = await ops.post("/v1/rate", json={"trunk_id": "t", "dnis": "+12125551234"})
        assert refused.status_code == 403 and "lacks the scope 'rating'" in refused.text
        no_key = await anon.get("/v1/cdrs")
        assert no_key.status_code == 401 and no_key.headers["www-authenticate"] == "Bearer"
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await anon.get(path)).status_code == 200, path

        assert cli(pg_dsn, "revoke", key_id).returncode == 0
        assert (await ops.get("/v1/cdrs", params={"customer_id": "acme"})).status_code == 401
        assert cli(pg_dsn, "revoke", key_id).returncode == 1  # already revoked: says so

    metrics = (await client(app).get("/metrics")).text
    assert 'sipcc_api_auth_refusals_total{cause="scope"}' in metrics
    assert 'sipcc_api_auth_refusals_total{cause="revoked"}' in metrics


def test_cli_refuses_bad_input_by_name(pg_dsn) -> None:
    bad = cli(pg_dsn, "create", "--name", "x", "--scopes", "billing,root")
    assert bad.returncode == 2 and "unknown scope 'root'" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli(pg_dsn, "create", "--name", "", "--scopes", "ops")
    assert bad.returncode == 2 and "key name" in bad.stderr
    bad = cli(pg_dsn, "revoke", "DROP TABLE")
    assert bad.returncode == 2 and "12 hex digits" in bad.stderr
