"""`sipcc apikey …`: HTTP API keys (services/auth.py). A key is printed once, at creation."""

from __future__ import annotations

import asyncio

import typer

from services import auth

app = typer.Typer(no_args_is_help=True, help="HTTP API keys (hashed at rest, scoped).")


def _run(coro_fn):
    import asyncpg

    from services.cli import _fail, _settings
    from services.config import LOOPBACK_DATABASE_URL

    s = _settings()

    async def go():
        conn = await asyncpg.connect(s.database_url or LOOPBACK_DATABASE_URL)
        try:
            return await coro_fn(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"apikey: {exc}")


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="who or what uses the key"),
    scopes: str = typer.Option(..., "--scopes", help=f"comma-separated: {', '.join(auth.SCOPES)}, or all"),
    rate: float = typer.Option(50.0, "--rate", help="requests per second allowed to this key"),
) -> None:
    """Create a key and print it (only its hash is stored: copy it now)."""
    from services.cli import _fail

    try:
        wanted = auth.parse_scopes(scopes)
        auth.new_key(name, wanted, rate)  # validates before touching the database
    except auth.AuthInputError as exc:
        _fail(str(exc))
    typer.echo(_run(lambda conn: auth.create_key(conn, name, wanted, rate)))


@app.command("list")
def list_() -> None:
    """Keys on file (never their secrets)."""
    for k in _run(auth.list_keys):
        state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "active"
        typer.echo(f"{k['key_id']}  {k['name']}  {','.join(k['scopes'])}  "
                   f"{k['rate_per_second']:g}/s  {state}")  # fmt: skip


@app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key by its id (the 12 hex digits after `sipcc_`)."""
    from services.cli import _fail

    if not auth.KEY_RE.fullmatch(f"sipcc_{key_id}_{'x' * 43}"):
        _fail(f"key id {key_id!r}: 12 hex digits expected")
    if not _run(lambda conn: auth.revoke_key(conn, key_id)):
        _fail(f"no active key {key_id}", 1)
    typer.echo(f"revoked {key_id}")
