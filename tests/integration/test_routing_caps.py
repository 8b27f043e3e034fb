"""The router's order of checks with the customer caps (gateway/routing.py), on the example
provisioning from Postgres and real Redis: a call refused by its trunk group's channels
(A1) gives the customer lease back; 911 meets no cap (E7); with Redis unreachable the
router fails closed unless fail-open is configured (docs/SECURITY.md)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from gateway.routing import Router
from gateway.sip.message import parse_message
from rater.admission import REDIS_DOWN, FailOpen, FailOpenSlots, LocalSlots, RedisSlots
from rater.caps import CustomerCaps, FailOpenRate, LocalRate, RedisRate, lease_key
from rater.credit import CreditGuard
from services import inventory, provision, redisconn
from tests.integration.test_provision import EXAMPLE
from tests.support.node import free_port


def invite(dnis: str, call_id: str, ani: str = "+17275550100") -> object:
    return parse_message((
        f"INVITE sip:{dnis}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-" + call_id + "\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{ani}@127.0.0.2>;tag=a{call_id}\r\n"
        f"To: <sip:{dnis}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode())  # fmt: skip


@pytest.fixture
async def inv(pg):
    await provision.apply(pg, provision.load_file(EXAMPLE))
    loaded = await inventory.load(pg)
    acme = loaded.customers["acme"]
    # acme-main has 2 trunks; the customer a cap of 3 (so A1 refuses first here).
    loaded.customers["acme"] = dataclasses.replace(acme, max_concurrent_calls=3)
    return loaded


@pytest.mark.rule("A1")
@pytest.mark.rule("A7")
@pytest.mark.rule("E7")
async def test_trunk_refusal_gives_the_customer_lease_back_and_911_is_not_capped(
    inv, redis_client, redis_prefix
) -> None:
    prefix = f"{redis_prefix}route-{uuid.uuid4().hex[:6]}:"
    slots = RedisSlots(redis_client, prefix, 30)
    router = Router(lambda: inv, slots, caps=CustomerCaps(slots, RedisRate(redis_client, prefix)))
    outs = [await router.route_invite(invite("+12125551234", f"c{n}"), "127.0.0.2", f"c{n}")
            for n in range(3)]  # fmt: skip
    assert [o.status for o in outs] == [0, 0, 503] and outs[2].rule == "A1"
    assert [o.customer_lease for o in outs] == [True, True, False]
    assert await slots.in_use(lease_key("acme")) == 2  # the refused call's lease went back
    # Its cap reached (three leases: one taken by hand), 911 still routes.
    assert await slots.acquire(lease_key("acme"), "elsewhere", 3)
    e911 = await router.route_invite(invite("911", "e1", "+17275550103"), "127.0.0.2", "e1")
    assert e911.emergency_level is not None and not e911.customer_lease and not e911.slot_held
    # An ordinary call now meets the customer's cap before the trunk group.
    await router.release_customer(outs[0], "c0")
    await slots.release("acme-main", "c0")
    assert await slots.acquire(lease_key("acme"), "elsewhere-2", 3)
    capped = await router.route_invite(invite("+12125551234", "c9"), "127.0.0.2", "c9")
    assert (capped.status, capped.rule) == (503, "A7") and "cap of 3 concurrent" in capped.reason
    assert await slots.in_use("acme-main") == 1


async def test_redis_unreachable_fails_closed_unless_fail_open(inv) -> None:
    dead = redisconn.connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    credit = CreditGuard.redis(dead, "x:", lambda: inv)  # acme has a credit limit (A6)
    try:
        closed = Router(lambda: inv, RedisSlots(dead, "x:", 30), credit=credit,
                        caps=CustomerCaps(RedisSlots(dead, "x:", 30), RedisRate(dead, "x:")))  # fmt: skip
        with pytest.raises(REDIS_DOWN):  # the edge answers 503 (cause "unavailable")
            await closed.route_invite(invite("+12125551234", "d0"), "127.0.0.2", "d0")
        fo = FailOpen()
        slots = FailOpenSlots(RedisSlots(dead, "x:", 30), LocalSlots(30), fo)
        opened = Router(lambda: inv, slots, credit=credit, fail_open=fo,
                        caps=CustomerCaps(slots, FailOpenRate(RedisRate(dead, "x:"), LocalRate(), fo)))  # fmt: skip
        outs = [await opened.route_invite(invite("+12125551234", f"d{n}"), "127.0.0.2", f"d{n}")
                for n in range(3)]  # fmt: skip
        assert [o.status for o in outs] == [0, 0, 503]  # acme-main's 2 trunks, on this edge
        e911 = await closed.route_invite(invite("911", "e2", "+17275550103"), "127.0.0.2", "e2")
        assert e911.forward and e911.emergency_level is not None  # 911 even fail-closed
    finally:
        await dead.aclose()
