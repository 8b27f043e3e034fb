"""Redis clients. A blocking pool: a burst of calls waits for a free connection (bounded)
instead of failing with 'Too many connections' — admission must not fail on a burst.

`redis://…` connects to one server. `redis+sentinel://[:password@]host:port[,host:port…]/
service[/db]` asks the Sentinels where the master of `service` is, and asks again when a
connection to it fails: a Sentinel failover costs the calls being admitted at that moment
a retry, not a restart of every sipcc process (deploy/k8s runs Redis this way).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"


class RedisUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced [ in an IPv6 address
        raise RedisUrlError(f"{url!r}: {exc}") from None
    if parts.scheme != SENTINEL_SCHEME:
        raise RedisUrlError(f"{url!r}: not a {SENTINEL_SCHEME}:// URL")
    creds, _, hosts = parts.netloc.rpartition("@")
    password = unquote(creds.partition(":")[2]) or None if creds else None
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):
            raise RedisUrlError(f"{url!r}: sentinel {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise RedisUrlError(f"{url!r}: the path must be /service or /service/db")
    if len(path) == 2 and not (path[1].isascii() and path[1].isdigit()):
        raise RedisUrlError(f"{url!r}: database {path[1]!r} is not a number")
    return SentinelTarget(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, password)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The master's address from the Sentinels, the waiting of the blocking pool."""


def connect(url: str, max_connections: int = 64, timeout: float = 5.0) -> aioredis.Redis:
    if url.startswith(SENTINEL_SCHEME + "://"):
        target = parse_sentinel_url(url)
        sentinel = Sentinel(
            list(target.sentinels), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return sentinel.master_for(
            target.service, connection_pool_class=_BlockingSentinelPool,
            max_connections=max_connections, timeout=timeout, db=target.db,
            password=target.password, socket_connect_timeout=timeout,
        )  # fmt: skip
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout
    )
    return aioredis.Redis(connection_pool=pool)
