"""End-to-end fixtures: a real `sipcc serve`, a SIPp carrier on 127.0.0.3, SIPp PBXs on 127.0.0.2."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import pytest
import yaml

from services import provision
from tests.support.node import NodeProcess, free_port
from tests.support.sipp import Uas

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "provision.yaml"


# The carrier SIPp listens on 127.0.0.3 as in the example, on a port of this run's own, so
# a load test or a `make run` peer on 127.0.0.3:5060 never answers a test's calls.
CARRIER_PORT = free_port("127.0.0.3", socket.SOCK_DGRAM)


def example(**changes) -> dict:
    """The example provisioning with the acme trunk group's fields changed."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["customers"][0]["trunk_groups"][0].update(changes)
    doc["carriers"][0]["gateway"] = f"sip:127.0.0.3:{CARRIER_PORT}"
    return doc


async def apply(dsn: str, doc: dict) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await provision.apply(conn, provision.parse(yaml.safe_dump(doc)))
    finally:
        await conn.close()


@pytest.fixture
def start_node(pg, pg_dsn, redis_prefix, tmp_path):
    """start_node(doc) → a running node provisioned with `doc`, stopped after the test."""
    nodes: list[NodeProcess] = []

    async def start(doc: dict, **env: str) -> NodeProcess:
        await apply(pg_dsn, doc)
        node = NodeProcess(pg_dsn, redis_prefix, tmp_path / f"node{len(nodes)}.log", **env)
        nodes.append(node)
        return node.start()

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def carrier(tmp_path):
    uas = Uas(tmp_path / "uas", port=CARRIER_PORT)
    yield uas
    uas.stop()
