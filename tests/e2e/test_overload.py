"""Overload control on a running edge: the excess gets 503 + Retry-After at once, and a
911 call is never shed (rule E7)."""

from __future__ import annotations

import socket
import uuid

import pytest

from tests.e2e.conftest import example


def invite(port: int, src_port: int, dialled: str) -> tuple[str, bytes]:
    call_id = uuid.uuid4().hex
    return call_id, (
        f"INVITE sip:{dialled}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.2:{src_port};branch=z9hG4bK{call_id[:12]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:+17275550100@127.0.0.2>;tag={call_id[:8]}\r\n"
        f"To: <sip:{dialled}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:+17275550100@127.0.0.2:{src_port}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def send(sock: socket.socket, node_port: int, dialled: str) -> str:
    """The first response to a new INVITE (other calls' retransmissions are skipped)."""
    call_id, data = invite(node_port, sock.getsockname()[1], dialled)
    sock.sendto(data, ("127.0.0.1", node_port))
    while True:
        text = sock.recv(65535).decode()
        if f"\r\nCall-ID: {call_id}\r\n" in text:
            return text


@pytest.mark.rule("E7")
async def test_excess_calls_get_503_with_retry_after_and_911_never(start_node) -> None:
    # One call per 100 s: the bucket holds one call, so the second is over the limit.
    node = await start_node(example(trunks=50), SIPCC_MAX_CPS="0.01",
                            SIPCC_OVERLOAD_RETRY_AFTER_SECONDS="7")  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(5)
    try:
        assert send(sock, node.sip_port, "+12125551234").startswith("SIP/2.0 100 ")
        shed = send(sock, node.sip_port, "+12125551235")
        assert shed.startswith("SIP/2.0 503 "), shed
        assert "\r\nRetry-After: 7\r\n" in shed
        assert send(sock, node.sip_port, "911").startswith("SIP/2.0 100 "), node.log()
    finally:
        sock.close()
    assert 'sipcc_overload_rejections_total{cause="cps"} 1.0' in node.metrics()
