"""The referral programmes over HTTP (services/referrals/routes.py, mounted by
services/api.py): a controllable clock on the app, real Postgres, Redis, an SMTP server
(aiosmtpd) and an SMS gateway (a loopback HTTP server) for the outbox."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from services.api import create_app
from services.config import Settings
from services.referrals.clock import FixedClock
from tests.support import apikeys
from tests.support.node import free_port

DAY0 = date(2026, 1, 10)


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmsGateway(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        SmsGateway.received.append(json.loads(body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class ApiNode:
    """What the HTTP app reads from its node: the pool, Redis and the settings."""

    def __init__(self, pool, redis, settings) -> None:
        self.pool, self.redis, self.settings = pool, redis, settings

    async def check_dependencies(self) -> dict[str, str]:
        return {"postgres": "ok", "redis": "ok"}


@pytest.fixture
async def api(pg, pg_dsn, redis_client, redis_prefix):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    sms = ThreadingHTTPServer(("127.0.0.1", 0), SmsGateway)
    threading.Thread(target=sms.serve_forever, daemon=True).start()
    SmsGateway.received = []
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="referrals@sipcc.test",
        sms_provider_url=f"http://127.0.0.1:{sms.server_address[1]}/send",
        referral_link_base="https://signup.test/?coupon=", referral_secret="k",
        redis_prefix=redis_prefix + "api:", referral_code_attempts=3,
    )  # fmt: skip
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    app = create_app(ApiNode(pool, redis_client, settings))
    app.state.referral_clock = FixedClock(DAY0)
    await pg.execute(
        "INSERT INTO rate_plans (id, name, interstate_per_minute, intrastate_per_minute, "
        "local_per_minute) VALUES ('plan', 'plan', 0.01, 0.01, 0)"
    )
    for cid in ("alice", "bob", "owner", "client"):
        await pg.execute("INSERT INTO customers (id, name, rate_plan_id) VALUES ($1, $1, 'plan')",
                         cid)  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sipcc.test",
                                 headers=await apikeys.headers(pool)) as client:  # fmt: skip
        yield client, app.state.referral_clock, inbox
    await pool.close()
    sms.shutdown()
    sms.server_close()
    smtp.stop()


@pytest.mark.rule("F2")
async def test_refer_a_friend_over_http_through_time(api) -> None:
    client, clock, inbox = api
    r = await client.post("/v1/referrals", json={"referrer_id": "alice",
                                                 "friend_email": "bob@mail.test"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/referrals/outbox/deliver")).json()["sent"] == 1
    coupon = re.search(r"coupon=(\S+)", inbox.messages[0].get_payload(decode=True).decode())[1]
    r = await client.post("/v1/referrals/signup", json={"coupon": coupon, "customer_id": "bob",
                                                        "plan_fee": "24.99"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["credit"] == "49.98000" and r.json()["credit_posts_on"] == "2026-04-10"

    clock.set(DAY0 + timedelta(days=89))
    assert (await client.post("/v1/referrals/settle")).json() == {"credited": 0, "forfeited": 0}
    clock.set(DAY0 + timedelta(days=90))
    assert (await client.post("/v1/referrals/settle")).json() == {"credited": 1, "forfeited": 0}
    view = (await client.get("/v1/referrals/customers/alice")).json()
    assert (view["signed_up"], view["credited"]) == (1, "49.98000")
    r = await client.get("/v1/referrals/customers/alice/adjustments",
                         params={"period_start": "2026-04-01", "period_end": "2026-04-30",
                                 "basic_fee": "19.99"})  # fmt: skip
    assert [(x["kind"], x["amount"], x["rule"]) for x in r.json()["lines"]] == [
        ("referral_credit", "-49.98000", "F2")]  # fmt: skip


@pytest.mark.rule("F6")
async def test_invite_code_over_http_with_sms_and_guessing_limit(api) -> None:
    client, _, _ = api
    code = (await client.get("/v1/invite-codes/owner")).json()["code"]
    r = await client.post("/v1/invite-codes/owner/invitations",
                          json={"channel": "sms", "to": "(727) 555-0100"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/referrals/outbox/deliver")).json()["sent"] == 1
    assert SmsGateway.received[0]["to"] == "+17275550100" and code in SmsGateway.received[0]["text"]

    r = await client.put("/v1/referrals/customers/client/profile",
                         json={"activated_on": str(DAY0 - timedelta(days=2))})  # fmt: skip
    assert r.status_code == 200, r.text
    wrong = await client.post("/v1/invite-codes/register", json={"client_id": "client",
                                                                 "code": "0000000000"})  # fmt: skip
    assert wrong.status_code == 404 and wrong.json()["detail"]["rule"] == "F5"
    r = await client.post("/v1/invite-codes/register", json={"client_id": "client", "code": code})
    assert r.status_code == 201, r.text
    assert r.json()["owner_discount"]["percent"] == 20
    view = (await client.get("/v1/invite-codes/owner")).json()
    assert [c["id"] for c in view["clients"]] == ["client"]
    assert view["current_discount"] == {"percent": 20, "until": "2026-04-10"}
    # Attempts are counted per client and per address: the fourth from this address within
    # the window is over the limit (3), whoever it is for.
    r = await client.post("/v1/invite-codes/register", json={"client_id": "bob", "code": code})
    assert r.status_code == 409 and "no PBX registration date" in r.json()["detail"]["error"]
    r = await client.post("/v1/invite-codes/register", json={"client_id": "bob", "code": code})
    assert r.status_code == 429 and "too many" in r.json()["detail"]["error"]


@pytest.mark.rule("F4")
async def test_affiliate_link_click_purchase_over_http(api, pg) -> None:
    client, clock, _ = api
    await pg.execute("TRUNCATE affiliates CASCADE")  # not under customers: not emptied by `pg`
    r = await client.put("/v1/affiliates/blog", json={"id": "blog", "name": "Blog",
                                                      "commission_rate": "0.1"})  # fmt: skip
    assert r.status_code == 200, r.text
    link = (await client.get("/v1/affiliates/blog/link")).json()["link"]
    assert (await client.post("/v1/affiliates/clicks",
                              json={"link": link, "visitor_id": "v1"})).status_code == 201  # fmt: skip
    clock.advance(days=3)
    r = await client.post("/v1/affiliates/purchases",
                          json={"visitor_id": "v1", "order_ref": "o-1", "amount": "50"})  # fmt: skip
    assert r.json() == {"attributed": True, "affiliate_id": "blog", "commission": "5.00000",
                        "order_ref": "o-1"}  # fmt: skip
    ledger = (await client.get("/v1/affiliates/blog/commissions")).json()
    assert ledger["total_commission"] == "5.00000"


async def test_bad_input_gets_a_clear_error_and_stores_nothing(api, pg) -> None:
    client, _, _ = api
    r = await client.post("/v1/referrals", content=b"{not json",
                          headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and "JSON" in r.text
    r = await client.post("/v1/referrals", json={"referrer_id": "alice", "friend_email": "nope"})
    assert r.status_code == 422 and r.json()["detail"]["error"] == "not an e-mail address: 'nope'"
    r = await client.post("/v1/referrals", json={"referrer_id": "ghost", "friend_email": "a@b.cd"})
    assert r.status_code == 404 and "no customer 'ghost'" in r.json()["detail"]["error"]
    r = await client.post("/v1/referrals/signup", json={"coupon": "x" * 10, "customer_id": "bob",
                                                        "plan_fee": "-1"})  # fmt: skip
    assert r.status_code == 422 and "plan_fee" in r.text
    assert await pg.fetchval("SELECT count(*) FROM raf_referrals") == 0
    assert await pg.fetchval("SELECT count(*) FROM referral_outbox") == 0
