"""CPU per Redis batch: redis-py's pipeline against services/redisbatch.py's own round trip.

Sends the same batch of SET commands (200-byte values, as big as a dialog record) many
times each way to the real Redis and reports process CPU per batch, for batch sizes the
edge sees on the wire (one command when idle, a few to a few dozen under load).

    .venv/bin/python bench/redis_batch.py [--batches 3000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import uvloop

from services.redisbatch import RedisBatcher
from services.redisconn import connect


async def main(url: str, batches: int) -> None:
    client = connect(url)
    prefix = f"bench:redisbatch:{uuid.uuid4().hex[:8]}:"
    batcher = RedisBatcher(client)
    try:
        for size in (1, 4, 16, 64):
            cmds = [("SET", f"{prefix}{i}", "v" * 200, "EX", 60) for i in range(size)]
            t = time.process_time()
            for _ in range(batches):
                async with client.pipeline(transaction=False) as pipe:
                    for args in cmds:
                        pipe.execute_command(*args)
                    await pipe.execute(raise_on_error=False)
            pipeline = (time.process_time() - t) / batches * 1e6
            t = time.process_time()
            for _ in range(batches):
                await asyncio.gather(*(batcher.execute(*args) for args in cmds))
            own = (time.process_time() - t) / batches * 1e6
            print(f"batch of {size:3d}: redis-py pipeline {pipeline:6.0f} µs   "
                  f"RedisBatcher {own:6.0f} µs (incl. futures and gather)")  # fmt: skip
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    a = ap.parse_args()
    uvloop.run(main(a.redis, a.batches))
