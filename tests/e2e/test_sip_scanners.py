"""Issue 10, Done-when 1: the attackers' own tools (SIPVicious from PyPI) against a running
edge on loopback. Nothing is revealed, the scanner is banned, and a PBX's calls placed at the
same time all complete (docs/SECURITY.md, gateway/guard.py)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import CARRIER_PORT, example
from tests.support.node import free_port
from tests.support.sipp import Uas, run_uac, write_injection

BIN = Path(sys.executable).parent
SCANNER = "127.0.0.9"  # not a trunk, carrier or PSAP address of the example
PASSWORD = "correct-horse-battery"
NEW_YORK = "+12125551234"


def provisioning() -> dict:
    """The example (a PBX on 127.0.0.2) plus a digest-only trunk group for svcrack to guess."""
    doc = example(trunks=30)
    doc["customers"][0]["trunk_groups"].append({
        "id": "acme-roaming", "trunks": 5, "carrier": "loopback-carrier",
        "digest": {"username": "acme-roaming", "password": PASSWORD},
    })  # fmt: skip
    return doc


async def tool(name: str, *args: str, timeout: float = 60) -> str:
    """Run one SIPVicious tool to its end; its whole output (it logs to stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / f"sipvicious_{name}"), *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return out.decode(errors="replace")


def words(tmp_path: Path) -> Path:
    """A password dictionary with the real password at its end, after 30 wrong ones."""
    path = tmp_path / "words.txt"
    path.write_text("".join(f"password{i:04d}\n" for i in range(30)) + PASSWORD + "\n")
    return path


def svcrack(port: int, dictionary: Path) -> list[str]:
    return ["-b", SCANNER, "-P", str(free_port(SCANNER)), "-p", str(port), "-u", "acme-roaming",
            "-m", "INVITE", "--maximumtime", "3", "-d", str(dictionary), "127.0.0.1"]  # fmt: skip


@pytest.mark.rule("A8")
async def test_sipvicious_finds_nothing_is_banned_and_calls_go_on(pg, start_node, tmp_path) -> None:
    node = await start_node(provisioning(), SIPCC_DIGEST_ALGORITHMS="MD5")
    port = node.sip_port
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)
    inf = write_injection(tmp_path / "calls.csv", [(NEW_YORK, "+17275550100")] * 40)
    try:
        # A PBX's 40 calls (4 s at 10/s, 1 s each) while the three tools run.
        calls = asyncio.create_task(asyncio.to_thread(
            run_uac, tmp_path / "uac", f"127.0.0.1:{port}", inf, calls=40, rate=10, limit=40,
            duration_ms=1000))  # fmt: skip
        svmap, svwar, crack = await asyncio.gather(
            tool("svmap", "-b", SCANNER, "-P", str(free_port(SCANNER)), "-p", str(port),
                 "127.0.0.1"),
            # svwar binds where it likes (127.0.0.1 here): its own source gets banned.
            tool("svwar", "-b", SCANNER, "-p", str(port), "-m", "INVITE",
                 "-e", "100-120,17275550100-17275550109", "127.0.0.1"),
            tool("svcrack", *svcrack(port, words(tmp_path))),
        )  # fmt: skip
        legit = await calls
    finally:
        carrier.stop()

    # Nothing revealed: no SIP device, no extension, no password.
    assert "found nothing" in svmap and "127.0.0.1:" not in svmap, svmap
    assert "found nothing" in svwar and not re.search(r"\|\s*\d+\s*\|", svwar), svwar
    assert "found nothing" in crack and PASSWORD not in crack, crack
    # The scanners' sources are banned, by signature, in the metrics and the log.
    metrics = node.metrics()
    assert re.search(r'sipcc_sip_guard_bans_total\{cause="scanner"\} [2-9]', metrics), metrics
    assert re.search(rf'"source": "{re.escape(SCANNER)}", "cause": "scanner"', node.log_path.read_text())
    # The PBX's calls, at the same time: every one answered, none failed.
    assert legit.returncode == 0, legit.output + node.log()
    assert legit.counts["5_200_recv"] == 40


@pytest.mark.rule("A8")
async def test_password_guessing_is_locked_out_without_any_signature(pg, start_node, tmp_path) -> None:
    """With scanner signatures switched off (a scanner that lies about itself), svcrack is
    stopped after 5 wrong passwords of its 31: the 6th failure bans its source, and the
    real password, 31st, is never even tried."""
    node = await start_node(provisioning(), SIPCC_DIGEST_ALGORITHMS="MD5",
                            SIPCC_SIP_GUARD_SCANNER_AGENTS="")  # fmt: skip
    carrier = Uas(tmp_path / "uas", port=CARRIER_PORT)
    try:
        crack = await tool("svcrack", *svcrack(node.sip_port, words(tmp_path)))
    finally:
        carrier.stop()
    assert "found nothing" in crack and PASSWORD not in crack, crack
    log = node.log_path.read_text()
    assert 1 <= log.count('"event": "digest_refused"') <= 6, log[-3000:]
    assert 'sipcc_sip_guard_bans_total{cause="auth_failures"} 1.0' in node.metrics()
    # svcrack binds where it likes: whatever its source, that source is banned.
    assert re.search(r'"source": "127\.0\.0\.\d+", "cause": "auth_failures"', log)
