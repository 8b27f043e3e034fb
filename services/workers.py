"""Several edge processes on one SIP port (SO_REUSEPORT), for the cores of one machine.

`sipcc serve` with SIPCC_SIP_WORKERS=N is worker 0: every role, and the supervisor of
workers 1..N-1, each a `sipcc gateway` process of its own. The kernel spreads new INVITEs
over the processes sharing the port; each worker also owns port sip_port + 1 + index and
writes it in Via and Record-Route, so the responses and in-dialog requests of its calls
come back to it. Trunk slots are in Redis, so limits hold across workers. Each worker
serves its own /metrics on http_port + index. A worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

from services import logs
from services.config import Settings

log = logs.get("workers")


class WorkerSupervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: dict[int, subprocess.Popen] = {}
        self._stopping = False

    def _spawn(self, index: int) -> subprocess.Popen:
        host, http_port = self.settings.http_addr
        env = {**os.environ, "SIPCC_WORKER_INDEX": str(index),
               "SIPCC_HTTP_LISTEN": f"{host}:{http_port + index}"}  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "gateway"], env=env)
        log.info("sip_worker_started", index=index, pid=proc.pid)
        return proc

    async def run(self) -> None:
        for index in range(1, self.settings.sip_workers):
            self.procs[index] = self._spawn(index)
        while not self._stopping:
            await asyncio.sleep(1)
            for index, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stopping:
                    log.error("sip_worker_died", index=index, code=proc.returncode)
                    self.procs[index] = self._spawn(index)

    def stop(self) -> None:
        """Pass SIGTERM on: each worker drains its own calls."""
        self._stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
