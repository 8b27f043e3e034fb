"""services/redisbatch.py on real Redis: the commands of one loop turn go out as one
pipeline, in order, each caller gets its own reply or error, and the replies of a big batch
wake their callers a slice at a time, so the event loop reads its sockets in between (an
INVITE arriving during a batch of hundreds gets its 100 Trying without waiting for all of
them: docs/BENCHMARKS.md, "the batcher's slices")."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from services.redisbatch import RedisBatcher, batcher_for


async def test_one_turn_is_one_pipeline_in_order_with_each_reply_its_own(redis_client, redis_prefix) -> None:
    b = RedisBatcher(redis_client)
    key = redis_prefix + "batch-order"
    futs = [b.execute("RPUSH", key, str(i)) for i in range(50)]
    bad = b.execute("INCR", redis_prefix + "batch-order")  # a list is no counter
    assert [await f for f in futs] == list(range(1, 51))
    with pytest.raises(ResponseError):
        await bad
    assert [int(v) for v in await redis_client.lrange(key, 0, -1)] == list(range(50))


async def test_a_big_batch_wakes_its_callers_a_slice_at_a_time(redis_client, redis_prefix) -> None:
    b = RedisBatcher(redis_client, wake_at_once=32)
    key = redis_prefix + "batch-slices"
    order: list[str] = []

    async def caller(i: int) -> None:
        await b.execute("INCR", key)
        order.append(f"call{i}")

    async def other_work() -> None:
        # Stands for a datagram's callback: one step per loop turn until every caller
        # is back; it must get turns between the slices, not only after the last.
        while sum(what.startswith("call") for what in order) < 200:
            await asyncio.sleep(0)
            order.append("other")

    await asyncio.gather(*(caller(i) for i in range(200)), other_work())
    assert int(await redis_client.get(key)) == 200
    calls = [i for i, what in enumerate(order) if what.startswith("call")]
    # Other work ran between the first and the last caller woken, not only before or after.
    assert any(what == "other" for what in order[calls[0]:calls[-1]])
    # No slice woke more than 32 callers in a row.
    run = longest = 0
    for what in order:
        run = run + 1 if what.startswith("call") else 0
        longest = max(longest, run)
    assert longest <= 32


async def test_a_dead_connection_fails_every_caller_of_the_batch(redis_prefix) -> None:
    from services import redisconn

    client = redisconn.connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    b = RedisBatcher(client)
    futs = [b.execute("INCR", redis_prefix + "x") for _ in range(3)]
    for f in futs:
        with pytest.raises(Exception):  # noqa: B017 (redis-py's ConnectionError)
            await f
    await client.aclose()


async def test_a_script_redis_lost_is_loaded_again_and_the_batch_goes_on(redis_client, redis_prefix) -> None:
    # NOSCRIPT is read off the wire like any reply: the next command's reply is its own.
    b = RedisBatcher(redis_client)
    script = "return tonumber(ARGV[1]) + 1"
    sha = "0" * 40  # never loaded: EVALSHA answers NOSCRIPT, eval falls back to EVAL
    after = b.execute("SET", redis_prefix + "after-noscript", "v")
    assert await b.eval(script, sha, [], [41]) == 42
    assert await after == b"OK"


async def test_stores_that_share_a_client_share_its_batches(redis_client, redis_prefix) -> None:
    assert batcher_for(redis_client) is batcher_for(redis_client)
    b = batcher_for(redis_client)
    a, c = b.execute("SET", redis_prefix + "shared", "1"), b.execute("GET", redis_prefix + "shared")
    assert (await a, await c) == (b"OK", b"1")


async def test_after_redis_drops_the_connection_the_next_batch_reconnects(redis_client, redis_prefix) -> None:
    b = RedisBatcher(redis_client)
    own_id = await b.execute("CLIENT", "ID")
    assert await redis_client.execute_command("CLIENT", "KILL", "ID", own_id) == 1
    with pytest.raises(Exception):  # noqa: B017 (the killed connection: redis-py's ConnectionError)
        await b.execute("PING")
    assert await b.execute("PING") == b"PONG"
