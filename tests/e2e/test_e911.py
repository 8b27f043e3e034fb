"""Issue 5: real 911 calls from a SIPp PBX through the edge to SIPp PSAPs and the national
call center (127.0.0.4 E911 PSAP, 127.0.0.5 basic PSAP, 127.0.0.6 national call center).

The PSAPs run with -trace_msg, so the test reads the INVITE exactly as it arrived."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from rater.admission import RedisSlots
from tests.e2e.conftest import example
from tests.support.node import free_port
from tests.support.sipp import Uas, run_uac, write_injection
from tests.support.webhook import Hook

CA = "{urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr}"
HOSTS = {"e911": "127.0.0.4", "basic": "127.0.0.5", "national": "127.0.0.6"}


@pytest.fixture
def ports() -> dict[str, int]:
    return {k: free_port(h, socket.SOCK_DGRAM) for k, h in HOSTS.items()}


def e911_doc(ports: dict[str, int], **trunk) -> dict:
    """The example provisioning, its PSAPs and national call center on this test's ports."""
    doc = example(**(trunk or {"trunks": 2}))
    e = doc["e911"]
    e["national_call_center"] = f"sip:{HOSTS['national']}:{ports['national']}"
    e["psaps"][0]["route"] = f"sip:{HOSTS['e911']}:{ports['e911']}"
    e["psaps"][1]["route"] = f"sip:{HOSTS['basic']}:{ports['basic']}"
    return doc


class Peer:
    """A SIPp UAS standing in for a PSAP or the national call center."""

    def __init__(self, workdir: Path, kind: str, port: int, scenario: str = "uas.xml") -> None:
        self.workdir = workdir
        # An INVITE with a PIDF-LO is over 1300 bytes, so it goes by TCP (RFC 3261 §18.1.1).
        tcp = ("-t", "t1") if kind == "e911" else ()
        self.uas = Uas(workdir, ip=HOSTS[kind], port=port, scenario=scenario,
                       extra=("-trace_msg", *tcp))  # fmt: skip

    def invites(self) -> list[str]:
        """Every INVITE this peer received, as text (retransmissions included)."""
        out = []
        for log in self.workdir.glob("*_messages.log"):
            for chunk in re.split(r"-{20,}", log.read_text(errors="replace")):
                if "message received" in chunk and "\nINVITE " in chunk:
                    out.append(chunk[chunk.index("\nINVITE ") + 1 :].strip() + "\r\n")
        return out

    def stop(self) -> None:
        self.uas.stop()


@pytest.fixture
def peers(tmp_path, ports):
    started: list[Peer] = []

    def start(kind: str, scenario: str = "uas.xml") -> Peer:
        peer = Peer(tmp_path / f"{kind}-{len(started)}", kind, ports[kind], scenario)
        started.append(peer)
        return peer

    yield start
    for p in started:
        p.stop()


def call_911(node, tmp_path: Path, tn: str, name: str, **kw):
    inf = write_injection(tmp_path / f"{name}.csv", [("911", tn)])
    return run_uac(tmp_path / name, f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1, limit=1,
                   duration_ms=200, timeout=30, **kw)  # fmt: skip


async def cdrs(pg, n: int, timeout: float = 15) -> list:
    rows: list = []
    for _ in range(int(timeout / 0.1)):
        rows = await pg.fetch("SELECT * FROM cdrs ORDER BY started_at")
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    return rows


def header(invite: str, name: str) -> str | None:
    for line in invite.split("\r\n\r\n", 1)[0].replace("\r\n", "\n").split("\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def pidf_of(invite: str) -> ET.Element:
    start = invite.index("<?xml")
    end = invite.index("</presence>") + len("</presence>")
    return ET.fromstring(invite[start:end].encode())


@pytest.mark.rule("E1")
@pytest.mark.rule("E2")
@pytest.mark.rule("E5")
@pytest.mark.rule("E6")
async def test_911_routes_by_registered_address(pg, start_node, peers, ports, tmp_path) -> None:
    e911, basic, national = peers("e911"), peers("basic"), peers("national")
    hook = Hook(failures=1)  # on-site notification: the first delivery fails, then retried
    doc = e911_doc(ports)
    doc["customers"][0]["e911_webhook"] = hook.url
    node = await start_node(doc)

    # E911 PSAP: callback number in PAI, location by value (RFC 6442) matching the address.
    r = call_911(node, tmp_path, "+17275550100", "e911")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    [invite] = {i for i in e911.invites()}
    assert invite.startswith("INVITE sip:911@127.0.0.4:")
    assert "+17275550100" in header(invite, "P-Asserted-Identity")
    geo = header(invite, "Geolocation")
    assert geo.startswith("<cid:") and header(invite, "Geolocation-Routing") == "yes"
    assert header(invite, "Content-Type").startswith("multipart/mixed;boundary=")
    assert "Content-Type: application/sdp" in invite and "m=audio " in invite
    assert f"Content-ID: <{geo[5:-1]}>" in invite
    assert "Content-Type: application/pidf+xml" in invite
    civic = {el.tag.removeprefix(CA): el.text for el in pidf_of(invite).iter() if el.tag.startswith(CA)}
    assert civic == {"civicAddress": None, "country": "US", "A1": "FL", "A2": "PINELLAS",
                     "A3": "CLEARWATER", "RD": "CLEVELAND", "STS": "ST", "HNO": "600",
                     "UNIT": "STE 200", "PC": "33755"}  # fmt: skip

    # Basic PSAP: the call, no location.
    r = call_911(node, tmp_path, "+17275550106", "basic")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    [invite] = {i for i in basic.invites()}
    assert invite.startswith("INVITE sip:911@127.0.0.5:")
    assert header(invite, "Geolocation") is None and "pidf" not in invite
    assert header(invite, "Content-Type") == "application/sdp"

    # No PSAP serves Fort Myers (E1), and an unconfirmed move (E5): national call center.
    for tn, name in (("+17275550108", "uncovered"), ("+17275550109", "moved")):
        r = call_911(node, tmp_path, tn, name)
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    invites = national.invites()
    assert {header(i, "P-Asserted-Identity").split("@")[0] for i in invites} == {
        "<sip:+17275550108", "<sip:+17275550109"}  # fmt: skip
    assert all(header(i, "Geolocation") is None for i in invites)
    assert len(e911.invites()) == 1 and len(basic.invites()) == 1

    rows = await cdrs(pg, 4)
    got = {r["ani"]: (r["emergency_level"], r["emergency_route"], r["disposition"]) for r in rows}
    assert got == {
        "+17275550100": ("e911", "psap:fl-pinellas", "answered"),
        "+17275550106": ("basic", "psap:fl-hillsborough", "answered"),
        "+17275550108": ("national", "national", "answered"),
        "+17275550109": ("national", "national", "answered"),
    }
    assert all(r["amount"] == Decimal("0") and r["jurisdiction"] == "emergency" for r in rows)
    for _ in range(100):  # retried after a 1 s backoff
        if len(hook.received) == 4:
            break
        await asyncio.sleep(0.1)
    hook.close()
    assert sorted((n["tn"] or "", n["level"]) for n in hook.received) == [
        ("+17275550100", "e911"), ("+17275550106", "basic"), ("+17275550108", "national"),
        ("+17275550109", "national")]  # fmt: skip
    assert all(n["at"] and n["customer_id"] == "acme" for n in hook.received)
    m = node.metrics()
    assert 'sipcc_e911_calls_total{level="e911",route="psap"} 1.0' in m
    assert 'sipcc_e911_calls_total{level="national",route="national"} 2.0' in m


@pytest.mark.rule("E4")
async def test_psap_503_fails_over_to_national(pg, start_node, peers, ports, tmp_path) -> None:
    failing = peers("e911", "uas_503.xml")
    national = peers("national")
    node = await start_node(e911_doc(ports))
    r = call_911(node, tmp_path, "+17275550101", "failover")
    # The caller sees the national call center's 200, never the PSAP's 503.
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    assert "503" not in "".join(k for k, v in r.counts.items() if v)
    assert len({i for i in failing.invites()}) == 1
    [invite] = {i for i in national.invites()}
    assert "+17275550101" in header(invite, "P-Asserted-Identity")
    [row] = await cdrs(pg, 1)
    assert (row["emergency_level"], row["emergency_route"]) == ("national", "psap:fl-pinellas>national")
    assert row["disposition"] == "answered" and row["sip_status"] == 200
    assert 'sipcc_e911_failovers_total{cause="503"} 1.0' in node.metrics()


@pytest.mark.rule("E4")
async def test_silent_psap_fails_over_to_national(pg, start_node, peers, ports, tmp_path) -> None:
    national = peers("national")
    # The PSAP's address takes the INVITE and never answers anything.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind((HOSTS["e911"], ports["e911"]))
    silent.listen(8)
    try:
        node = await start_node(e911_doc(ports), SIPCC_E911_FAILOVER_SECONDS="1")
        r = call_911(node, tmp_path, "+17275550102", "silent")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
        conn, _ = silent.accept()  # the connection the edge opened, its INVITE still unread
        with conn:
            first = conn.recv(65535).decode(errors="replace")
    finally:
        silent.close()
    assert first.startswith("INVITE sip:911@127.0.0.4:")
    assert len({i for i in national.invites()}) == 1
    [row] = await cdrs(pg, 1)
    assert (row["emergency_level"], row["emergency_route"]) == ("national", "psap:fl-pinellas>national")
    assert 'sipcc_e911_failovers_total{cause="timeout"} 1.0' in node.metrics()


# ---- E7: 911 is never rejected --------------------------------------------------------


@pytest.mark.rule("E7")
@pytest.mark.rule("A1")
async def test_911_on_a_trunk_with_every_channel_busy(pg, start_node, peers, ports, tmp_path,
                                                      redis_client, redis_prefix) -> None:  # fmt: skip
    psap = peers("e911")
    node = await start_node(e911_doc(ports, trunks=1))
    slots = RedisSlots(redis_client, redis_prefix, 120)
    assert await slots.acquire("acme-main", "a-call-in-progress", 1)
    try:
        inf = write_injection(tmp_path / "normal.csv", [("+12125551234", "+17275550100")])
        normal = run_uac(tmp_path / "normal", f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1,
                         limit=1, duration_ms=100, timeout=10)  # fmt: skip
        assert normal.counts.get("4_503_recv") == 1  # the trunk is full (A1) ...
        r = call_911(node, tmp_path, "+17275550103", "busy")  # ... and 911 still goes (E7)
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    finally:
        await slots.release("acme-main", "a-call-in-progress")
    assert len({i for i in psap.invites()}) == 1


@pytest.mark.rule("E7")
@pytest.mark.rule("A9")
async def test_911_from_a_suspended_customer(pg, start_node, peers, ports, tmp_path) -> None:
    psap = peers("e911")
    doc = e911_doc(ports)
    doc["customers"][0]["status"] = "suspended"
    node = await start_node(doc)
    r = call_911(node, tmp_path, "+17275550104", "suspended")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    [invite] = {i for i in psap.invites()}
    assert "+17275550104" in header(invite, "P-Asserted-Identity")
    inf = write_injection(tmp_path / "normal.csv", [("+12125551234", "+17275550104")])
    run_uac(tmp_path / "normal", f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1, limit=1,
            duration_ms=100, timeout=10)  # fmt: skip
    rows = await cdrs(pg, 2)
    assert sorted((r["dnis"], r["disposition"], (r["reason"] or "")[:3]) for r in rows) == [
        ("+12125551234", "rejected", "A9:"), ("911", "answered", "BYE")]  # fmt: skip


@pytest.mark.rule("E7")
@pytest.mark.rule("A6")
async def test_911_from_a_customer_over_its_credit_limit(pg, start_node, peers, ports,
                                                         tmp_path) -> None:  # fmt: skip
    psap = peers("e911")
    doc = e911_doc(ports)
    doc["customers"][0]["credit_limit"] = "0.50000"
    await pg.execute("SELECT cdrs_ensure_partition(now()::date)")
    now = datetime.now(UTC)
    await pg.execute(
        """INSERT INTO cdrs (call_id, customer_id, direction, dnis, started_at, ended_at,
                             disposition, amount)
           VALUES ('earlier-usage', 'acme', 'outbound', '+12125551234', $1, $1, 'answered', 1)""",
        now,
    )  # $1.00 of usage this month against a $0.50 limit: over it (A6)
    node = await start_node(doc)
    inf = write_injection(tmp_path / "normal.csv", [("+12125551234", "+17275550100")])
    run_uac(tmp_path / "normal", f"127.0.0.1:{node.sip_port}", inf, calls=1, rate=1, limit=1,
            duration_ms=100, timeout=10)  # fmt: skip
    r = call_911(node, tmp_path, "+17275550100", "credit")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    assert len({i for i in psap.invites()}) == 1
    rows = await cdrs(pg, 3)
    refused = [r for r in rows if r["disposition"] == "rejected"]
    assert len(refused) == 1 and refused[0]["reason"].startswith("A6:")


@pytest.mark.rule("E7")
@pytest.mark.rule("E2")
@pytest.mark.parametrize("caller", ["not-a-number", "+12125550000"])
async def test_911_with_a_malformed_or_unowned_from(pg, start_node, peers, ports, tmp_path,
                                                    caller) -> None:  # fmt: skip
    e911, national = peers("e911"), peers("national")
    node = await start_node(e911_doc(ports))
    r = call_911(node, tmp_path, caller, "from")
    assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
    # No TN of the customer's to locate: the national call center, where an agent asks.
    [invite] = {i for i in national.invites()}
    assert header(invite, "P-Asserted-Identity") is None and header(invite, "Geolocation") is None
    assert e911.invites() == []
    [row] = await cdrs(pg, 1)
    assert (row["emergency_level"], row["emergency_route"]) == ("national", "national")


# ---- abandoned attempts: nothing left half open at a PSAP (RFC 3261 §9.1, §13.2.2.4) ----


def _psap_uas(tmp_path: Path, ports: dict[str, int], scenario: str) -> Uas:
    """A PSAP that runs one call of `scenario` and exits: 0 only if it went as written."""
    return Uas(tmp_path / scenario, ip=HOSTS["e911"], port=ports["e911"], scenario=scenario,
               extra=("-t", "t1", "-m", "1", "-trace_msg"))  # fmt: skip


@pytest.mark.rule("E4")
async def test_late_psap_answer_after_failover_is_acked_and_hung_up(pg, start_node, peers, ports,
                                                                   tmp_path) -> None:  # fmt: skip
    national = peers("national")
    psap = _psap_uas(tmp_path, ports, "uas_late_200.xml")  # silent 2 s, then 200
    try:
        node = await start_node(e911_doc(ports), SIPCC_E911_FAILOVER_SECONDS="1")
        r = call_911(node, tmp_path, "+17275550102", "late")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
        # The caller kept the national call center; the PSAP's scenario ends only once the
        # edge has ACKed its late 200 and sent the BYE.
        assert psap.proc.wait(40) == 0, (tmp_path / "uas_late_200.xml").joinpath(
            "uas_errors.log").read_text(errors="replace") + node.log()  # fmt: skip
    finally:
        psap.stop()
    assert len({i for i in national.invites()}) == 1
    [row] = await cdrs(pg, 1)
    assert (row["emergency_level"], row["emergency_route"]) == ("national", "psap:fl-pinellas>national")
    assert row["disposition"] == "answered"


@pytest.mark.rule("E4")
async def test_failover_after_a_provisional_cancels_the_psap(pg, start_node, peers, ports,
                                                            tmp_path) -> None:  # fmt: skip
    national = peers("national")
    psap = _psap_uas(tmp_path, ports, "uas_trying_then_cancel.xml")  # 100 Trying, then nothing
    try:
        node = await start_node(e911_doc(ports), SIPCC_E911_FAILOVER_SECONDS="1")
        r = call_911(node, tmp_path, "+17275550102", "trying")
        assert r.returncode == 0 and r.counts["5_200_recv"] == 1, r.output + node.log()
        assert psap.proc.wait(40) == 0, (tmp_path / "uas_trying_then_cancel.xml").joinpath(
            "uas_errors.log").read_text(errors="replace") + node.log()  # fmt: skip
    finally:
        psap.stop()
    assert len({i for i in national.invites()}) == 1
    assert 'sipcc_e911_failovers_total{cause="timeout"} 1.0' in node.metrics()
