"""Dialog state that outlives the edge process, in Redis.

A call is saved when it is forwarded and again when it is answered, and removed when it
ends. An edge that restarts (same name: host and SIP port) loads what it was carrying:
answered calls are followed again — their BYE is routed, their slot lease refreshed, their
CDR written when they end — and calls that were still ringing are closed as `truncated`,
because their transactions died with the process. Either way no call vanishes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import fields
from datetime import datetime
from decimal import Decimal

import redis.asyncio as aioredis

from gateway.calls import Call
from rater.decision import Decision
from services.redisbatch import batcher_for

_FIELDS = ("call_id", "server_tx", "transport", "out_transport", "state", "caller_tag",
           "caller_target", "callee_target", "caller_from", "callee_to", "caller_cseq",
           "callee_cseq", "session_expires", "final_status", "cancelled", "acked")  # fmt: skip


_DECISION_FIELDS = tuple(f.name for f in fields(Decision))


def to_record(call: Call, now_mono: float, now_wall: datetime) -> str:
    rec: dict = {f: getattr(call, f) for f in _FIELDS}
    rec["source"] = list(call.source)
    rec["started_wall"] = call.started_wall.isoformat()
    rec["answered_ago"] = None if call.answered_mono is None else now_mono - call.answered_mono
    rec["saved_wall"] = now_wall.isoformat()
    o = call.outcome
    if o is not None:
        d = None
        if o.decision is not None:
            d = {f: getattr(o.decision, f) for f in _DECISION_FIELDS}
            if d["rate_per_minute"] is not None:
                d["rate_per_minute"] = str(d["rate_per_minute"])
        rec["outcome"] = {
            "decision": d, "trunk": o.trunk.id if o.trunk else None, "addr": o.addr,
            "request_uri": o.request_uri, "slot_held": o.slot_held,
            "customer_lease": o.customer_lease, "emergency_level": o.emergency_level,
        }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"))


def decision_from(d: dict | None) -> Decision | None:
    if d is None:
        return None
    d = dict(d)
    if d.get("rate_per_minute") is not None:
        d["rate_per_minute"] = Decimal(d["rate_per_minute"])
    return Decision(**d)


class DialogStore:
    persistent = True

    def __init__(self, client: aioredis.Redis, prefix: str, edge: str, ttl_seconds: int) -> None:
        self._r = batcher_for(client)
        self._index = f"{prefix}dialogs:{edge}"
        self._key = f"{prefix}dialog:{edge}:"
        # A record outlives the longest call a little; an abandoned one cleans itself up.
        self._ttl = ttl_seconds

    async def save(self, record_id: str, record: str) -> None:
        # Batched commands keep their order, so a later remove always follows this save.
        await asyncio.gather(
            self._r.execute("SET", self._key + record_id, record, "EX", self._ttl),
            self._r.execute("SADD", self._index, record_id),
        )

    async def remove(self, record_id: str) -> None:
        await asyncio.gather(
            self._r.execute("DEL", self._key + record_id),
            self._r.execute("SREM", self._index, record_id),
        )

    async def load(self) -> list[dict]:
        client = self._r.client
        ids = [i.decode() if isinstance(i, bytes) else i for i in await client.smembers(self._index)]
        if not ids:
            return []
        raw = await client.mget([self._key + i for i in ids])
        out = []
        gone = []
        for record_id, value in zip(ids, raw, strict=True):
            if value is None:
                gone.append(record_id)
            else:
                out.append(json.loads(value))
        if gone:
            await client.srem(self._index, *gone)
        return out


class NoDialogStore:
    """Without Redis a restart forgets its calls; their slots are in-process too."""

    persistent = False

    async def save(self, record_id: str, record: str) -> None:
        return None

    async def remove(self, record_id: str) -> None:
        return None

    async def load(self) -> list[dict]:
        return []
