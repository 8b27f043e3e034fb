"""Issue 3: SIP over TLS. Debian's SIPp is built without OpenSSL, so the PBX is SIPp over
TCP through a real TLS client (stunnel) bound to the PBX's address 127.0.0.2; the edge
terminates TLS with a configured certificate and Record-Routes twice (TLS and UDP sides,
RFC 5658) towards the UDP carrier."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.e2e.conftest import CARRIER_PORT, example
from tests.e2e.test_sip_scenarios import NEW_YORK, cdrs
from tests.support.node import free_port
from tests.support.sipp import Uas, run_uac, write_injection


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_tunnel(tmp_path):
    """start(tls_port, cafile) → the plain-TCP port on 127.0.0.2 that leads to the edge's TLS."""
    procs: list[subprocess.Popen] = []

    def start(tls_port: int, cafile) -> int:
        stunnel = shutil.which("stunnel") or shutil.which("stunnel4")
        assert stunnel, "stunnel is installed by `make test` (apt-get install stunnel4)"
        plain = free_port("127.0.0.2")
        conf = tmp_path / "stunnel.conf"
        conf.write_text(
            f"foreground = yes\npid =\ndebug = 4\noutput = {tmp_path / 'stunnel.log'}\n"
            f"[sip]\nclient = yes\naccept = 127.0.0.2:{plain}\nconnect = 127.0.0.1:{tls_port}\n"
            f"local = 127.0.0.2\nverifyPeer = yes\nCAfile = {cafile}\nsslVersionMin = TLSv1.2\n"
        )
        procs.append(subprocess.Popen([stunnel, str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
        time.sleep(0.5)
        assert procs[-1].poll() is None, (tmp_path / "stunnel.log").read_text()
        return plain

    yield start
    for p in procs:
        p.terminate()
        p.wait(5)


async def test_call_over_tls(pg, start_node, certificate, tls_tunnel, tmp_path) -> None:
    cert, key = certificate
    tls_port = free_port()
    node = await start_node(example(trunks=5), SIPCC_TLS_PORT=str(tls_port),
                            SIPCC_TLS_CERT=str(cert), SIPCC_TLS_KEY=str(key))  # fmt: skip
    plain = tls_tunnel(tls_port, cert)
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)
    try:
        inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")] * 3)
        result = run_uac(tmp_path / "uac", f"127.0.0.2:{plain}", inf, calls=3, rate=10, limit=3,
                         duration_ms=300, extra=("-t", "t1", "-trace_msg"), timeout=60)  # fmt: skip
    finally:
        carrier.stop()
    assert result.returncode == 0, result.output + node.log()
    rows = await cdrs(pg, 3)
    assert [r["disposition"] for r in rows] == ["answered"] * 3
    assert {r["trunk_id"] for r in rows} == {"acme-main"}  # identified by 127.0.0.2 over TLS
    # The caller saw both Record-Route entries: TLS towards it, UDP towards the carrier.
    log = next((tmp_path / "uac").glob("uac_*_messages.log")).read_text()
    assert "transport=tls;lr>" in log and f"<sip:127.0.0.1:{node.sip_port};lr>" in log
