"""A sipcc process: the roles it runs, wired to Postgres, Redis and each other.

`sipcc serve` runs every role in one process; `sipcc gateway|rater|e911|cdr-writer|api`
runs one. Every role serves /healthz, /readyz and /metrics on the HTTP listener, so each
is probed and scraped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import time

import asyncpg
import redis.asyncio as aioredis
import uvicorn

from e911_router.notify import Notifier
from gateway.dialogs import DialogStore, NoDialogStore
from gateway.edge import Edge
from gateway.guard import SCANNER_AGENTS, Guard, GuardPolicy, TrustedSources
from gateway.overload import Overload, OverloadPolicy
from gateway.proxy import Local
from gateway.routing import Router
from gateway.sip.digest import DigestAuthenticator
from gateway.transports import tls_client_context, tls_server_context
from rater.admission import FailOpen, FailOpenSlots, LocalSlots, RedisSlots, SlotStore
from rater.caps import CustomerCaps, FailOpenRate, LocalRate, RateCounter, RedisRate
from rater.credit import CreditGuard
from services import api, db, gctune, inventory, logs, metrics, redisconn
from services.cdr import CdrEvent, CdrPublisher, CdrWriter
from services.cdr_spool import CdrSpool
from services.config import LOOPBACK_DATABASE_URL, LOOPBACK_REDIS_URL, Settings
from services.live_config import InventoryFeed
from services.saturation import SaturationSampler
from services.spend import SpendSampler
from services.workers import WorkerSupervisor

log = logs.get("node")
ALL_ROLES = frozenset({"gateway", "rater", "e911", "cdr-writer", "api"})


class DependencyError(RuntimeError):
    pass


async def _watch_loop_lag(node: Node, period: float = 0.1) -> None:
    """Every SIP message waits behind whatever blocks the loop; measure it (ops' p99) and
    tell the edge's overload control."""
    loop = asyncio.get_running_loop()
    cpu = time.process_time()
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        now = loop.time()
        lag = max(0.0, now - before - period)
        metrics.event_loop_lag_seconds.observe(lag)
        spent = time.process_time() - cpu
        cpu += spent
        if node.edge is not None and node.edge.overload is not None:
            node.edge.overload.note_lag(lag)
            node.edge.overload.note_cpu(spent / (now - before))
            if node.edge.transports is not None:
                node.edge.overload.note_backlog(node.edge.transports.udp_backlog())


class Node:
    def __init__(self, settings: Settings, roles: frozenset[str] = ALL_ROLES) -> None:
        self.settings = settings
        self.roles = roles
        self.inventory = inventory.Inventory()
        self.pool: asyncpg.Pool | None = None
        self.redis: aioredis.Redis | None = None
        self.edge: Edge | None = None
        self.writer: CdrWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self.feed: InventoryFeed | None = None
        self._http: uvicorn.Server | None = None
        self._stop = asyncio.Event()
        self.workers: WorkerSupervisor | None = None
        self.credit: CreditGuard | None = None
        self._writer_task: asyncio.Task | None = None
        self.publisher: CdrPublisher | None = None
        self._replayer: asyncio.Task | None = None

    @property
    def database_url(self) -> str:
        return self.settings.database_url or LOOPBACK_DATABASE_URL

    async def start(self) -> None:
        s = self.settings
        try:
            self.pool = await db.create_pool(self.database_url)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DependencyError(f"cannot reach Postgres at {self.database_url}: {exc}") from None
        self.redis = await self._connect_redis()
        self.feed = InventoryFeed(self.pool, self.database_url, self._install_inventory)
        await self.feed.start()
        self._tasks.append(asyncio.create_task(_watch_loop_lag(self)))
        self._tasks.append(asyncio.create_task(self._watch_dependencies()))

        self.credit = (
            CreditGuard.redis(self.redis, s.redis_prefix, lambda: self.inventory)
            if self.redis is not None
            else CreditGuard.local(lambda: self.inventory)
        )
        self._tasks.append(asyncio.create_task(self._reconcile_credit_loop()))
        # On-site 911 notifications (Kari's Law): recorded by the edge, delivered from here.
        self.e911_notifier = Notifier(self.pool, lambda: self.inventory.e911.webhooks)
        if s.worker_index == 0:
            self._tasks.append(asyncio.create_task(self.e911_notifier.run()))
        if "gateway" in self.roles:
            slots: SlotStore
            rate: RateCounter
            fail_open = None
            if self.redis is not None:
                slots = RedisSlots(self.redis, s.redis_prefix, s.slot_ttl_seconds)
                rate = RedisRate(self.redis, s.redis_prefix)
                if s.admission_on_redis_down == "fail-open":
                    fail_open = FailOpen()
                    slots = FailOpenSlots(slots, LocalSlots(s.slot_ttl_seconds), fail_open)
                    rate = FailOpenRate(rate, LocalRate(), fail_open)
            else:
                slots = LocalSlots(s.slot_ttl_seconds)
                rate = LocalRate()
            host, port = s.sip_public
            shared = None
            if s.sip_workers > 1:
                if self.redis is None:
                    raise DependencyError("several SIP workers need Redis for trunk slots")
                shared, port = port, port + 1 + s.worker_index
            tls_server = None
            if s.tls_port and s.tls_cert and s.tls_key:
                tls_server = tls_server_context(s.tls_cert, s.tls_key)
            elif s.tls_port:
                raise DependencyError("SIPCC_TLS_PORT needs SIPCC_TLS_CERT and SIPCC_TLS_KEY")
            name = f"{socket.gethostname()}:{port}"
            dialogs = (
                DialogStore(self.redis, s.redis_prefix, name, s.max_call_seconds + 3600)
                if self.redis is not None
                else NoDialogStore()
            )
            self.edge = Edge(
                Router(lambda: self.inventory, slots, self._authenticator(), self.credit,
                       e911_notifier=self.e911_notifier, caps=CustomerCaps(slots, rate),
                       fail_open=fail_open),
                Local(host, port, s.tls_port if tls_server else None,
                      aliases=(shared,) if shared else ()),
                self._cdr_sink(),
                name=name,
                dialogs=dialogs,
                max_call_seconds=s.max_call_seconds,
                ring_timeout_seconds=s.ring_timeout_seconds,
                e911_failover_seconds=s.e911_failover_seconds,
                slot_refresh_seconds=s.slot_refresh_seconds,
                overload=self._overload(),
            )
            self.edge.guard = self.edge.router.guard = self._guard()
            await self.edge.start(
                *s.sip_addr, tcp=s.sip_tcp, tls=tls_server, tls_port=s.tls_port,
                client_tls=tls_client_context(s.tls_ca, s.tls_verify),
                reuse_port=s.sip_workers > 1,
                own_port=s.sip_addr[1] + 1 + s.worker_index if s.sip_workers > 1 else None,
            )  # fmt: skip
            if s.sip_workers > 1 and s.worker_index == 0:
                self.workers = WorkerSupervisor(s)
                self._tasks.append(asyncio.create_task(self.workers.run()))
            if s.worker_index == 0:  # the slots are shared: one sampler per process group
                sampler = SaturationSampler(slots, lambda: self.inventory, s.saturation_top)
                self._tasks.append(asyncio.create_task(sampler.run(s.saturation_sample_seconds)))
                spend = SpendSampler(self.credit, s.spend_top)
                self._tasks.append(asyncio.create_task(spend.run(s.spend_sample_seconds)))
        if "cdr-writer" in self.roles and self.redis is not None:
            self.writer = CdrWriter(
                self.pool, self.redis, s.redis_prefix + s.cdr_stream, batch_max=s.cdr_batch_max,
                claim_idle_ms=int(s.cdr_claim_idle_seconds * 1000),
            )  # fmt: skip
            await self.writer.ensure_group()
            self._writer_task = asyncio.create_task(self.writer.run())
            self._tasks.append(self._writer_task)
        if "api" in self.roles:  # F2: matured referral credits post themselves; invitations go out
            from services.referrals import worker as referral_worker
            from services.referrals.clock import SystemClock

            self._tasks.append(asyncio.create_task(referral_worker.run(self.pool, s, SystemClock())))
        host, port = s.http_addr
        config = uvicorn.Config(
            api.create_app(self), host=host, port=port, log_config=None, access_log=False,
            lifespan="off", loop="none",
        )  # fmt: skip
        self._http = uvicorn.Server(config)
        self._http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._tasks.append(asyncio.create_task(self._http.serve()))
        while not self._http.started:
            await asyncio.sleep(0.01)
            if self._tasks[-1].done():
                self._tasks[-1].result()
        gctune.install(tune=s.gc_tuning)
        if s.gc_tuning:
            self._tasks.append(asyncio.create_task(gctune.run_young_collections()))
        log.info("node_started", roles=sorted(self.roles), http=s.http_listen, sip=s.sip_listen)

    def _overload(self) -> Overload | None:
        s = self.settings
        policy = OverloadPolicy(
            max_cps=s.max_cps, max_lag_seconds=s.overload_max_lag_seconds,
            max_pending=s.overload_max_pending, cpu_target=s.overload_cpu_target,
            max_backlog_bytes=s.overload_max_backlog_bytes,
            retry_after_seconds=s.overload_retry_after_seconds,
        )  # fmt: skip
        return Overload(policy, asyncio.get_running_loop().time()) if policy.enabled else None

    def _guard(self) -> Guard | None:
        s = self.settings
        if not s.sip_guard:
            return None
        agents = SCANNER_AGENTS if s.sip_guard_scanner_agents is None else tuple(
            a.strip() for a in s.sip_guard_scanner_agents.split(",") if a.strip())  # fmt: skip
        policy = GuardPolicy(
            rate=s.sip_guard_rate, burst=s.sip_guard_burst, ban_seconds=s.sip_guard_ban_seconds,
            scanner_agents=agents, max_auth_failures=s.sip_guard_auth_failures,
            max_user_failures=s.sip_guard_user_failures,
        )  # fmt: skip
        return Guard(policy, TrustedSources(lambda: self.inventory))

    def _authenticator(self) -> DigestAuthenticator:
        secret = self.settings.digest_secret
        if not secret:
            # Nonces signed with a per-process key: fine for one process; several edges
            # behind one address must share SIPCC_DIGEST_SECRET.
            secret = secrets.token_hex(32)
        algorithms = tuple(a.strip() for a in self.settings.digest_algorithms.split(",") if a.strip())
        return DigestAuthenticator(self.settings.sip_realm, secret.encode(), algorithms=algorithms)

    async def _connect_redis(self) -> aioredis.Redis | None:
        url = self.settings.redis_url or LOOPBACK_REDIS_URL
        client = redisconn.connect(url)
        try:
            await client.ping()
            return client
        except (OSError, aioredis.ConnectionError) as exc:
            await client.aclose()
            if self.settings.allow_in_process_admission:
                log.warning(
                    "redis_unavailable_in_process_admission",
                    url=url,
                    error=str(exc),
                    note="trunk slots kept in this process: run only ONE process",
                )
                return None
            raise DependencyError(f"cannot reach Redis at {url}: {exc}") from None

    def _cdr_sink(self):
        if self.redis is not None:
            stream = self.settings.redis_prefix + self.settings.cdr_stream
            self.publisher = CdrPublisher(
                self.redis, stream, CdrSpool(self.settings.spool_dir, stream)
            )
            self._replayer = asyncio.create_task(self.publisher.run_replayer())
            self._tasks.append(self._replayer)
            return self.publisher.publish
        # No Redis (single-process dev node): write straight to Postgres, same idempotent path.
        writer = CdrWriter(self.pool, None, "", batch_max=1)  # type: ignore[arg-type]

        async def direct(event: CdrEvent) -> None:
            await writer._store([event])

        return direct

    def _install_inventory(self, inv: inventory.Inventory) -> None:
        self.inventory = inv

    async def reload_inventory(self) -> None:
        assert self.feed is not None
        await self.feed.reload("manual")

    async def _reconcile_credit_loop(self, every: float = 300) -> None:
        """Rule A6: usage counters drift (a crash between call end and counter); the
        CDR table is the truth, re-read now and then. Only one process needs to."""
        if self.settings.worker_index != 0:
            return
        while True:
            try:
                assert self.credit is not None and self.pool is not None
                await self.credit.reconcile(self.pool)
            except Exception as exc:
                log.warning("credit_reconcile_failed", error=repr(exc))
            await asyncio.sleep(every)

    async def _watch_dependencies(self, every: float = 10) -> None:
        # Alerts need the answer even where nothing polls /readyz (outside Kubernetes).
        while True:
            await self.check_dependencies()
            await asyncio.sleep(every)

    async def check_dependencies(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            assert self.pool is not None
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), 2)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"error: {exc!r}"
        if self.redis is None:
            checks["redis"] = "ok" if self.settings.allow_in_process_admission else "error: none"
        else:
            try:
                await asyncio.wait_for(self.redis.ping(), 2)
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {exc!r}"
        for name, result in checks.items():
            metrics.dependency_up.labels(dependency=name).set(1 if result == "ok" else 0)
        return checks

    async def stop(self, drain_seconds: float = 0) -> None:
        if self.workers is not None:
            self.workers.stop()
        if self.edge is not None:
            await self.edge.stop(drain_seconds)
        if self.publisher is not None and self.publisher.spool is not None:
            if self._replayer is not None:
                self._replayer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._replayer
            try:  # what the spool holds goes to the stream now, or to the next start
                await asyncio.wait_for(self.publisher.replay(), 5)
            except Exception as exc:
                log.warning("cdr_spool_kept", error=repr(exc))
            self.publisher.spool.close()
        if self.writer is not None:
            self.writer.stop()
            if self._writer_task is not None:
                # Its last read may hold entries it never wrote: stop it, then write
                # everything still pending for this consumer and on the stream.
                self._writer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writer_task
            try:
                await asyncio.wait_for(self.writer.drain(), 10)
            except Exception as exc:  # left on the stream: the next writer takes it
                log.warning("cdr_drain_incomplete", error=repr(exc))
        if self._http is not None:
            self._http.should_exit = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.feed is not None:
            await self.feed.stop()
        if self.workers is not None:
            await asyncio.to_thread(self.workers.wait, drain_seconds + 5)
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()

    async def run_until_signalled(self, drain_seconds: float | None = None) -> None:
        if drain_seconds is None:
            drain_seconds = self.settings.drain_seconds
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        await self._stop.wait()
        log.info("node_stopping", drain_seconds=drain_seconds)
        await self.stop(drain_seconds)
