"""`sipcc provision apply FILE.yaml`: idempotent upsert of the provisioning store.

The whole file is validated first (shape, then references against the file and the
database), and only then written, in one transaction: bad input leaves the database as it
was, and the error names the entry and the field. Rows are only touched when a value
differs, so applying the same file twice changes nothing the second time.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from e911_router import provisioning as e911
from e911_router.provisioning import AddressIn, E911In, Webhook
from gateway.sip.digest import make_credential
from rater.numbers import normalize
from services.inventory import ANI_SOURCES

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
Rate = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=5)]


class ProvisionError(ValueError):
    """Bad provisioning input; the message names the entry and the field."""


class ProvisionConflict(ProvisionError):
    """The input is well formed but clashes with what is stored (a TN or trunk group held by
    another customer, a digest username in use): HTTP 409."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CarrierIn(_Strict):
    id: Slug
    name: str
    gateway: Annotated[str, StringConstraints(pattern=r"^sips?:")]


Increments = tuple[Annotated[int, Field(ge=1, le=3600)], Annotated[int, Field(ge=1, le=3600)]]
Area = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Prefix = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,14}$")]
Lata = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,8}$")]


class ServicePriceIn(_Strict):
    """R14: a per-call and/or per-minute price; a service priced neither way is not offered."""

    per_call: Rate | None = None
    per_minute: Rate | None = None


class IncrementsIn(_Strict):
    """R1/R2: (initial, additional) billing increments in seconds, by destination."""

    domestic: Increments | None = None
    international: Increments | None = None
    mexico: Increments | None = None


class _TariffIn(_Strict):
    """The parts of a tariff beyond the four base rates; unset means the agreement's
    figure (rater/tariff.py)."""

    toll_free_inbound_per_minute: Rate | None = None  # R9 ($0.029)
    toll_free_outbound_per_minute: Rate | None = None
    inbound_per_minute: Rate | None = None
    offshore_toll_free_per_minute: dict[Area, Rate] | None = None  # R10, merged over defaults
    payphone_surcharge: Rate | None = None  # R12 ($0.60)
    directory_assistance: ServicePriceIn | None = None  # R14 (411)
    operator: ServicePriceIn | None = None  # R14
    intrastate_per_lata: dict[Lata, Rate] | None = None  # R8
    international_deck: Slug | None = None  # R11
    high_cost_prefixes: list[Prefix] | None = None  # A5
    increments: IncrementsIn | None = None  # R1
    international_increment_regions: list[Area] | None = None  # R2

    def tariff(self) -> dict:
        """The stored JSON form (services/inventory.TARIFF_FIELDS): what was set, decimals
        as strings."""
        out: dict = {}
        for name in ("interstate_per_minute", "intrastate_per_minute", "local_per_minute",
                     "alaska_per_minute", "toll_free_inbound_per_minute",
                     "toll_free_outbound_per_minute", "inbound_per_minute",
                     "payphone_surcharge"):  # fmt: skip
            value = getattr(self, name, None)
            if value is not None and name in self.model_fields_set:
                out[name] = str(value)
        for name in ("offshore_toll_free_per_minute", "intrastate_per_lata"):
            value = getattr(self, name)
            if value is not None:
                out[name] = {k: str(v) for k, v in sorted(value.items())}
        for name in ("directory_assistance", "operator"):
            price = getattr(self, name)
            if price is not None:
                out[f"{name}_per_call"] = None if price.per_call is None else str(price.per_call)
                out[f"{name}_per_minute"] = (
                    None if price.per_minute is None else str(price.per_minute)
                )
        if self.international_deck is not None:
            out["international_deck"] = self.international_deck
        if self.high_cost_prefixes is not None:
            out["high_cost_prefixes"] = list(self.high_cost_prefixes)
        if self.international_increment_regions is not None:
            out["international_increment_regions"] = sorted(self.international_increment_regions)
        if self.increments is not None:
            for row in ("domestic", "international", "mexico"):
                pair = getattr(self.increments, row)
                if pair is not None:
                    out[f"{row}_increments"] = list(pair)
        return out


_SERVICES = ("directory_assistance", "operator")
_INCREMENT_ROWS = ("domestic", "international", "mexico")


def tariff_entry(stored: dict) -> dict:
    """The inverse of `_TariffIn.tariff()`: a stored tariff back in the file's shape (what
    the API shows, and what it merges an update into)."""
    out: dict = {}
    increments: dict = {}
    for k, v in stored.items():
        service = next((s for s in _SERVICES if k.startswith(s + "_per_")), None)
        if service is not None:
            out.setdefault(service, {})[k.removeprefix(service + "_")] = v
        elif k.endswith("_increments") and k.removesuffix("_increments") in _INCREMENT_ROWS:
            increments[k.removesuffix("_increments")] = v
        else:
            out[k] = v
    if increments:
        out["increments"] = increments
    return out


class PlanVersionIn(_TariffIn):
    """A dated change of a plan (R15): what changes from `effective_from` (a UTC day) on,
    applied over the plan and the versions before it."""

    effective_from: date
    interstate_per_minute: Rate | None = None
    intrastate_per_minute: Rate | None = None
    local_per_minute: Rate | None = None
    alaska_per_minute: Rate | None = None


class RatePlanIn(_TariffIn):
    id: Slug
    name: str
    currency: Literal["USD"] = "USD"
    interstate_per_minute: Rate
    intrastate_per_minute: Rate
    local_per_minute: Rate
    alaska_per_minute: Rate = Decimal("0.30")  # rule R7
    versions: list[PlanVersionIn] = []

    @field_validator("versions")
    @classmethod
    def _distinct_days(cls, v: list[PlanVersionIn]) -> list[PlanVersionIn]:
        days = [x.effective_from for x in v]
        if len(set(days)) != len(days):
            raise ValueError("two versions with the same effective_from")
        return v

    def tariff(self) -> dict:
        # The four base rates have columns of their own.
        return {k: v for k, v in super().tariff().items() if k not in _BASE_RATES}


_BASE_RATES = frozenset(
    {"interstate_per_minute", "intrastate_per_minute", "local_per_minute", "alaska_per_minute"}
)


class DigestIn(_Strict):
    """SIP digest credentials of a trunk (rule A8); only HA1 values are stored."""

    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+-]{3,64}$")]
    # None keeps the credential already stored for this username (the API shows no
    # password, so an update that leaves `digest` alone sends none back).
    password: str | None = Field(default=None, min_length=12, max_length=128)


class TrunkGroupIn(_Strict):
    id: Slug
    trunks: int = Field(ge=0, le=100_000)
    source_ips: list[str] = []
    digest: DigestIn | None = None
    carrier: Slug
    ani_precedence: list[Literal["pai", "rpid", "from"]] = list(ANI_SOURCES)

    @model_validator(mode="after")
    def _identified(self) -> TrunkGroupIn:
        if not self.source_ips and self.digest is None:
            raise ValueError("a trunk group needs source_ips or digest credentials (rule A8)")
        return self

    @field_validator("source_ips")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network: {exc}") from None
        return out

    @field_validator("ani_precedence")
    @classmethod
    def _precedence(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or "from" not in v:
            raise ValueError("must list each of pai, rpid, from at most once and include from")
        return v


def _tn(value: str) -> str:
    e164 = normalize(str(value))
    if e164 is None:
        raise ValueError(f"{value!r} is not a valid telephone number")
    return e164


class NumbersIn(_Strict):
    """One TN (`tn`) or an inclusive range (`range: [first, last]`), same last-4 block."""

    tn: str | None = None
    range: tuple[str, str] | None = None
    trunk_group: Slug | None = None
    origin: Literal["assigned", "ported_in"] = "assigned"
    foc_at: datetime | None = None  # a port-in's firm order commitment: owned from then on
    registered_address: AddressIn | None = None

    @model_validator(mode="after")
    def _one_of(self) -> NumbersIn:
        if (self.tn is None) == (self.range is None):
            raise ValueError("give exactly one of 'tn' or 'range'")
        if self.foc_at is not None and self.origin != "ported_in":
            raise ValueError("foc_at is the date of a port-in: give origin: ported_in")
        if self.foc_at is not None and self.foc_at.tzinfo is None:
            raise ValueError("foc_at needs a time zone, e.g. 2026-12-01T00:00:00Z")
        return self

    def expand(self) -> list[str]:
        if self.tn is not None:
            return [_tn(self.tn)]
        assert self.range is not None
        first, last = _tn(self.range[0]), _tn(self.range[1])
        if first[:-4] != last[:-4] or first > last:
            raise ValueError(f"range {first}..{last} must run upwards within one NPA-NXX")
        return [first[:-4] + f"{n:04d}" for n in range(int(first[-4:]), int(last[-4:]) + 1)]


class CustomerIn(_Strict):
    id: Slug
    name: str
    status: Literal["active", "suspended", "cancelled"] = "active"
    status_reason: str | None = Field(default=None, max_length=500)  # why suspended (A9)
    rate_plan: Slug
    credit_limit: Rate | None = None  # A6: approved credit level (USD); none = no limit
    high_cost_allowed: list[Prefix] = []  # A5: high-cost prefixes unblocked on request
    term_start: date | None = None  # R15: prices do not rise during the initial term
    initial_term_months: int | None = Field(default=None, ge=1, le=240)
    # Toll-fraud caps across all of its trunk groups (docs/SECURITY.md); none = no cap.
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=1_000_000)
    max_calls_per_second: int | None = Field(default=None, ge=1, le=10_000)
    trunk_groups: list[TrunkGroupIn] = []
    numbers: list[NumbersIn] = []
    e911_webhook: Webhook | None = None  # on-site notification of every 911 call

    @model_validator(mode="after")
    def _term(self) -> CustomerIn:
        if (self.term_start is None) != (self.initial_term_months is None):
            raise ValueError("give term_start and initial_term_months together")
        return self


class BlockedSourceIn(_Strict):
    """A7: a source whose traffic jeopardizes the network; its calls are refused."""

    network: str
    reason: str = ""

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_network(v, strict=True))
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an IP address or network: {exc}") from None


class ProvisionFile(_Strict):
    carriers: list[CarrierIn] = []
    rate_plans: list[RatePlanIn] = []
    customers: list[CustomerIn] = []
    # When the file has this section, it is the whole list (an address left out is unblocked).
    blocked_sources: list[BlockedSourceIn] = []
    e911: E911In | None = None  # PSAPs, their areas, the national call center


def _where(doc: dict, loc: tuple) -> str:
    """'customers[0] (id=acme).trunk_groups[1].trunks' from a pydantic error location."""
    parts: list[str] = []
    node = doc
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            try:
                node = node[item]
                if isinstance(node, dict) and "id" in node:
                    parts[-1] += f" (id={node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(file)"


def parse(text: str, source: str = "<input>") -> ProvisionFile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProvisionError(f"{source}: not valid YAML{where}: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ProvisionError(f"{source}: the top level must be a mapping of sections")
    try:
        return ProvisionFile.model_validate(doc)
    except ValidationError as exc:
        lines = [f"{source}: {_where(doc, e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ProvisionError("\n".join(lines)) from None


def load_file(path: str | Path) -> ProvisionFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))


async def _check_references(conn: asyncpg.Connection, spec: ProvisionFile) -> list[NumberRow]:
    """Cross-entry checks; returns the expanded number rows."""
    carriers = {c.id for c in spec.carriers} | {
        r["id"] for r in await conn.fetch("SELECT id FROM carriers")
    }
    plans = {p.id for p in spec.rate_plans} | {
        r["id"] for r in await conn.fetch("SELECT id FROM rate_plans")
    }
    # A3: a TN is held by one customer until its port-out, disconnect or reinstatement
    # takes effect; a pending port-in already holds it.
    owners = {
        r["tn"]: r["customer_id"]
        for r in await conn.fetch(
            "SELECT tn, customer_id FROM numbers WHERE owned_until IS NULL OR owned_until > now()"
        )
    }
    tg_owner = {
        r["id"]: r["customer_id"] for r in await conn.fetch("SELECT id, customer_id FROM trunk_groups")
    }
    db_users = {
        r["digest_username"]: r["id"]
        for r in await conn.fetch(
            "SELECT id, digest_username FROM trunk_groups WHERE digest_username IS NOT NULL"
        )
    }
    seen_users: dict[str, str] = {}
    errors: list[str] = []
    conflicts: list[str] = []
    rows: list[tuple] = []
    seen_tns: dict[str, str] = {}
    seen_tgs: dict[str, str] = {}
    for ci, cust in enumerate(spec.customers):
        at = f"customers[{ci}] (id={cust.id})"
        if cust.rate_plan not in plans:
            errors.append(f"{at}.rate_plan: no rate plan {cust.rate_plan!r}")
        own_tgs = {tg.id for tg in cust.trunk_groups}
        for ti, tg in enumerate(cust.trunk_groups):
            tat = f"{at}.trunk_groups[{ti}] (id={tg.id})"
            if tg.carrier not in carriers:
                errors.append(f"{tat}.carrier: no carrier {tg.carrier!r}")
            if tg.digest is not None:
                holder = seen_users.get(tg.digest.username) or db_users.get(tg.digest.username)
                if holder is not None and holder != tg.id:
                    conflicts.append(f"{tat}.digest.username: already used by trunk group {holder!r}")
                if tg.digest.password is None and db_users.get(tg.digest.username) != tg.id:
                    errors.append(f"{tat}.digest.password: required for a new credential")
                seen_users[tg.digest.username] = tg.id
            other = seen_tgs.get(tg.id) or tg_owner.get(tg.id)
            if other is not None and other != cust.id:
                conflicts.append(f"{tat}.id: trunk group {tg.id!r} belongs to customer {other!r}")
            seen_tgs[tg.id] = cust.id
        for ni, block in enumerate(cust.numbers):
            nat = f"{at}.numbers[{ni}]"
            try:
                tns = block.expand()
            except ValueError as exc:
                errors.append(f"{nat}.{'tn' if block.tn else 'range'}: {exc}")
                continue
            if block.trunk_group and block.trunk_group not in own_tgs and tg_owner.get(
                block.trunk_group
            ) != cust.id:
                errors.append(
                    f"{nat}.trunk_group: {block.trunk_group!r} is not a trunk group of {cust.id!r}"
                )
            for tn in tns:
                other = seen_tns.get(tn) or owners.get(tn)
                if other is not None and other != cust.id:
                    conflicts.append(f"{nat}: {tn} belongs to customer {other!r} (rule A3)")
                seen_tns[tn] = cust.id
                rows.append(NumberRow(tn, cust.id, block, held=owners.get(tn) == cust.id))
    if errors:
        raise ProvisionError("\n".join(errors + conflicts))
    if conflicts:
        raise ProvisionConflict("\n".join(conflicts))
    return rows


@dataclass(frozen=True, slots=True)
class NumberRow:
    tn: str
    customer_id: str
    block: NumbersIn
    held: bool  # already this customer's (else new, released, or a port-in to record)


# Each upsert touches a row only when a value differs, so a second apply changes nothing.
_UPSERT_CARRIER = """
INSERT INTO carriers (id, name, gateway_uri) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, gateway_uri = EXCLUDED.gateway_uri,
    updated_at = now()
WHERE (carriers.name, carriers.gateway_uri) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.gateway_uri)
"""
_UPSERT_PLAN = """
INSERT INTO rate_plans (id, name, currency, interstate_per_minute, intrastate_per_minute,
                        local_per_minute, alaska_per_minute, tariff)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, currency = EXCLUDED.currency,
    interstate_per_minute = EXCLUDED.interstate_per_minute,
    intrastate_per_minute = EXCLUDED.intrastate_per_minute,
    local_per_minute = EXCLUDED.local_per_minute, alaska_per_minute = EXCLUDED.alaska_per_minute,
    tariff = EXCLUDED.tariff, updated_at = now()
WHERE (rate_plans.name, rate_plans.currency, rate_plans.interstate_per_minute,
       rate_plans.intrastate_per_minute, rate_plans.local_per_minute, rate_plans.alaska_per_minute,
       rate_plans.tariff)
   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.currency, EXCLUDED.interstate_per_minute,
       EXCLUDED.intrastate_per_minute, EXCLUDED.local_per_minute, EXCLUDED.alaska_per_minute,
       EXCLUDED.tariff)
"""
_DELETE_PLAN_VERSIONS = """
DELETE FROM rate_plan_versions WHERE plan_id = $1 AND NOT (effective_from = ANY($2::date[]))
"""
_UPSERT_PLAN_VERSION = """
INSERT INTO rate_plan_versions (plan_id, effective_from, rates) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (plan_id, effective_from) DO UPDATE SET rates = EXCLUDED.rates, updated_at = now()
WHERE rate_plan_versions.rates IS DISTINCT FROM EXCLUDED.rates
"""
_UPSERT_CUSTOMER = """
INSERT INTO customers (id, name, status, rate_plan_id, credit_limit, high_cost_allowed,
                       term_start, initial_term_months, status_reason,
                       max_concurrent_calls, max_calls_per_second)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status,
    rate_plan_id = EXCLUDED.rate_plan_id, credit_limit = EXCLUDED.credit_limit,
    high_cost_allowed = EXCLUDED.high_cost_allowed, term_start = EXCLUDED.term_start,
    initial_term_months = EXCLUDED.initial_term_months,
    status_reason = EXCLUDED.status_reason, max_concurrent_calls = EXCLUDED.max_concurrent_calls,
    max_calls_per_second = EXCLUDED.max_calls_per_second, updated_at = now()
WHERE (customers.name, customers.status, customers.rate_plan_id, customers.credit_limit,
       customers.high_cost_allowed, customers.term_start, customers.initial_term_months,
       customers.status_reason, customers.max_concurrent_calls, customers.max_calls_per_second)
   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.status, EXCLUDED.rate_plan_id,
       EXCLUDED.credit_limit, EXCLUDED.high_cost_allowed, EXCLUDED.term_start,
       EXCLUDED.initial_term_months, EXCLUDED.status_reason,
       EXCLUDED.max_concurrent_calls, EXCLUDED.max_calls_per_second)
"""
_DELETE_BLOCKED = "DELETE FROM blocked_sources WHERE NOT (network = ANY($1::cidr[]))"
_UPSERT_BLOCKED = """
INSERT INTO blocked_sources (network, reason) VALUES ($1::cidr, $2)
ON CONFLICT (network) DO UPDATE SET reason = EXCLUDED.reason, updated_at = now()
WHERE blocked_sources.reason IS DISTINCT FROM EXCLUDED.reason
"""
_UPSERT_TG = """
INSERT INTO trunk_groups (id, customer_id, trunks, source_ips, ani_precedence, carrier_id,
                          digest_username, digest_realm, digest_ha1)
VALUES ($1, $2, $3, $4::cidr[], $5, $6, $7, $8, $9::jsonb)
ON CONFLICT (id) DO UPDATE SET trunks = EXCLUDED.trunks, source_ips = EXCLUDED.source_ips,
    ani_precedence = EXCLUDED.ani_precedence, carrier_id = EXCLUDED.carrier_id,
    digest_username = EXCLUDED.digest_username, digest_realm = EXCLUDED.digest_realm,
    digest_ha1 = EXCLUDED.digest_ha1, updated_at = now()
WHERE (trunk_groups.trunks, trunk_groups.source_ips, trunk_groups.ani_precedence,
       trunk_groups.carrier_id, trunk_groups.digest_username, trunk_groups.digest_realm,
       trunk_groups.digest_ha1)
   IS DISTINCT FROM (EXCLUDED.trunks, EXCLUDED.source_ips, EXCLUDED.ani_precedence,
       EXCLUDED.carrier_id, EXCLUDED.digest_username, EXCLUDED.digest_realm, EXCLUDED.digest_ha1)
"""
# A TN the customer already holds keeps its ownership dates (a new FOC moves a pending
# port-in). A TN new to the store is owned from its FOC, else with no start (NULL: since it
# was assigned, so calls rated for earlier days still find it); a TN taken over from
# another customer is owned from its FOC, else from now — the earlier days were not its.
# (A3, R4)
_UPDATE_HELD_NUMBER = """
UPDATE numbers SET trunk_group_id = $3, origin = $4,
    owned_from = coalesce($5, owned_from), updated_at = now()
WHERE tn = $1 AND customer_id = $2
  AND (trunk_group_id, origin, owned_from) IS DISTINCT FROM ($3, $4, coalesce($5, owned_from))
"""
_ASSIGN_NUMBER = """
INSERT INTO numbers (tn, customer_id, trunk_group_id, origin, owned_from)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tn) DO UPDATE SET customer_id = EXCLUDED.customer_id,
    trunk_group_id = EXCLUDED.trunk_group_id, origin = EXCLUDED.origin, state = 'active',
    owned_from = coalesce(EXCLUDED.owned_from, now()), owned_until = NULL, updated_at = now()
"""
# B5 reads port-ins (and their FOC) from billing's events, the one record of dated events.
_PORT_IN_EVENT = """
INSERT INTO billing_events (customer_id, kind, at, tns, foc_at, note)
VALUES ($1, 'port_in', now(), $2, $3, 'provisioning')
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def set_actor(conn: asyncpg.Connection, actor: str) -> None:
    """Who the audit trail (provisioning_audit, migration 0009) names for this transaction's
    changes: an API key's name, 'yaml:<file>', 'cli:<user>'."""
    await conn.execute("SELECT set_config('sipcc.actor', $1, true)", actor)


async def apply(
    conn: asyncpg.Connection, spec: ProvisionFile, realm_name: str = "sipcc",
    actor: str = "yaml",
) -> dict[str, int]:
    """Write `spec` in one transaction (a savepoint inside the caller's); returns rows
    changed per table (all 0 when up to date). The YAML file and the HTTP API both write
    through here."""
    changed = dict.fromkeys(
        ("carriers", "rate_plans", "rate_plan_versions", "customers", "trunk_groups", "numbers",
         "registered_addresses", "blocked_sources"),
        0,
    )  # fmt: skip
    async with conn.transaction():
        # Serialise concurrent applies so reference checks see a stable database.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sipcc.provision'))")
        await set_actor(conn, actor)
        number_rows = await _check_references(conn, spec)
        for c in spec.carriers:
            changed["carriers"] += _count(await conn.execute(_UPSERT_CARRIER, c.id, c.name, c.gateway))
        for p in spec.rate_plans:
            changed["rate_plans"] += _count(
                await conn.execute(
                    _UPSERT_PLAN, p.id, p.name, p.currency, p.interstate_per_minute,
                    p.intrastate_per_minute, p.local_per_minute, p.alaska_per_minute,
                    json.dumps(p.tariff(), sort_keys=True),
                )
            )  # fmt: skip
            # A plan's versions are part of its entry: the file's list is the whole list.
            days = [v.effective_from for v in p.versions]
            changed["rate_plan_versions"] += _count(
                await conn.execute(_DELETE_PLAN_VERSIONS, p.id, days)
            )
            for v in p.versions:
                changed["rate_plan_versions"] += _count(
                    await conn.execute(_UPSERT_PLAN_VERSION, p.id, v.effective_from,
                                       json.dumps(v.tariff(), sort_keys=True))
                )  # fmt: skip
        for cust in spec.customers:
            changed["customers"] += _count(
                await conn.execute(
                    _UPSERT_CUSTOMER, cust.id, cust.name, cust.status, cust.rate_plan,
                    cust.credit_limit, list(cust.high_cost_allowed), cust.term_start,
                    cust.initial_term_months, cust.status_reason,
                    cust.max_concurrent_calls, cust.max_calls_per_second,
                )
            )  # fmt: skip
            for tg in cust.trunk_groups:
                user = realm = ha1s = None
                if tg.digest is not None and tg.digest.password is None:
                    # Kept as stored (checked above: this username is this trunk group's).
                    user, realm, ha1s = tg.digest.username, *await conn.fetchrow(
                        "SELECT digest_realm, digest_ha1::text FROM trunk_groups WHERE id = $1",
                        tg.id)  # fmt: skip
                elif tg.digest is not None:
                    user, realm = tg.digest.username, realm_name
                    ha1s = json.dumps(make_credential(user, realm, tg.digest.password).ha1,
                                      sort_keys=True)  # fmt: skip
                changed["trunk_groups"] += _count(
                    await conn.execute(
                        _UPSERT_TG, tg.id, cust.id, tg.trunks, tg.source_ips,
                        tg.ani_precedence, tg.carrier, user, realm, ha1s,
                    )
                )  # fmt: skip
        ported: dict[tuple[str, datetime | None], list[str]] = {}
        for n in number_rows:
            b = n.block
            args = (n.tn, n.customer_id, b.trunk_group, b.origin, b.foc_at)
            changed["numbers"] += _count(
                await conn.execute(_UPDATE_HELD_NUMBER if n.held else _ASSIGN_NUMBER, *args)
            )
            if not n.held and b.origin == "ported_in":
                ported.setdefault((n.customer_id, b.foc_at), []).append(n.tn)
            addr = b.registered_address
            if addr is not None:
                changed["registered_addresses"] += await e911.store_address(
                    conn, n.tn, addr.address, addr.move_pending
                )
        for (customer_id, foc_at), tns in ported.items():
            await conn.execute(_PORT_IN_EVENT, customer_id, tns, foc_at)
        for cust in spec.customers:
            if "e911_webhook" in cust.model_fields_set:
                changed["customers"] += await e911.set_webhook(conn, cust.id, cust.e911_webhook)
        if spec.e911 is not None:
            changed.update(await e911.apply_psaps(conn, spec.e911))
        if "blocked_sources" in spec.model_fields_set:
            nets = [b.network for b in spec.blocked_sources]
            changed["blocked_sources"] += _count(await conn.execute(_DELETE_BLOCKED, nets))
            for b in spec.blocked_sources:
                changed["blocked_sources"] += _count(
                    await conn.execute(_UPSERT_BLOCKED, b.network, b.reason)
                )
        if any(changed.values()):
            # Running edges and raters reload their view on this signal.
            await conn.execute("NOTIFY sipcc_inventory")
    return changed
