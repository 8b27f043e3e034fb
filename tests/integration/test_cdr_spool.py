"""CDR spool: events that Redis could not take are kept on disk, in order, and replayed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from services import redisconn
from services.cdr import CdrEvent, CdrPublisher
from services.cdr_spool import CdrSpool
from tests.integration.test_cdr_writer import event
from tests.support.node import free_port


def dead_redis():
    """A client of a port nobody listens on: every command fails to connect."""
    return redisconn.connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1)


async def stream_call_ids(client, stream: str) -> list[str]:
    entries = await client.xrange(stream)
    return [CdrEvent.from_json(line).call_id for _id, data in entries
            for line in data[b"e"].split(b"\n")]  # fmt: skip


async def test_spool_survives_a_restart_and_replays_in_order(tmp_path, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}spool-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    down = dead_redis()
    first = CdrPublisher(down, stream, CdrSpool(tmp_path, stream))
    for i in range(120):
        await first.publish(event(i, now))
    assert first.spool.waiting == 120 and first.spool.active
    first.spool.close()  # the process ends (its lock goes); the file stays
    await down.aclose()

    # The next process adopts the file at start and sends it before anything new.
    second = CdrPublisher(redis_client, stream, CdrSpool(tmp_path, stream))
    assert second.spool.waiting == 120
    await second.publish(event(500, now))  # queued behind the spooled events
    assert await second.replay() == 121
    assert await stream_call_ids(redis_client, stream) == [f"call-{i}" for i in [*range(120), 500]]
    assert not list(tmp_path.glob("*.spool"))  # replayed, removed
    await second.publish(event(501, now))  # spool empty: straight to the stream
    assert (await stream_call_ids(redis_client, stream))[-1] == "call-501"
    assert not list(tmp_path.glob("*.spool"))


async def test_publishes_during_a_replay_keep_their_order(tmp_path, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}spool-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    down = dead_redis()
    pub = CdrPublisher(down, stream, CdrSpool(tmp_path, stream))
    await asyncio.gather(*(pub.publish(event(i, now)) for i in range(3000)))
    assert pub.spool.waiting == 3000
    # Redis is back (the same publisher, now talking to a live server).
    pub._client = redis_client
    pub._r.client = redis_client
    publishing = asyncio.gather(*(pub.publish(event(i, now)) for i in range(3000, 4000)))
    sent = await pub.replay()
    await publishing
    sent += await pub.replay()
    assert sent == 4000
    assert await stream_call_ids(redis_client, stream) == [f"call-{i}" for i in range(4000)]
    await down.aclose()


async def test_a_torn_last_line_is_left_out_the_rest_replayed(tmp_path, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}spool-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    name = tmp_path / f"{stream.replace(':', '_')}.1.999999.spool"
    whole = "".join(event(i, now).to_json() + "\n" for i in range(3))
    name.write_text(whole + event(3, now).to_json()[:40])  # died mid-write, before fsync
    pub = CdrPublisher(redis_client, stream, CdrSpool(tmp_path, stream))
    assert await pub.replay() == 3
    assert await stream_call_ids(redis_client, stream) == ["call-0", "call-1", "call-2"]


async def test_a_live_processs_spool_is_not_taken(tmp_path, redis_client, redis_prefix) -> None:
    stream = f"{redis_prefix}spool-{uuid.uuid4().hex[:6]}"
    down = dead_redis()
    alive = CdrPublisher(down, stream, CdrSpool(tmp_path, stream))
    await alive.publish(event(1, datetime.now(UTC)))
    other = CdrPublisher(redis_client, stream, CdrSpool(tmp_path, stream))
    assert other.spool.waiting == 0  # locked by a live publisher: not an orphan
    alive.spool.close()
    assert other.spool.adopt_orphans() == 1
    assert await other.replay() == 1
    await down.aclose()
