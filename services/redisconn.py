"""Redis clients. A blocking pool: a burst of calls waits for a free connection (bounded)
instead of failing with 'Too many connections' — admission must not fail on a burst."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, max_connections: int = 64, timeout: float = 5.0) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout
    )
    return aioredis.Redis(connection_pool=pool)
