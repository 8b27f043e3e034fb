"""On-site 911 notification: recorded per call, retried until the customer's webhook takes it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from e911_router.address import normalize
from e911_router.notify import Notifier, backoff
from e911_router.routing import E911Route, Target
from tests.support.webhook import Hook


@pytest.mark.rule("E1")
async def test_notification_is_retried_until_delivered(pg, pg_dsn) -> None:
    await pg.execute("TRUNCATE e911_notifications")
    hook = Hook(failures=2)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    notifier = Notifier(pool, lambda: {"acme": hook.url})
    try:
        route = E911Route("e911", "E3", "test", (Target("psap", "sip:127.0.0.4", "fl-pinellas"),),
                          "+17275550100", normalize(line="600 Cleveland St Ste 200, Clearwater, FL 33755"),
                          None, "acme")  # fmt: skip
        notifier.record("call-1", route)
        notifier.record("call-1", route)  # the same call twice: one notification
        for _ in range(50):
            if await pg.fetchval("SELECT count(*) FROM e911_notifications"):
                break
            await asyncio.sleep(0.05)
        for attempt in (1, 2):
            assert await notifier.deliver_due() == 0
            row = await pg.fetchrow("SELECT attempts, last_error, delivered_at FROM e911_notifications")
            assert (row["attempts"], row["last_error"], row["delivered_at"]) == (attempt, "HTTP 503", None)
            # Due again after its backoff; made due now rather than waited for.
            await pg.execute("UPDATE e911_notifications SET next_attempt_at = now()")
        assert await notifier.deliver_due() == 1
        assert await notifier.deliver_due() == 0  # delivered once, never again
    finally:
        await notifier.close()
        await pool.close()
        hook.close()
    [sent] = hook.received
    assert sent["tn"] == "+17275550100" and sent["customer_id"] == "acme"
    assert sent["address"] == "600 CLEVELAND ST STE 200, CLEARWATER, FL 33755"
    assert sent["event"] == "e911_call" and sent["at"] and sent["call_id"] == "call-1"
    assert [backoff(n) for n in (1, 2, 3, 10, 20)] == [1, 2, 4, 300, 300]
