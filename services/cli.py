"""The `sipcc` command (DESIGN.md: CLI contract)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer
import uvloop

from services import apikey_cli, db, logs
from services.config import LOOPBACK_DATABASE_URL, Settings
from services.referrals import cli as referrals_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
provision_app = typer.Typer(no_args_is_help=True, help="Carriers, customers, trunks, numbers.")
refdata_app = typer.Typer(no_args_is_help=True, help="Reference data: NPA-NXX-X, LATAs, LCAs, rate decks.")
app.add_typer(db_app, name="db")
app.add_typer(provision_app, name="provision")
app.add_typer(refdata_app, name="refdata")
psaps_app = typer.Typer(no_args_is_help=True, help="911 PSAPs and the areas they serve.")
app.add_typer(psaps_app, name="psaps")
cdr_app = typer.Typer(no_args_is_help=True, help="CDR storage: monthly partitions, export.")
app.add_typer(cdr_app, name="cdr")
billing_app = typer.Typer(no_args_is_help=True, help="Monthly invoices (B1-B10).")
app.add_typer(billing_app, name="billing")
app.add_typer(referrals_cli.app, name="referrals")
app.add_typer(apikey_cli.app, name="apikey")


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
            return await provision.apply(conn, spec, s.sip_realm, actor=f"yaml:{file}")
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


@refdata_app.command("import")
def refdata_import(
    kind: str = typer.Argument(..., help="npa-nxx | thousands | lata | lca | carriers | intl-rates"),
    file: Path = typer.Argument(..., help="CSV (or tab-separated) file with a header row"),
    on_error: str = typer.Option(
        "refuse", "--on-error", help="bad rows: 'refuse' imports nothing, 'skip' keeps the good rows"
    ),
    deck: str = typer.Option("default", "--deck", help="rate deck name (intl-rates only)"),
    replace: bool = typer.Option(
        False, "--replace", help="remove every row of the kind (of the deck) first"
    ),
) -> None:
    """Import a reference-data file (services/refdata.py lists the columns of each kind)."""
    import asyncpg

    from services import refdata

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    if on_error not in refdata.ON_ERROR:
        _fail(f"--on-error must be one of: {', '.join(refdata.ON_ERROR)}")
    try:
        parsed = refdata.parse_file(kind, file, deck)
    except refdata.RefdataError as exc:
        _fail(f"{file}: {exc}")

    async def go() -> refdata.ImportReport:
        conn = await asyncpg.connect(dsn)
        try:
            return await refdata.import_parsed(
                conn, parsed, str(file), on_error=on_error, replace=replace, deck=deck
            )
        finally:
            await conn.close()

    try:
        report = asyncio.run(go())
    except refdata.RefdataError as exc:
        _fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"{file}: not imported: {exc}")
    for line in report.lines():
        typer.echo(line, err=True)
    deck_note = f" into deck {report.deck!r}" if report.deck else ""
    typer.echo(
        f"{file}: {kind}{deck_note}: {report.read} rows read, {report.imported} imported or "
        f"changed, {report.unchanged} unchanged, {report.skipped} skipped"
    )


@refdata_app.command("status")
def refdata_status() -> None:
    """Rows of each kind and the last imports."""
    import json

    import asyncpg

    from services import refdata

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL

    async def go() -> dict:
        conn = await asyncpg.connect(dsn)
        try:
            return await refdata.status(conn)
        finally:
            await conn.close()

    try:
        typer.echo(json.dumps(asyncio.run(go()), default=str, indent=2))
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"cannot read the reference data: {exc}")


@billing_app.command("run")
def billing_run(
    period: str = typer.Option(..., "--period", help="the month to invoice, YYYY-MM"),
    customer: str | None = typer.Option(None, "--customer", help="one customer id (default: all)"),
) -> None:
    """Issue the period's invoices; an issued period is left as it is."""
    import asyncpg

    from services.billing import runner, store
    from services.billing.model import Period

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    try:
        month = Period.parse(period)
        taxes = runner.configured_taxes(s.billing_taxes)
    except ValueError as exc:
        _fail(str(exc))

    async def go() -> list[store.Issued]:
        conn = await asyncpg.connect(dsn)
        try:
            return await runner.run(conn, month, customer, taxes)
        finally:
            await conn.close()

    try:
        issued = asyncio.run(go())
    except store.BillingError as exc:
        _fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"billing run {month}: not done: {exc}")
    for i in issued:
        state = "issued" if i.created else "already issued, unchanged"
        typer.echo(f"{i.invoice.number}: {i.invoice.total} USD ({state})")
    if not issued:
        typer.echo(f"{month}: no customer to invoice")


@cdr_app.command("detach")
def cdr_detach(
    before: str = typer.Option(..., "--before", help="YYYY-MM: detach every month before it"),
) -> None:
    """Detach old months from `cdrs` for archive (tables renamed archive_cdrs_YYYY_MM)."""
    import asyncpg

    from services import cdr_partitions

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    try:
        month = cdr_partitions.parse_month(before)
    except cdr_partitions.PartitionError as exc:
        _fail(f"--before: {exc}")

    async def go() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            return await cdr_partitions.detach_before(conn, month)
        finally:
            await conn.close()

    try:
        done = asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"nothing more detached: {exc}")
    for name in done:
        typer.echo(f"detached: {name}  (archive: pg_dump -t {name}; then DROP TABLE {name})")
    if not done:
        typer.echo(f"no partition before {before}")


@cdr_app.command("export")
def cdr_export(
    month: str = typer.Option(..., "--month", help="YYYY-MM"),
    customer: str | None = typer.Option(None, "--customer", help="one customer's calls only"),
    out: Path | None = typer.Option(None, "--out", "-o", help="file (default: stdout)"),
) -> None:
    """A month of CDRs as CSV, streamed from Postgres (the same as GET /v1/cdrs/export)."""
    import asyncpg

    from services import cdr_partitions
    from services.cdr_routes import export_rows

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    try:
        first = cdr_partitions.parse_month(month)
    except cdr_partitions.PartitionError as exc:
        _fail(f"--month: {exc}")

    async def go(sink) -> None:
        pool = await db.create_pool(dsn, max_size=1)
        try:
            async for chunk in export_rows(pool, first, customer):
                sink.write(chunk)
        finally:
            await pool.close()

    try:
        if out is None:
            asyncio.run(go(sys.stdout))
        else:
            with open(out, "w", encoding="utf-8", newline="") as fh:
                asyncio.run(go(fh))
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"export failed: {exc}")


@psaps_app.command("import")
def psaps_import(
    file: Path = typer.Argument(..., help="FCC PSAP registry shaped CSV (e911_router/psap_csv.py)"),
) -> None:
    """Upsert PSAPs and their county/ZIP areas; a bad row refuses the whole file."""
    import asyncpg

    from e911_router import psap_csv

    s = _settings()
    dsn = s.database_url or LOOPBACK_DATABASE_URL
    try:
        rows = psap_csv.parse_file(file)
    except psap_csv.PsapCsvError as exc:
        _fail(str(exc))

    async def go() -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            return await psap_csv.import_rows(conn, rows)
        finally:
            await conn.close()

    try:
        changed = asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"{file}: not imported: {exc}")
    typer.echo(f"{file}: {len(rows)} PSAPs read, {changed['psaps']} PSAPs and "
               f"{changed['psap_areas']} areas changed")  # fmt: skip


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
