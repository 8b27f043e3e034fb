"""Issue 11 (live configuration) on real Postgres: every committed change reaches a node's
inventory through NOTIFY, however it was made (migration 0011's triggers), a node does not
reload while nothing changes, and a node whose LISTEN session died listens again and
reloads, so a change made meanwhile is not lost."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services import metrics
from services.live_config import InventoryFeed


class Installed:
    def __init__(self) -> None:
        self.snapshots: list = []

    def __call__(self, inv) -> None:
        self.snapshots.append(inv)

    async def until(self, predicate, what: str, timeout: float = 10) -> None:
        for _ in range(int(timeout / 0.02)):
            if self.snapshots and predicate(self.snapshots[-1]):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"never installed: {what} ({len(self.snapshots)} snapshots)")


@pytest.fixture
async def feed(pg, pg_dsn):
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    installed = Installed()
    feeds: list[InventoryFeed] = []

    async def start(**kw) -> InventoryFeed:
        f = InventoryFeed(pool, pg_dsn, installed, **kw)
        await f.start()
        feeds.append(f)
        return f

    yield start, installed
    for f in feeds:
        await f.stop()
    await pool.close()


def reloads(cause: str) -> float:
    return metrics.inventory_reloads_total.labels(cause=cause)._value.get()


async def test_a_change_made_by_hand_reaches_the_node_without_an_explicit_notify(pg, feed) -> None:
    start, installed = feed
    await start()
    assert "hand-made" not in installed.snapshots[-1].carriers
    # An operator's own SQL: no NOTIFY of its own, only the table's trigger.
    await pg.execute("INSERT INTO carriers (id, name, gateway_uri) VALUES "
                     "('hand-made', 'Hand Made', 'sip:192.0.2.9:5060')")  # fmt: skip
    await installed.until(lambda inv: "hand-made" in inv.carriers, "the carrier inserted by hand")
    await pg.execute("UPDATE carriers SET gateway_uri = 'sip:192.0.2.10:5060' WHERE id = 'hand-made'")
    await installed.until(lambda inv: inv.carriers["hand-made"].gateway_uri.endswith("10:5060"),
                          "the carrier updated by hand")  # fmt: skip
    await pg.execute("DELETE FROM carriers WHERE id = 'hand-made'")
    await installed.until(lambda inv: "hand-made" not in inv.carriers, "the carrier deleted by hand")


async def test_no_reload_while_nothing_changes(pg, feed) -> None:
    start, installed = feed
    await start(resync_seconds=0.1)
    before = len(installed.snapshots)
    resyncs = reloads("resync")
    # A statement that changes no row sends no signal either.
    await pg.execute("UPDATE carriers SET name = name WHERE false")
    await asyncio.sleep(1.0)  # ten resync ticks: the old feed reloaded on each
    assert len(installed.snapshots) == before
    assert reloads("resync") == resyncs


async def test_a_lost_listen_session_is_found_and_the_change_made_meanwhile_loaded(pg, feed) -> None:
    start, installed = feed
    f = await start(resync_seconds=0.2, probe_timeout=1)
    resyncs = reloads("resync")
    listener_pid = f._listener.get_server_pid()
    # The server ends the LISTEN session (a failover, an idle-session killer, a restart),
    # and a change is committed while nobody listens.
    assert await pg.fetchval("SELECT pg_terminate_backend($1)", listener_pid)
    await pg.execute("INSERT INTO carriers (id, name, gateway_uri) VALUES "
                     "('while-away', 'While Away', 'sip:192.0.2.11:5060')")  # fmt: skip
    await installed.until(lambda inv: "while-away" in inv.carriers, "the change made while away")
    assert reloads("resync") >= resyncs + 1
    assert f._listener.get_server_pid() != listener_pid
    # And the new session hears the next change.
    await pg.execute("DELETE FROM carriers WHERE id = 'while-away'")
    await installed.until(lambda inv: "while-away" not in inv.carriers, "the next change")


async def test_a_failed_reload_after_a_lost_session_is_tried_again(pg, feed, monkeypatch) -> None:
    from services import live_config

    start, installed = feed
    f = await start(resync_seconds=0.2, probe_timeout=1)
    real_load = live_config.inventory.load
    failures = []

    async def flaky_load(conn):
        if not failures:  # Postgres still coming back: the first reload fails
            failures.append(1)
            raise OSError("connection refused")
        return await real_load(conn)

    monkeypatch.setattr(live_config.inventory, "load", flaky_load)
    assert await pg.fetchval("SELECT pg_terminate_backend($1)", f._listener.get_server_pid())
    await pg.execute("INSERT INTO carriers (id, name, gateway_uri) VALUES "
                     "('after-retry', 'After Retry', 'sip:192.0.2.12:5060')")  # fmt: skip
    await installed.until(lambda inv: "after-retry" in inv.carriers, "the change, on the retry")
    assert failures == [1]
