"""The in-memory view of the provisioning store that the call path reads.

The edge and the rater never query Postgres per call: they read an `Inventory` snapshot,
loaded whole from Postgres at start and swapped atomically on reload. Lookups are dict
and small-list scans, so a decision costs microseconds.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

ANI_SOURCES = ("pai", "rpid", "from")


@dataclass(frozen=True, slots=True)
class Carrier:
    id: str
    name: str
    gateway_uri: str


@dataclass(frozen=True, slots=True)
class RatePlan:
    id: str
    name: str
    currency: str
    interstate_per_minute: Decimal
    intrastate_per_minute: Decimal
    local_per_minute: Decimal
    alaska_per_minute: Decimal


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    status: str
    rate_plan_id: str
    credit_limit: Decimal | None


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


@dataclass(slots=True)
class Inventory:
    carriers: dict[str, Carrier] = field(default_factory=dict)
    rate_plans: dict[str, RatePlan] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    trunk_groups: dict[str, TrunkGroup] = field(default_factory=dict)
    numbers: dict[str, Number] = field(default_factory=dict)
    _by_host: dict[str, TrunkGroup] = field(default_factory=dict)
    _by_user: dict[str, TrunkGroup] = field(default_factory=dict)
    _by_network: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, TrunkGroup]] = field(
        default_factory=list
    )

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

    @property
    def has_digest_trunks(self) -> bool:
        return bool(self._by_user)

    def trunk_for_user(self, username: str) -> TrunkGroup | None:
        """Rule A8, the other way in: the trunk group whose digest username this is."""
        return self._by_user.get(username)

    def owner_of(self, tn: str | None) -> Number | None:
        return self.numbers.get(tn) if tn else None


async def load(conn: asyncpg.Connection | asyncpg.Pool) -> Inventory:
    inv = Inventory()
    for r in await conn.fetch("SELECT id, name, gateway_uri FROM carriers"):
        inv.carriers[r["id"]] = Carrier(r["id"], r["name"], r["gateway_uri"])
    for r in await conn.fetch(
        """SELECT id, name, currency, interstate_per_minute, intrastate_per_minute,
                  local_per_minute, alaska_per_minute FROM rate_plans"""
    ):
        inv.rate_plans[r["id"]] = RatePlan(**dict(r))
    for r in await conn.fetch(
        "SELECT id, name, status, rate_plan_id, credit_limit FROM customers"
    ):
        inv.customers[r["id"]] = Customer(**dict(r))
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
    for r in await conn.fetch("SELECT tn, customer_id, trunk_group_id, origin FROM numbers"):
        inv.numbers[r["tn"]] = Number(**dict(r))
    return inv.index()
