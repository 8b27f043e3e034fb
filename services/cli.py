"""The `sipcc` command (DESIGN.md: CLI contract)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer
import uvloop

from services import db, logs
from services.config import LOOPBACK_DATABASE_URL, Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
provision_app = typer.Typer(no_args_is_help=True, help="Carriers, customers, trunks, numbers.")
app.add_typer(db_app, name="db")
app.add_typer(provision_app, name="provision")


def _settings() -> Settings:
    s = Settings()
    logs.configure(s.log_level, s.log_json)
    return s


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _serve(roles: frozenset[str]) -> None:
    from services.node import DependencyError, Node

    s = _settings()
    try:
        uvloop.run(Node(s, roles).run_until_signalled())
    except DependencyError as exc:
        _fail(str(exc))


@app.command()
def serve() -> None:
    """Every role in one process (the single-node default)."""
    from services.node import ALL_ROLES

    _serve(ALL_ROLES)


@app.command()
def gateway() -> None:
    """The SIP edge only."""
    _serve(frozenset({"gateway"}))


@app.command()
def rater() -> None:
    """The rater's HTTP API only."""
    _serve(frozenset({"rater"}))


@app.command()
def e911() -> None:
    """The E911 router's HTTP API only."""
    _serve(frozenset({"e911"}))


@app.command("cdr-writer")
def cdr_writer() -> None:
    """The CDR writer only (Redis stream → Postgres)."""
    _serve(frozenset({"cdr-writer"}))


@app.command("api")
def api_role() -> None:
    """The HTTP API only."""
    _serve(frozenset({"api"}))


@db_app.command("migrate")
def migrate() -> None:
    """Apply the schema; safe to run twice."""
    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL

    async def go() -> list[str]:
        await db.ensure_database(dsn)
        return await db.migrate(dsn)

    try:
        applied = asyncio.run(go())
    except (OSError, db.MigrationError) as exc:
        _fail(f"migration failed: {exc}")
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema up to date")


@provision_app.command("apply")
def provision_apply(file: Path) -> None:
    """Idempotent upsert from a YAML file; bad input changes nothing."""
    import asyncpg

    from services import provision

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    try:
        spec = provision.load_file(file)
    except provision.ProvisionError as exc:
        _fail(str(exc))

    async def go() -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            return await provision.apply(conn, spec, s.sip_realm)
        finally:
            await conn.close()

    try:
        changed = asyncio.run(go())
    except provision.ProvisionError as exc:
        _fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"{file}: not applied: {exc}")
    total = sum(changed.values())
    detail = ", ".join(f"{k} {v}" for k, v in changed.items() if v)
    typer.echo(f"{file}: {total} rows changed" + (f" ({detail})" if detail else " (up to date)"))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
