"""API keys for tests' HTTP clients: real keys, stored hashed like any other."""

from __future__ import annotations

import asyncio
import threading

import asyncpg

from services import auth


async def headers(db, scopes: str = "all", name: str = "test") -> dict[str, str]:
    """Authorization headers of a fresh key with `scopes`; `db` is a pool, a connection or
    a DSN. Unlimited rate: tests measure behaviour, not the limiter (tests of their own)."""
    conn = await asyncpg.connect(db) if isinstance(db, str) else db
    try:
        key = await auth.create_key(conn, name, auth.parse_scopes(scopes), auth.MAX_RATE)
    finally:
        if isinstance(db, str):
            await conn.close()
    return {"Authorization": f"Bearer {key}"}


def headers_sync(dsn: str, scopes: str = "all", name: str = "test") -> dict[str, str]:
    """The same from synchronous code, even inside a running event loop (e2e tests)."""
    out: dict = {}

    def run() -> None:
        out["h"] = asyncio.run(headers(dsn, scopes, name))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["h"]
