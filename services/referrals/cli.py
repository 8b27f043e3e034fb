"""`sipcc referrals …`: the operator's handles on the referral programmes."""

from __future__ import annotations

import asyncio
from datetime import date

import typer

app = typer.Typer(no_args_is_help=True, help="Referral programmes (F1–F6).")


def _run(coro_fn):
    import asyncpg

    from services.cli import _fail, _settings
    from services.config import LOOPBACK_DATABASE_URL

    s = _settings()

    async def go():
        conn = await asyncpg.connect(s.database_url or LOOPBACK_DATABASE_URL)
        try:
            return await coro_fn(conn, s)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        _fail(f"referrals: {exc}")


def _day(text: str | None) -> date:
    from services.cli import _fail
    from services.referrals.clock import SystemClock

    if text is None:
        return SystemClock().today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"--today must be YYYY-MM-DD, got {text!r}")
        raise


@app.command("settle")
def settle(today: str = typer.Option(None, "--today", help="judge as of this day (YYYY-MM-DD)")):
    """Post matured refer-a-friend credits, forfeit those not in good standing (F2)."""
    from services.referrals import refer_a_friend

    day = _day(today)
    counts = _run(lambda conn, s: refer_a_friend.settle(conn, day))
    typer.echo(f"{day}: {counts['credited']} credited, {counts['forfeited']} forfeited")


@app.command("deliver")
def deliver() -> None:
    """Send the invitations waiting in the outbox (SMTP, SMS provider)."""
    from services.referrals import outbox

    counts = _run(lambda conn, s: outbox.deliver_pending(conn, *outbox.senders(s)))
    typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()))


@app.command("chart")
def chart() -> None:
    """Hold the source's credit chart against rule F2; exit 1 if a row disagrees."""
    from services.referrals.credit_chart import CREDIT_CHART, chart_disagreements, referrer_credit

    for row in CREDIT_CHART:
        typer.echo(f"{row.plan:36} ${row.friend_credit:>6}  chart ${row.your_credit:>6}  "
                   f"F2 ${referrer_credit(row.friend_credit):.2f}")  # fmt: skip
    problems = chart_disagreements()
    for p in problems:
        typer.echo(f"inconsistent: {p}", err=True)
    raise typer.Exit(1 if problems else 0)
