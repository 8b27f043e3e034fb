"""Redis through Sentinel (services/redisconn.py; deploy/k8s runs Redis this way): sipcc
finds the master by asking the Sentinels, and after a failover writes to the new master.
Real redis-server processes (a master, a replica, a Sentinel) on free ports of the test's own."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_sync
from hypothesis import given
from hypothesis import strategies as st

from rater.admission import RedisSlots
from services import redisconn
from tests.support.node import free_port
from tests.support.private_services import PrivateRedis


def test_sentinel_urls_parse() -> None:
    t = redisconn.parse_sentinel_url("redis+sentinel://:s%40cret@a:26379,[::1]:26380/sipcc/2")
    assert t == redisconn.SentinelTarget((("a", 26379), ("::1", 26380)), "sipcc", 2, "s@cret")
    assert redisconn.parse_sentinel_url("redis+sentinel://h:1/m").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [("redis+sentinel://h/sipcc", "is not host:port"),
     ("redis+sentinel://h:1", "the path must be"),
     ("redis+sentinel://h:1/sipcc/x", "is not a number"),
     ("redis://h:1/0", r"not a redis\+sentinel")],
)  # fmt: skip
def test_bad_sentinel_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(redisconn.RedisUrlError, match=says):
        redisconn.parse_sentinel_url(url)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    try:
        redisconn.parse_sentinel_url("redis+sentinel://" + text)
    except redisconn.RedisUrlError:
        pass


class _Sentinel:
    def __init__(self, workdir: Path, master_port: int) -> None:
        self.port = free_port()
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor sipcc 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds sipcc 2000\nsentinel failover-timeout sipcc 10000\n"
        )
        self.proc = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=open(workdir / "sentinel.log", "ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = redis_sync.Redis(port=self.port, decode_responses=True)
        self.wait(lambda: self.client.ping())

    @staticmethod
    def wait(check, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis_sync.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached: {getattr(check, '__name__', check)}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def sentinel_setup(tmp_path):
    master = PrivateRedis(tmp_path / "master", aof=False).start()
    replica = PrivateRedis(tmp_path / "replica", aof=False).start()
    to_replica = redis_sync.Redis(port=replica.port, decode_responses=True)
    to_replica.replicaof("127.0.0.1", master.port)
    _Sentinel.wait(lambda: to_replica.info("replication")["master_link_status"] == "up")
    sentinel = _Sentinel(tmp_path, master.port)

    def replica_known() -> bool:  # the Sentinel has found the replica and talks to it
        found = sentinel.client.sentinel_slaves("sipcc")
        return len(found) == 1 and found[0]["master-link-status"] == "ok" and not (
            {"disconnected", "s_down"} & set(found[0]["flags"].split(",")))  # fmt: skip

    sentinel.wait(replica_known)
    yield master, replica, sentinel
    sentinel.stop()
    for r in (master, replica):
        r.kill()


async def test_slots_follow_a_sentinel_failover(sentinel_setup) -> None:
    master, replica, sentinel = sentinel_setup
    client = redisconn.connect(f"redis+sentinel://127.0.0.1:{sentinel.port}/sipcc/0", timeout=2)
    slots = RedisSlots(client, "t:", ttl_seconds=60)
    try:
        assert await slots.acquire("tg", "call-1", 2)
        assert redis_sync.Redis(port=master.port).zcard("t:slots:tg") == 1  # on the master

        sentinel.client.execute_command("SENTINEL", "FAILOVER", "sipcc")
        sentinel.wait(lambda: int(sentinel.client.sentinel_get_master_addr_by_name("sipcc")[1])
                      == replica.port)  # fmt: skip
        sentinel.wait(lambda: redis_sync.Redis(port=replica.port).info("replication")["role"]
                      == "master")  # fmt: skip
        # …and the old master demoted (until then it still takes writes: Sentinel's own
        # window, which a real failover — the master gone — does not have).
        sentinel.wait(lambda: redis_sync.Redis(port=master.port).info("replication")["role"]
                      == "slave")  # fmt: skip

        # The next commands find the new master (a refused write to the demoted one, or a
        # dropped connection, makes the client ask the Sentinel again).
        for _ in range(100):
            try:
                if await slots.acquire("tg", "call-2", 2):
                    break
            except (redis_sync.exceptions.ReadOnlyError, OSError,
                    redis_sync.exceptions.ConnectionError):  # fmt: skip
                await asyncio.sleep(0.1)
        on_new_master = redis_sync.Redis(port=replica.port, decode_responses=True)
        assert set(on_new_master.zrange("t:slots:tg", 0, -1)) == {"call-1", "call-2"}
        assert not await slots.acquire("tg", "call-3", 2)  # A1 holds on the new master
    finally:
        await client.aclose()
