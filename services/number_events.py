"""The dated events that end a telephone number's ownership (A3, R4, B5): port-out,
disconnect, and reinstatement of a ported-in number to its old carrier.

Assignment and port-in are part of provisioning itself (services/provision.apply, from the
YAML file or the API). An ending is written here, in the caller's transaction: the number's
`owned_until` and `state` (the rater stops counting the TN as the customer's from the
event's date) and billing's event row (billing_events, which B5 charges from) — one record
of each, no copy. A TN released this way may be assigned again, to anyone.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.provision import ProvisionConflict, ProvisionError, set_actor

ENDINGS = {"port_out": "ported_out", "disconnect": "disconnected", "reinstate": "reinstated"}


class UnknownNumber(ProvisionError):
    """No such TN in the inventory (HTTP 404)."""


async def end_ownership(
    conn: asyncpg.Connection, tn: str, kind: str, at: datetime | None, actor: str, note: str = ""
) -> asyncpg.Record:
    """Record `kind` for `tn` as of `at` (default now); returns the number's new row."""
    if kind not in ENDINGS:
        raise ProvisionError(f"kind: one of {', '.join(ENDINGS)}")
    if at is not None and at.tzinfo is None:
        raise ProvisionError("at: give a time zone, e.g. 2026-12-01T00:00:00Z")
    async with conn.transaction():
        await set_actor(conn, actor)
        row = await conn.fetchrow(
            "SELECT customer_id, origin, state, owned_from, now() AS now FROM numbers "
            "WHERE tn = $1 FOR UPDATE", tn)  # fmt: skip
        if row is None:
            raise UnknownNumber(f"{tn} is not a number in the inventory")
        if row["state"] != "active":
            raise ProvisionConflict(f"{tn} is already {row['state'].replace('_', ' ')}")
        when = (at or row["now"]).astimezone(UTC)
        if kind == "reinstate" and row["origin"] != "ported_in":
            raise ProvisionError(
                f"kind: only a ported-in number is reinstated to its old carrier; {tn} was "
                "assigned by us (disconnect it instead)"
            )
        if row["owned_from"] is not None and when < row["owned_from"]:
            raise ProvisionError(
                f"at: {when.isoformat()} is before {tn} became the customer's "
                f"({row['owned_from'].isoformat()})"
            )
        await conn.execute(
            "UPDATE numbers SET state = $2, owned_until = $3, updated_at = now() WHERE tn = $1",
            tn, ENDINGS[kind], when,
        )  # fmt: skip
        # B5: a reinstatement is charged by how soon after the port it came.
        await conn.execute(
            """INSERT INTO billing_events (customer_id, kind, at, tns, ported_at, note)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            row["customer_id"], kind, when, [tn],
            (row["owned_from"] or when) if kind == "reinstate" else None, note,
        )  # fmt: skip
        await conn.execute("NOTIFY sipcc_inventory")
        return await conn.fetchrow("SELECT * FROM numbers WHERE tn = $1", tn)


async def cancel_port_in(conn: asyncpg.Connection, tn: str, actor: str, note: str = "") -> datetime:
    """An LNP request withdrawn before its FOC: the TN was never the customer's, so its row
    goes (audited) and billing gets the `lnp_cancel` event B5 charges by the FOC's lead
    time ($6 > 48 h, $75 within). Returns the FOC."""
    async with conn.transaction():
        await set_actor(conn, actor)
        row = await conn.fetchrow(
            "SELECT customer_id, origin, owned_from, now() AS now FROM numbers WHERE tn = $1 "
            "FOR UPDATE", tn)  # fmt: skip
        if row is None:
            raise UnknownNumber(f"{tn} is not a number in the inventory")
        if row["origin"] != "ported_in" or row["owned_from"] is None or row["owned_from"] <= row["now"]:
            raise ProvisionConflict(f"{tn} has no port-in pending (its FOC must be still to come)")
        await conn.execute("DELETE FROM numbers WHERE tn = $1", tn)
        await conn.execute(
            """INSERT INTO billing_events (customer_id, kind, at, tns, foc_at, note)
               VALUES ($1, 'lnp_cancel', $2, $3, $4, $5)""",
            row["customer_id"], row["now"], [tn], row["owned_from"], note,
        )  # fmt: skip
        await conn.execute("NOTIFY sipcc_inventory")
        return row["owned_from"]
