"""The referral programmes' background duty in every API process: post matured credits
(F2 "posts automatically 90 days after") and send queued invitations. Both are safe to run
in several processes at once (row locks)."""

from __future__ import annotations

import asyncio

import asyncpg

from services import logs
from services.referrals import outbox, refer_a_friend
from services.referrals.clock import Clock

log = logs.get("referrals.worker")


async def run_once(pool: asyncpg.Pool, settings, clock: Clock) -> None:
    email, sms = outbox.senders(settings)
    async with pool.acquire() as conn:
        await refer_a_friend.settle(conn, clock.today())
        await outbox.deliver_pending(conn, email, sms)


async def run(pool: asyncpg.Pool, settings, clock: Clock, every: float = 60.0) -> None:
    while True:
        try:
            await run_once(pool, settings, clock)
        except (OSError, asyncpg.PostgresError) as exc:  # Postgres away: try again later
            log.warning("referral worker pass failed", error=str(exc))
        await asyncio.sleep(every)
