"""The 911 routing decision (rules E1-E5, E7): which level, which targets, in which order.

Pure: the caller's TN, its customer and the E911 snapshot in; an E911Route out. Every
route ends with the national call center, so a PSAP that fails (5xx, timeout) still
leaves somewhere to go; after it (or where it is not provisioned) the trunk's carrier takes
the call (E7: the worst case is never a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

from e911_router.address import Address
from e911_router.coverage import E911Data, Psap
from rater.decision import day_ordinal


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "psap" | "national" | "carrier"
    uri: str
    name: str  # the PSAP id, "national" or the carrier id

    @property
    def label(self) -> str:
        return f"psap:{self.name}" if self.kind == "psap" else self.kind


@dataclass(frozen=True, slots=True)
class E911Route:
    level: str  # "e911" | "basic" | "national" | "carrier"
    rule: str
    reason: str
    targets: tuple[Target, ...]
    callback: str | None = None  # the caller's TN (E.164), for P-Asserted-Identity
    address: Address | None = None
    psap: Psap | None = None
    customer_id: str | None = None

    @property
    def sends_location(self) -> bool:
        """E1: only an E911 PSAP gets the callback number and the address."""
        return self.level == "e911" and self.address is not None


def route(data: E911Data, tn: str | None, customer_id: str | None, owner_of,
          carrier: Target | None = None) -> E911Route:  # fmt: skip
    """The route of a 911 call from `tn` (E2: the From user part, E.164) on a trunk of
    `customer_id`. `owner_of(tn)` is the customer holding a TN, or None."""
    fallback = _fallback(data, carrier)

    def national(rule: str, reason: str, callback: str | None = None,
                 address: Address | None = None) -> E911Route:  # fmt: skip
        level = fallback[0].kind if fallback else "carrier"
        return E911Route(level, rule, reason, fallback, callback, address, None, customer_id)

    if tn is None:
        return national("E2", "no telephone number in the From user part")
    if owner_of(tn) != customer_id or customer_id is None:
        return national("E2", f"{tn} is not a number of this customer")
    reg = data.addresses.get(tn)
    if reg is None or reg.address is None:
        return national("E4", f"{tn} has no validated registered address", tn)
    if reg.move_pending:
        return national("E5", f"{tn} moved and the move is not confirmed yet", tn, reg.address)
    psap = data.psap_for(reg.address)
    if psap is None:
        return national("E1", f"no PSAP serves {reg.address.zip[:5]} "
                        f"({reg.address.county or 'county unknown'})", tn, reg.address)  # fmt: skip
    if not psap.route_uri:
        return national("E4", f"PSAP {psap.id} has no route", tn, reg.address)
    first = Target("psap", psap.route_uri, psap.id)
    return E911Route(psap.capability, "E1" if psap.capability == "basic" else "E3",
                     f"{psap.capability} PSAP {psap.id} serves {reg.address.zip[:5]}",
                     (first, *fallback), tn, reg.address, psap, customer_id)  # fmt: skip


def _fallback(data: E911Data, carrier: Target | None) -> tuple[Target, ...]:
    """The national call center, then the trunk's carrier as the last resort (E7)."""
    out = [Target("national", data.national_call_center, "national")] if data.national_call_center else []
    if carrier is not None:
        out.append(carrier)
    return tuple(out)


def route_call(inv, tn: str | None, trunk_group) -> E911Route:
    """The route of a 911 call from `tn` on `trunk_group`, read from an Inventory snapshot
    (services/inventory.py): the edge and `POST /v1/e911/route` both ask this."""
    carrier = inv.carriers.get(trunk_group.carrier_id)
    last_resort = Target("carrier", carrier.gateway_uri, carrier.id) if carrier else None
    today = day_ordinal()

    def owner(n: str) -> str | None:
        # A3/R4: a TN ported out or disconnected is no longer the customer's today, so its
        # old registered address must not route the call (E5: the national call center).
        num = inv.owner_of(n, today)
        return num.customer_id if num else None

    return route(inv.e911, tn, trunk_group.customer_id, owner, last_resort)
