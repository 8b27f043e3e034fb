"""A Redis and a Postgres of a test's own, to stop, crash and restart.

Fault tests must never touch the machine's shared servers (5432, 6379): other tests and
people use them. These start private instances on free ports in a temporary directory.
Postgres' initdb refuses to run as root, so as root it runs as the `postgres` OS user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis as redis_sync

from tests.support.node import free_port


def _pg_bin() -> Path:
    """SIPCC_TEST_PG_BIN, else the newest Debian server install, else initdb on PATH."""
    if os.environ.get("SIPCC_TEST_PG_BIN"):
        return Path(os.environ["SIPCC_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)  # fmt: skip
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class PrivateRedis:
    """redis-server on a free port. AOF with fsync on every write by default: that is how
    the CDR stream's Redis must run, or a Redis restart loses what the writer had not
    stored yet (docs/CDR.md)."""

    def __init__(self, workdir: Path, aof: bool = True) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.aof = aof
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> PrivateRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else [
            "--appendonly", "no"]  # fmt: skip
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.dir), *persistence],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis_sync.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Ready means the AOF is loaded, not only the port open.
                if client.ping() and client.info("persistence").get("loading") == 0:
                    break
            except redis_sync.exceptions.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private redis-server did not start: {self.log()}")
            time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed beyond what the AOF already holds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class PrivatePostgres:
    """A throw-away Postgres cluster (initdb) on a free port, socket in its own directory."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        if self._as_postgres:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
        return done

    def init(self) -> PrivatePostgres:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8")  # fmt: skip
        return self

    def running(self) -> bool:
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status",
                         check=False).returncode == 0  # fmt: skip

    def start(self) -> PrivatePostgres:
        if self.running():
            return self
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                  "-l", str(self.dir / "postgres.log"), "start")  # fmt: skip
        return self

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash (recovery at the next start); `fast` a clean shutdown."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)  # fmt: skip


@pytest.fixture(scope="session")
def private_postgres():
    """One private cluster per test session (initdb takes seconds); tests create databases."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"no initdb in {PG_BIN}: `make test` installs postgresql (or set SIPCC_TEST_PG_BIN)")
    # Not under pytest's temporary root: pytest makes that 0700 for root (any concurrent
    # session re-applies it), and the cluster runs as the `postgres` user.
    workdir = Path(tempfile.mkdtemp(prefix="sipcc-test-pg-"))
    workdir.chmod(0o755)
    pg = PrivatePostgres(workdir).init().start()
    yield pg
    pg.stop("fast")
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path):
    r = PrivateRedis(tmp_path / "redis").start()
    yield r
    r.kill()
