"""Invitations go out through an outbox: a row is written in the same transaction as the
referral, and `deliver_pending()` sends it — e-mail over SMTP, SMS through an `SmsProvider`.
A send that fails stays pending with its error and is retried; after `MAX_ATTEMPTS` it is
marked failed. The per-sender daily cap (spam guard) is counted here, on the outbox.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from typing import Protocol

import asyncpg

from services import logs, metrics
from services.referrals.errors import ReferralError

log = logs.get("referrals.outbox")
MAX_ATTEMPTS = 5


async def check_daily_cap(conn: asyncpg.Connection, sender_id: str, today: date, cap: int) -> None:
    sent_today = await conn.fetchval(
        "SELECT count(*) FROM referral_outbox WHERE sender_id = $1 AND created_on = $2",
        sender_id, today,
    )  # fmt: skip
    if sent_today >= cap:
        metrics.referral_refusals_total.labels(guard="daily_cap").inc()
        raise ReferralError(
            f"{sender_id} has sent its {cap} invitations for {today}; try again tomorrow",
            rule="F3", status=429,
        )  # fmt: skip


async def enqueue(
    conn: asyncpg.Connection, sender_id: str | None, channel: str, recipient: str,
    subject: str | None, body: str, today: date,
) -> int:  # fmt: skip
    return await conn.fetchval(
        "INSERT INTO referral_outbox (sender_id, channel, recipient, subject, body, created_on) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        sender_id, channel, recipient, subject, body, today,
    )  # fmt: skip


class SmsProvider(Protocol):
    async def send(self, to: str, text: str) -> None: ...


class HttpSmsProvider:
    """An SMS gateway that takes `{"to", "text"}` as JSON by HTTP POST (most do, with their
    own field names: subclass and override `payload`). Any non-2xx answer is a failure."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def payload(self, to: str, text: str) -> dict:
        return {"to": to, "text": text}

    async def send(self, to: str, text: str) -> None:
        body = json.dumps(self.payload(to, text)).encode()
        req = urllib.request.Request(
            self.url, data=body, headers={"content-type": "application/json"}, method="POST"
        )

        def post() -> None:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()

        await asyncio.to_thread(post)


@dataclass(frozen=True)
class SmtpSender:
    """E-mail over SMTP with the standard library, in a worker thread (one connection per
    batch is not worth a dependency at invitation volumes)."""

    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def _send_all(self, messages: list[EmailMessage]) -> list[Exception | None]:
        results: list[Exception | None] = []
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            for msg in messages:
                try:
                    smtp.send_message(msg)
                    results.append(None)
                except smtplib.SMTPException as exc:
                    results.append(exc)
        return results

    async def send_all(self, messages: list[EmailMessage]) -> list[Exception | None]:
        return await asyncio.to_thread(self._send_all, messages)

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        return msg


async def _mark(conn: asyncpg.Connection, row_id: int, error: Exception | None,
                attempt: bool = True) -> None:  # fmt: skip
    """Record a send. A refusal of the message itself counts as an attempt (5 make it
    failed); an unreachable server does not — the message waits for it, however long."""
    if error is None:
        await conn.execute(
            "UPDATE referral_outbox SET status = 'sent', attempts = attempts + 1, sent_at = now(), "
            "last_error = NULL WHERE id = $1", row_id,
        )  # fmt: skip
        return
    step = 1 if attempt else 0
    await conn.execute(
        "UPDATE referral_outbox SET attempts = attempts + $4, last_error = $2, "
        "status = CASE WHEN attempts + $4 >= $3 THEN 'failed' ELSE 'pending' END WHERE id = $1",
        row_id, f"{type(error).__name__}: {error}"[:500], MAX_ATTEMPTS, step,
    )  # fmt: skip


def _is_refusal(error: Exception) -> bool:
    """The message was refused (bad address, 4xx from a provider), not the server away."""
    if isinstance(error, urllib.error.HTTPError):
        return 400 <= error.code < 500
    return isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError
                      | smtplib.SMTPSenderRefused)  # fmt: skip


async def deliver_pending(
    conn: asyncpg.Connection,
    email: SmtpSender | None,
    sms: SmsProvider | None,
    limit: int = 100,
) -> dict[str, int]:
    """Send what is pending; returns counts of sends that went and that did not. A channel
    without a configured sender is left pending (and logged) rather than lost."""
    # Rows are locked while they are sent, so two dispatchers (two API processes) never send
    # one message twice; a crash mid-batch leaves them pending, to be sent again.
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT id, channel, recipient, subject, body FROM referral_outbox "
            "WHERE status = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit,
        )  # fmt: skip
        return await _send(conn, rows, email, sms)


async def _send(conn, rows, email: SmtpSender | None, sms: SmsProvider | None) -> dict[str, int]:
    counts = {"sent": 0, "failed": 0, "waiting": 0}
    mails = [r for r in rows if r["channel"] == "email"]
    texts = [r for r in rows if r["channel"] == "sms"]

    def tally(channel: str, row_id: int, error: Exception | None) -> None:
        outcome = "sent" if error is None else "failed"
        counts[outcome] += 1
        metrics.referral_messages_total.labels(channel=channel, outcome=outcome).inc()
        if error is not None:
            log.warning("referral message not sent", id=row_id, channel=channel, error=str(error))

    if mails and email is not None:
        try:
            results: list[Exception | None] = await email.send_all(
                [email.message(r["recipient"], r["subject"] or "", r["body"]) for r in mails]
            )
        except (OSError, smtplib.SMTPException) as exc:  # the server itself: all wait
            results = [exc] * len(mails)
        for r, err in zip(mails, results, strict=True):
            await _mark(conn, r["id"], err, err is not None and _is_refusal(err))
            tally("email", r["id"], err)
    elif mails:
        counts["waiting"] += len(mails)
        log.warning("e-mail invitations waiting: no SMTP server configured", count=len(mails))
    for r in texts:
        if sms is None:
            counts["waiting"] += 1
            continue
        err: Exception | None = None
        try:
            await sms.send(r["recipient"], r["body"])
        except Exception as exc:  # any provider failure is retried, never lost
            err = exc
        await _mark(conn, r["id"], err, err is not None and _is_refusal(err))
        tally("sms", r["id"], err)
    return counts


def senders(settings) -> tuple[SmtpSender | None, HttpSmsProvider | None]:
    """The configured e-mail and SMS senders (None where not configured)."""
    email = None
    if settings.smtp_host:
        email = SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                           settings.smtp_starttls, settings.smtp_username,
                           settings.smtp_password)  # fmt: skip
    sms = HttpSmsProvider(settings.sms_provider_url) if settings.sms_provider_url else None
    return email, sms
