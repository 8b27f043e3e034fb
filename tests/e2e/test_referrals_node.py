"""A real `sipcc serve` posts matured refer-a-friend credits and sends queued invitations by
itself (F2: the credit "posts automatically"), over a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller

from services.referrals import refer_a_friend
from services.referrals.refer_a_friend import SignUp, token_hash
from tests.e2e.conftest import example
from tests.support.node import free_port


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.recipients += envelope.rcpt_tos
        return "250 OK"


@pytest.mark.rule("F2")
async def test_node_settles_credits_and_sends_invitations(start_node, pg) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        await pg.execute(
            "INSERT INTO rate_plans (id, name, interstate_per_minute, intrastate_per_minute, "
            "local_per_minute) VALUES ('p', 'p', 0, 0, 0)"
        )
        for cid in ("alice", "bob"):
            await pg.execute("INSERT INTO customers (id, name, rate_plan_id) "
                             "VALUES ($1, $1, 'p')", cid)  # fmt: skip
        signed = datetime.now(UTC).date() - timedelta(days=100)
        await refer_a_friend.refer(pg, "alice", "bob@mail.test", signed, link_base="x",
                                   daily_cap=5)  # fmt: skip
        await pg.execute("UPDATE raf_referrals SET token_hash = $1", token_hash("coupon-0001"))
        await refer_a_friend.sign_up(pg, "coupon-0001", SignUp("bob", Decimal("19.99")), signed)
        await refer_a_friend.refer(pg, "alice", "carol@mail.test", signed, link_base="x",
                                   daily_cap=5)  # fmt: skip

        node = await start_node(example(), SIPCC_SMTP_HOST="127.0.0.1",
                                SIPCC_SMTP_PORT=str(smtp.port))  # fmt: skip
        for _ in range(300):  # the worker's first pass runs as the node starts
            credited = await pg.fetchval("SELECT status FROM raf_referrals WHERE friend_id = 'bob'")
            if credited == "credited" and len(inbox.recipients) == 2:
                break
            await asyncio.sleep(0.1)
        assert credited == "credited"
        assert await pg.fetchval("SELECT settled_on FROM raf_referrals WHERE friend_id = 'bob'") \
            == signed + timedelta(days=90)  # fmt: skip
        assert sorted(inbox.recipients) == ["bob@mail.test", "carol@mail.test"]
        assert 'sipcc_referral_events_total{event="credited",programme="refer_a_friend"} 1.0' \
            in node.metrics()  # fmt: skip
    finally:
        smtp.stop()
