"""Run a real `sipcc serve` process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _free(host: str, port: int, kinds: tuple[int, ...]) -> bool:
    for kind in kinds:
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((host, port))
        except OSError:
            return False
    return True


def free_sip_port(host: str = "127.0.0.1", following: int = 0) -> int:
    """A port free for both UDP and TCP (the edge listens on both), and the `following`
    ports after it too (the own ports of SIP workers)."""
    both = (socket.SOCK_DGRAM, socket.SOCK_STREAM)
    for _ in range(200):
        port = free_port(host, socket.SOCK_DGRAM)
        if port + following < 65536 and all(_free(host, port + i, both) for i in range(following + 1)):
            return port
    raise RuntimeError("no free run of ports for UDP and TCP")


class _PortTaken(RuntimeError):
    pass


class NodeProcess:
    def __init__(
        self, database_url: str, redis_prefix: str, log_path: Path, role: str = "serve", **env: str
    ) -> None:
        self.role = role  # `serve`, or one role such as `cdr-writer`
        self._workers = workers = int(env.get("SIPCC_SIP_WORKERS", "1"))
        self.sip_port = free_sip_port(following=workers if workers > 1 else 0)
        self.http_port = free_sip_port(following=workers - 1)
        self._started_once = False
        self.log_path = log_path
        self.env = {
            **os.environ,
            "SIPCC_DATABASE_URL": database_url,
            "SIPCC_REDIS_URL": os.environ.get("SIPCC_TEST_REDIS", "redis://127.0.0.1:6379/0"),
            "SIPCC_REDIS_PREFIX": redis_prefix,
            "SIPCC_SIP_LISTEN": f"127.0.0.1:{self.sip_port}",
            "SIPCC_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            # A spool of this node's own (kept across restart()), never the repo's .sipcc/.
            "SIPCC_CDR_SPOOL_DIR": str(log_path.parent / f"{log_path.stem}-spool"),
            **env,
        }
        self.proc: subprocess.Popen | None = None
        self._api_headers: dict[str, str] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api_headers(self) -> dict[str, str]:
        """Authorization headers of an all-scopes API key, created on first use."""
        if self._api_headers is None:
            from tests.support.apikeys import headers_sync

            self._api_headers = headers_sync(self.env["SIPCC_DATABASE_URL"])
        return self._api_headers

    def start(self, timeout: float = 20) -> NodeProcess:
        # A port found free can be taken before the node binds it (any process's outgoing
        # connection may get it as its ephemeral port). On a first start, new ports and
        # another try; a restart keeps its ports (the edge's name, and its dialogs, are in them).
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                if self._started_once or attempt == 2:
                    raise
                self.sip_port = free_sip_port(following=self._workers if self._workers > 1 else 0)
                self.http_port = free_sip_port(following=self._workers - 1)
                self.env["SIPCC_SIP_LISTEN"] = f"127.0.0.1:{self.sip_port}"
                self.env["SIPCC_HTTP_LISTEN"] = f"127.0.0.1:{self.http_port}"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> NodeProcess:
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", self.role],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                error = _PortTaken if "address already in use" in self.log() else RuntimeError
                raise error(f"sipcc {self.role} exited {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.http + "/readyz", timeout=1).status_code == 200:
                    self._started_once = True
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sipcc serve not ready in {timeout}s: {self.log()}")

    def kill(self) -> None:
        """A crash: SIGKILL, no drain, nothing flushed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def restart(self, timeout: float = 20) -> NodeProcess:
        """The same node again: same ports, so the same edge name and its dialogs."""
        return self.start(timeout)

    def metrics(self) -> str:
        return httpx.get(self.http + "/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
