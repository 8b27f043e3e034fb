"""On-site notification of 911 calls (Kari's Law, RAY BAUM'S Act): the customer's webhook
gets the TN, the address and the time of every 911 call, retried until delivered.

An outbox in Postgres (`e911_notifications`, one row per call): the edge records the
notification off the call path (the call never waits on it), and a delivery loop POSTs
due rows as JSON, backing off after each failure (1 s, 2 s, 4 s … at most 5 minutes) and
never giving up. Rows are claimed with SKIP LOCKED, so several nodes may run the loop.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import httpx

from e911_router.routing import E911Route
from services import logs, metrics

log = logs.get("e911_notify")

MAX_BACKOFF_SECONDS = 300

_ENQUEUE = """
INSERT INTO e911_notifications (call_id, customer_id, url, payload) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (call_id) DO NOTHING
"""
_DUE = """
SELECT call_id, url, payload, attempts FROM e911_notifications
WHERE delivered_at IS NULL AND next_attempt_at <= now()
ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_DELIVERED = "UPDATE e911_notifications SET delivered_at = now(), attempts = attempts + 1 WHERE call_id = $1"
_FAILED = """
UPDATE e911_notifications SET attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + make_interval(secs => $3)
WHERE call_id = $1
"""


def payload(call_id: str, route: E911Route, at: datetime) -> dict:
    a = route.address
    return {
        "event": "e911_call", "call_id": call_id, "customer_id": route.customer_id,
        "tn": route.callback, "at": at.astimezone(UTC).isoformat(), "level": route.level,
        "address": a.one_line() if a else None, "civic": a.to_dict() if a else None,
        "route": [t.label for t in route.targets],
    }  # fmt: skip


def backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempts - 1)))


class Notifier:
    def __init__(self, pool: asyncpg.Pool, webhooks, *, timeout: float = 5) -> None:
        self._pool = pool
        self._webhooks = webhooks  # () -> {customer id: URL}, from the inventory snapshot
        self._timeout = timeout
        self._tasks: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # One client for the notifier's life, made when first needed: building one loads
        # the CA bundle into a new SSL context, 25-30 ms of the event loop that the edge's
        # INVITEs and the rater's requests share (a new client per pass was a stall a
        # second in every node, bench/rater_bench.py). Kept connections are a bonus.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def record(self, call_id: str, route: E911Route) -> None:
        """Called by the edge for every 911 call; returns at once."""
        url = self._webhooks().get(route.customer_id or "")
        if not url:
            return
        body = json.dumps(payload(call_id, route, datetime.now(UTC)))
        task = asyncio.get_running_loop().create_task(self._enqueue(call_id, route, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enqueue(self, call_id: str, route: E911Route, url: str, body: str) -> None:
        try:
            await self._pool.execute(_ENQUEUE, call_id, route.customer_id, url, body)
        except Exception as exc:  # the call goes on; the log keeps what was not recorded
            log.error("e911_notification_not_recorded", call_id=call_id, error=repr(exc), payload=body)

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass over the due notifications; returns how many were delivered."""
        delivered = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(_DUE, limit):
                error = await _post(self._http(), row["url"], row["payload"])
                if error is None:
                    await conn.execute(_DELIVERED, row["call_id"])
                    metrics.e911_notifications_total.labels(result="delivered").inc()
                    delivered += 1
                else:
                    await conn.execute(_FAILED, row["call_id"], error[:500],
                                       backoff(row["attempts"] + 1))  # fmt: skip
                    metrics.e911_notifications_total.labels(result="failed").inc()
                    log.warning("e911_notification_failed", call_id=row["call_id"], error=error,
                                attempts=row["attempts"] + 1)  # fmt: skip
        return delivered

    async def run(self, every: float = 1.0) -> None:
        try:
            while True:
                try:
                    await self.deliver_due()
                except Exception as exc:  # Postgres away: try again next round
                    log.warning("e911_notify_pass_failed", error=repr(exc))
                await asyncio.sleep(every)
        finally:
            await self.close()


async def _post(client: httpx.AsyncClient, url: str, body: str) -> str | None:
    try:
        resp = await client.post(url, content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}"
