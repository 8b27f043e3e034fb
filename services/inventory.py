"""The in-memory view of the provisioning store that the call path reads.

The edge and the rater never query Postgres per call: they read an `Inventory` snapshot,
loaded whole from Postgres at start and swapped atomically on reload. Lookups are dict
and small-list scans, so a decision costs microseconds. The reference data (NPA-NXX-X,
LCAs, rate decks) rides along as `Inventory.refdata`, reloaded only when an import changed
it (services/refdata.py).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

import asyncpg

from e911_router.coverage import E911Data
from e911_router.coverage import load as load_e911
from rater import tariff
from rater.refdata import RefData
from services.pacing import paced

ANI_SOURCES = ("pai", "rpid", "from")


@dataclass(frozen=True, slots=True)
class Carrier:
    id: str
    name: str
    gateway_uri: str


def _dec(v: object) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _opt_dec(v: object) -> Decimal | None:
    return None if v is None else _dec(v)


def _rates(v: dict) -> dict[str, Decimal]:
    return {str(k): _dec(x) for k, x in v.items()}


def _pair(v) -> tuple[int, int]:
    a, b = v
    return int(a), int(b)


def _strings(v) -> tuple[str, ...]:
    return tuple(str(p) for p in v)


def _regions(v) -> frozenset[str]:
    return frozenset(str(r) for r in v)


# Tariff fields a plan (or a dated version of it) may set, with the conversion from their
# stored JSON form. Dict-valued fields merge over what the plan had; the others replace.
TARIFF_FIELDS = {
    "interstate_per_minute": _dec,
    "intrastate_per_minute": _dec,
    "local_per_minute": _dec,
    "alaska_per_minute": _dec,
    "toll_free_inbound_per_minute": _dec,
    "toll_free_outbound_per_minute": _dec,
    "inbound_per_minute": _dec,
    "offshore_toll_free_per_minute": _rates,
    "payphone_surcharge": _dec,
    "directory_assistance_per_call": _opt_dec,
    "directory_assistance_per_minute": _opt_dec,
    "operator_per_call": _opt_dec,
    "operator_per_minute": _opt_dec,
    "intrastate_per_lata": _rates,
    "international_deck": str,
    "high_cost_prefixes": _strings,
    "domestic_increments": _pair,
    "international_increments": _pair,
    "mexico_increments": _pair,
    "international_increment_regions": _regions,
}
_MERGED = frozenset({"offshore_toll_free_per_minute", "intrastate_per_lata"})


@dataclass(frozen=True, slots=True)
class RatePlan:
    """A customer's prices. Defaults are the service agreement's figures (rater/tariff.py);
    `versions` are the plan's dated changes (rule R15), newest first."""

    id: str
    name: str
    currency: str
    interstate_per_minute: Decimal  # R7
    intrastate_per_minute: Decimal  # R8, for LATAs without a rate of their own
    local_per_minute: Decimal  # R3
    alaska_per_minute: Decimal = tariff.ALASKA_PER_MINUTE  # R7
    toll_free_inbound_per_minute: Decimal = tariff.TOLL_FREE_INBOUND_PER_MINUTE  # R9
    toll_free_outbound_per_minute: Decimal = tariff.ZERO  # the toll-free subscriber pays
    inbound_per_minute: Decimal = tariff.ZERO  # calls to a DID; B2 bills over the cap monthly
    offshore_toll_free_per_minute: dict[str, Decimal] = field(
        default_factory=lambda: dict(tariff.OFFSHORE_TOLL_FREE_PER_MINUTE)
    )  # R10
    payphone_surcharge: Decimal = tariff.PAYPHONE_SURCHARGE  # R12
    # R14: None = not priced on this plan, so not carried (nothing is given away unbilled).
    directory_assistance_per_call: Decimal | None = None
    directory_assistance_per_minute: Decimal | None = None
    operator_per_call: Decimal | None = None
    operator_per_minute: Decimal | None = None
    intrastate_per_lata: dict[str, Decimal] = field(default_factory=dict)  # R8
    international_deck: str = tariff.DEFAULT_DECK  # R11
    high_cost_prefixes: tuple[str, ...] = tariff.HIGH_COST_PREFIXES  # A5
    domestic_increments: tuple[int, int] = tariff.DOMESTIC_INCREMENTS  # R1
    international_increments: tuple[int, int] = tariff.INTERNATIONAL_INCREMENTS  # R1
    mexico_increments: tuple[int, int] = tariff.MEXICO_INCREMENTS  # R1
    international_increment_regions: frozenset[str] = tariff.NON_CONTINENTAL  # R2
    effective_from: date | None = None
    versions: tuple[tuple[int, RatePlan], ...] = ()  # (first day as ordinal, version)

    def with_tariff(self, overrides: dict, effective_from: date | None = None) -> RatePlan:
        """This plan with `overrides` (field → stored JSON value) applied, without versions."""
        changes: dict = {"versions": ()}
        for name, raw in overrides.items():
            convert = TARIFF_FIELDS.get(name)
            if convert is None:
                continue  # a field of a newer release: this one keeps its default
            value = convert(raw) if raw is not None else None
            if name in _MERGED:
                value = {**getattr(self, name), **value}
            changes[name] = value
        if effective_from is not None:
            changes["effective_from"] = effective_from
        return replace(self, **changes)

    def at(self, day: int) -> RatePlan:
        """Rule R15: the version of this plan in force on `day` (a date ordinal)."""
        for start, version in self.versions:
            if start <= day:
                return version
        return self

    def lata_rate(self, lata: str | None) -> Decimal:
        """Rule R8: the intrastate rate of a LATA, else the plan's flat intrastate rate."""
        if lata is not None:
            rate = self.intrastate_per_lata.get(lata)
            if rate is not None:
                return rate
        return self.intrastate_per_minute

    def capped_by(self, signed: RatePlan) -> RatePlan:
        """Rule R15: no price above the one in `signed` (the version in force when the
        initial term began). Lower prices pass through. International decks are not capped:
        the agreement says international rates are subject to change."""
        changes: dict = {}
        for name, convert in TARIFF_FIELDS.items():
            mine, theirs = getattr(self, name), getattr(signed, name)
            if mine is None or theirs is None:
                continue
            if convert in (_dec, _opt_dec) and theirs < mine:
                changes[name] = theirs
        latas = self.intrastate_per_lata.keys() | signed.intrastate_per_lata.keys()
        lata = {k: min(self.lata_rate(k), signed.lata_rate(k)) for k in latas}
        if lata != self.intrastate_per_lata:
            changes["intrastate_per_lata"] = lata
        offshore = {
            k: min(v, signed.offshore_toll_free_per_minute.get(k, v))
            for k, v in self.offshore_toll_free_per_minute.items()
        }
        if offshore != self.offshore_toll_free_per_minute:
            changes["offshore_toll_free_per_minute"] = offshore
        return replace(self, **changes) if changes else self


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return date(year, month, min(d.day, (nxt - date(year, month, 1)).days))


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    status: str
    rate_plan_id: str
    credit_limit: Decimal | None
    high_cost_allowed: tuple[str, ...] = ()  # A5: prefixes unblocked at the customer's request
    term_start: date | None = None  # R15: prices do not rise during the initial term
    initial_term_months: int | None = None
    # Toll-fraud caps across all of the customer's trunk groups (rater/caps.py); None = none.
    max_concurrent_calls: int | None = None
    max_calls_per_second: int | None = None

    def in_initial_term(self, day: int) -> bool:
        if self.term_start is None or not self.initial_term_months:
            return False
        end = add_months(self.term_start, self.initial_term_months)
        return self.term_start.toordinal() <= day < end.toordinal()


@dataclass(frozen=True, slots=True)
class TrunkGroup:
    id: str
    customer_id: str
    trunks: int
    source_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    ani_precedence: tuple[str, ...]
    carrier_id: str
    digest_username: str | None = None
    digest_realm: str | None = None
    digest_ha1: tuple[tuple[str, str], ...] = ()  # (algorithm, HA1 hex), never a password


@dataclass(frozen=True, slots=True)
class Number:
    tn: str
    customer_id: str
    trunk_group_id: str | None
    origin: str
    # A3, R4: owned on the days [owned_from, owned_until) as date ordinals (UTC); None =
    # open. A port-in counts from its FOC; a port-out, disconnect or reinstatement to the
    # old carrier ends it from the day of its event.
    owned_from: int | None = None
    owned_until: int | None = None

    def owned_on(self, day: int) -> bool:
        return (self.owned_from is None or self.owned_from <= day) and (
            self.owned_until is None or day < self.owned_until
        )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class Inventory:
    carriers: dict[str, Carrier] = field(default_factory=dict)
    rate_plans: dict[str, RatePlan] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    trunk_groups: dict[str, TrunkGroup] = field(default_factory=dict)
    numbers: dict[str, Number] = field(default_factory=dict)
    refdata: RefData = field(default_factory=RefData)
    # Rule A7: sources whose traffic jeopardizes the network (floods, scanners), refused.
    blocked_sources: dict[Network, str] = field(default_factory=dict)
    e911: E911Data = field(default_factory=E911Data)  # PSAPs, areas, registered addresses
    _by_host: dict[str, TrunkGroup] = field(default_factory=dict)
    _by_user: dict[str, TrunkGroup] = field(default_factory=dict)
    _by_network: list[tuple[Network, TrunkGroup]] = field(default_factory=list)
    _blocked_hosts: dict[str, str] = field(default_factory=dict)
    _blocked_networks: list[tuple[Network, str]] = field(default_factory=list)
    _capped: dict[tuple, RatePlan] = field(default_factory=dict)

    def index(self) -> Inventory:
        self._by_host.clear()
        self._by_network.clear()
        self._by_user.clear()
        for tg in self.trunk_groups.values():
            if tg.digest_username:
                self._by_user[tg.digest_username] = tg
            for net in tg.source_networks:
                if net.num_addresses == 1:
                    self._by_host[str(net.network_address)] = tg
                else:
                    self._by_network.append((net, tg))
        # Most specific network first, so a /32 inside a /24 of another trunk wins.
        self._by_network.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._blocked_hosts.clear()
        self._blocked_networks.clear()
        for net, reason in self.blocked_sources.items():
            if net.num_addresses == 1:
                self._blocked_hosts[str(net.network_address)] = reason
            else:
                self._blocked_networks.append((net, reason))
        self._capped.clear()
        return self

    def trunk_for_source(self, ip: str) -> TrunkGroup | None:
        """Rule A8: the trunk group whose registered address(es) include this source."""
        tg = self._by_host.get(ip)
        if tg is not None or not self._by_network:
            return tg
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, candidate in self._by_network:
            if addr.version == net.version and addr in net:
                return candidate
        return None

    def source_blocked(self, ip: str) -> str | None:
        """Rule A7: the reason a source is blocked, or None."""
        reason = self._blocked_hosts.get(ip)
        if reason is not None or not self._blocked_networks:
            return reason
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, why in self._blocked_networks:
            if addr.version == net.version and addr in net:
                return why
        return None

    @property
    def has_digest_trunks(self) -> bool:
        return bool(self._by_user)

    def trunk_for_user(self, username: str) -> TrunkGroup | None:
        """Rule A8, the other way in: the trunk group whose digest username this is."""
        return self._by_user.get(username)

    def owner_of(self, tn: str | None, day: int | None = None) -> Number | None:
        """A3, R4: the TN's holder on `day` (a date ordinal; None: ignore dates)."""
        num = self.numbers.get(tn) if tn else None
        if num is None or day is None or num.owned_on(day):
            return num
        return None

    def plan_for(self, customer: Customer, day: int) -> RatePlan | None:
        """Rule R15: the customer's plan as in force on `day`, no dearer than when its
        initial term began while that term lasts."""
        plan = self.rate_plans.get(customer.rate_plan_id)
        if plan is None or not plan.versions:
            return plan
        current = plan.at(day)
        if not customer.in_initial_term(day):
            return current
        assert customer.term_start is not None
        start = customer.term_start.toordinal()
        signed = plan.at(start)
        if signed is current:
            return current
        key = (plan.id, start, current.effective_from)
        capped = self._capped.get(key)
        if capped is None:
            capped = self._capped[key] = current.capped_by(signed)
        return capped


def plan_from_row(row, versions: list[tuple[date, dict]]) -> RatePlan:
    """A plan from its `rate_plans` row and its dated changes, each applied over the last."""
    base = RatePlan(
        id=row["id"], name=row["name"], currency=row["currency"],
        interstate_per_minute=row["interstate_per_minute"],
        intrastate_per_minute=row["intrastate_per_minute"],
        local_per_minute=row["local_per_minute"], alaska_per_minute=row["alaska_per_minute"],
    ).with_tariff(json.loads(row["tariff"]) if row["tariff"] else {})  # fmt: skip
    built: list[tuple[int, RatePlan]] = []
    current = base
    for effective_from, rates in sorted(versions, key=lambda v: v[0]):
        current = current.with_tariff(rates, effective_from)
        built.append((effective_from.toordinal(), current))
    return replace(base, versions=tuple(reversed(built))) if built else base


async def load(conn: asyncpg.Connection | asyncpg.Pool) -> Inventory:
    from services import refdata  # the loader imports this module for its types

    inv = Inventory()
    for r in await conn.fetch("SELECT id, name, gateway_uri FROM carriers"):
        inv.carriers[r["id"]] = Carrier(r["id"], r["name"], r["gateway_uri"])
    versions: dict[str, list[tuple[date, dict]]] = {}
    for r in await conn.fetch("SELECT plan_id, effective_from, rates FROM rate_plan_versions"):
        versions.setdefault(r["plan_id"], []).append((r["effective_from"], json.loads(r["rates"])))
    for r in await conn.fetch(
        """SELECT id, name, currency, interstate_per_minute, intrastate_per_minute,
                  local_per_minute, alaska_per_minute, tariff FROM rate_plans"""
    ):
        inv.rate_plans[r["id"]] = plan_from_row(r, versions.get(r["id"], []))
    for r in await conn.fetch(
        # The credit level is billing's (B10: limit plus deposit) when billing set one.
        """SELECT c.id, name, status, rate_plan_id, cc.credit_limit, high_cost_allowed,
                  term_start, initial_term_months, max_concurrent_calls, max_calls_per_second
           FROM customers c JOIN customer_credit cc ON cc.customer_id = c.id"""
    ):
        inv.customers[r["id"]] = Customer(
            id=r["id"], name=r["name"], status=r["status"], rate_plan_id=r["rate_plan_id"],
            credit_limit=r["credit_limit"], high_cost_allowed=tuple(r["high_cost_allowed"]),
            term_start=r["term_start"], initial_term_months=r["initial_term_months"],
            max_concurrent_calls=r["max_concurrent_calls"],
            max_calls_per_second=r["max_calls_per_second"],
        )  # fmt: skip
    for r in await conn.fetch(
        """SELECT id, customer_id, trunks, source_ips, ani_precedence, carrier_id,
                  digest_username, digest_realm, digest_ha1
           FROM trunk_groups"""
    ):
        inv.trunk_groups[r["id"]] = TrunkGroup(
            id=r["id"],
            customer_id=r["customer_id"],
            trunks=r["trunks"],
            source_networks=tuple(ipaddress.ip_network(n) for n in r["source_ips"]),
            ani_precedence=tuple(r["ani_precedence"]),
            carrier_id=r["carrier_id"],
            digest_username=r["digest_username"],
            digest_realm=r["digest_realm"],
            digest_ha1=tuple(sorted(json.loads(r["digest_ha1"]).items())) if r["digest_ha1"] else (),
        )
    async for r in paced(await conn.fetch(
        """SELECT tn, customer_id, trunk_group_id, origin,
                  (owned_from AT TIME ZONE 'UTC')::date AS owned_from,
                  (owned_until AT TIME ZONE 'UTC')::date AS owned_until FROM numbers"""
    )):
        start, end = r["owned_from"], r["owned_until"]
        inv.numbers[r["tn"]] = Number(
            r["tn"], r["customer_id"], r["trunk_group_id"], r["origin"],
            start.toordinal() if start else None, end.toordinal() if end else None,
        )  # fmt: skip
    for r in await conn.fetch("SELECT network, reason FROM blocked_sources"):
        inv.blocked_sources[ipaddress.ip_network(r["network"])] = r["reason"]
    inv.refdata = await refdata.load_cached(conn)
    inv.e911 = await load_e911(conn)
    return inv.index()
