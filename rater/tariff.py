"""The service agreement's figures: the default tariff every rate plan starts from.

Each constant cites the SPEC rule it comes from. A rate plan (services/inventory.RatePlan)
overrides any of them per plan; these are only what a plan says when it says nothing.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal("0.00000")

# R1: billing increments (initial, additional) in seconds, by terminating destination.
DOMESTIC_INCREMENTS = (6, 6)
INTERNATIONAL_INCREMENTS = (30, 6)
MEXICO_INCREMENTS = (60, 60)

# R2 (Decision): NANP areas outside the continental US. For increments they follow the
# International row, as the agreement's definition of "International" says; for jurisdiction
# and price they stay US destinations, rated by R5-R8 (Alaska at R7's own rate).
NON_CONTINENTAL = frozenset({"AK", "HI", "PR", "VI", "GU", "MP", "AS"})
US_AREAS = frozenset({"US"}) | NON_CONTINENTAL

# R7: interstate calls terminating in Alaska.
ALASKA_PER_MINUTE = Decimal("0.30000")

# R9: 800 domestic inbound, only on toll-free numbers provided by or ported to the carrier.
TOLL_FREE_INBOUND_PER_MINUTE = Decimal("0.02900")

# R10: 800 inbound calls originating offshore, per minute, by origin area.
OFFSHORE_TOLL_FREE_PER_MINUTE = {
    "AK": Decimal("0.45000"),
    "CA": Decimal("0.08000"),
    "MP": Decimal("0.30000"),
    "GU": Decimal("0.15000"),
    "HI": Decimal("0.05000"),
    "PR": Decimal("0.19000"),
    "VI": Decimal("0.18000"),
}

# R12: payphone-originated inbound toll-free calls, per call ("approximately $0.60").
PAYPHONE_SURCHARGE = Decimal("0.60000")
# ANI II / OLI digits that mark a payphone origin: 27 (coin), 29 (prison/inmate), 70 (coinless).
PAYPHONE_OLI = frozenset({"27", "29", "70"})

# A5: high-cost international routes blocked unless the customer asked for them. E.164
# prefixes without '+'. Satellite and global services (870 Inmarsat, 881 GMSS, 882/883
# international networks, 979 international premium rate) and destinations whose
# termination costs or fraud rates make them the usual targets of toll fraud.
HIGH_COST_PREFIXES = (
    "53",   # Cuba
    "232",  # Sierra Leone
    "239",  # Sao Tome and Principe
    "246",  # Diego Garcia
    "247",  # Ascension
    "252",  # Somalia
    "290",  # Saint Helena
    "674",  # Nauru
    "683",  # Niue
    "688",  # Tuvalu
    "690",  # Tokelau
    "870",
    "881",
    "882",
    "883",
    "979",
)  # fmt: skip

# The rate deck international calls are priced from unless a plan names another (R11).
DEFAULT_DECK = "default"
