"""`make run`: find (or start) Postgres and Redis, migrate, provision the example, serve.

Postgres: SIPCC_DATABASE_URL, else the loopback server when it answers, else an embedded
one (pgserver, data under .sipcc/, stopped with the service). Redis: SIPCC_REDIS_URL, else
loopback; with none, trunk slots are kept in this process (one process only) with a warning.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import redis

from services import db, logs
from services.config import LOOPBACK_DATABASE_URL, LOOPBACK_REDIS_URL, Settings

log = logs.get("launch")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except (OSError, redis.RedisError):
        return False


def _embedded_postgres(data_dir: Path) -> str:
    import pgserver  # optional extra, installed by the lock

    server = pgserver.get_server(str(data_dir / "pgdata"), cleanup_mode="stop")
    log.warning("embedded_postgres_started", data=str(data_dir / "pgdata"),
                note="no Postgres answered on loopback and SIPCC_DATABASE_URL is unset")  # fmt: skip
    return db.with_database(server.get_uri(), "sipcc")


def main() -> int:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_json)
    env = os.environ
    if not settings.database_url:
        if asyncio.run(db.reachable(LOOPBACK_DATABASE_URL)):
            env["SIPCC_DATABASE_URL"] = LOOPBACK_DATABASE_URL
        else:
            data_dir = Path(settings.data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            env["SIPCC_DATABASE_URL"] = _embedded_postgres(data_dir)
    if not settings.redis_url:
        if _redis_answers(LOOPBACK_REDIS_URL):
            env["SIPCC_REDIS_URL"] = LOOPBACK_REDIS_URL
        else:
            log.warning("redis_unavailable", note="trunk slots in this process; run one process only")
            env["SIPCC_ALLOW_IN_PROCESS_ADMISSION"] = "true"
    provision_file = settings.provision_file or "examples/provision.yaml"

    from services.cli import app

    for args in (["db", "migrate"], ["provision", "apply", provision_file]):
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                return int(exc.code)
        except Exception as exc:  # typer.Exit carries the exit code
            code = getattr(exc, "exit_code", 1)
            if code:
                return code
    app(["serve"], standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
