"""The usage rules of the billing cycle, B1–B4: each a named function from the month's
rated calls (and the customer's terms) to the line it adds, or None.

Minutes are the rater's billed seconds (R1), so a cap counts what was billed. Amounts use
`rater.money.usage_amount` (seconds × per-minute rate, 5 places).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from rater.money import usage_amount
from services.billing.model import Call, Line, Terms

SECONDS_PER_MINUTE = 60

# B1: "5% or more of completed calls ... equal to or less than six (6) seconds".
SHORT_CALL_MAX_MS = 6_000
SHORT_CALL_SHARE = Decimal("0.05")
SHORT_CALL_CHARGE = Decimal("0.03")

# B2: 2,000 inbound + local outbound minutes per trunk per month, then $0.018/min.
LOCAL_INBOUND_CAP_MINUTES = 2_000
LOCAL_INBOUND_OVER_PER_MINUTE = Decimal("0.018")
# Decision: inbound is every inbound leg, to DIDs and to toll-free numbers alike.
LOCAL_INBOUND_JURISDICTIONS = frozenset({"local", "inbound", "toll_free_inbound"})

# B3: an average under 300 long-distance minutes per trunk bills the shortfall at $0.019.
LD_MINIMUM_MINUTES = 300
LD_MINIMUM_PER_MINUTE = Decimal("0.019")
LD_JURISDICTIONS = frozenset({"interstate", "intrastate", "international"})

# B4: the flat rates (interstate, intrastate, 800 domestic) assume ≥ 75% of calls end (or,
# for 800 inbound, start) on RBOC/ILEC or wireless networks.
RBOC_THRESHOLD = Decimal("0.75")
FLAT_RATE_JURISDICTIONS = frozenset({"interstate", "intrastate", "toll_free_inbound"})
RBOC_CATEGORIES = frozenset({"rboc_ilec", "wireless"})


def completed(calls: Iterable[Call]) -> list[Call]:
    """Completed calls: answered, lasting at least a millisecond; 911 is never a charge."""
    return [c for c in calls if c.answered and c.duration_ms > 0 and not c.emergency]


def short_calls(calls: Iterable[Call], terms: Terms) -> Line | None:
    """B1: when short calls (≤ 6 s) are 5% or more of the completed calls, each short call
    costs $0.03 on top of its rate."""
    done = completed(calls)
    short = sum(1 for c in done if c.duration_ms <= SHORT_CALL_MAX_MS)
    if not terms.enforce_short_calls or not done or short < SHORT_CALL_SHARE * len(done):
        return None
    share = Decimal(short) / len(done) * 100
    return Line(
        kind="short_calls", rule="B1", exact=SHORT_CALL_CHARGE * short,
        quantity=Decimal(short), unit_price=SHORT_CALL_CHARGE,
        description=f"Short calls: {short} of {len(done)} completed calls lasted 6 s or less "
        f"({share:.2f}% ≥ 5%)",
    )  # fmt: skip


def _seconds(calls: Iterable[Call], jurisdictions: frozenset[str]) -> int:
    return sum(c.billed_seconds for c in completed(calls) if c.jurisdiction in jurisdictions)


def _minutes(seconds: int | Decimal) -> str:
    return f"{Decimal(seconds) / SECONDS_PER_MINUTE:.2f}"


def local_inbound_cap(calls: Iterable[Call], terms: Terms) -> Line | None:
    """B2: inbound and local outbound minutes over 2,000 per trunk bill at $0.018/min, when
    the customer's soft cap is enforced."""
    if not terms.enforce_local_inbound_cap:
        return None
    used = _seconds(calls, LOCAL_INBOUND_JURISDICTIONS)
    cap = LOCAL_INBOUND_CAP_MINUTES * SECONDS_PER_MINUTE * terms.trunks
    over = used - cap
    if over <= 0:
        return None
    return Line(
        kind="local_inbound_cap", rule="B2",
        exact=usage_amount(over, LOCAL_INBOUND_OVER_PER_MINUTE),
        quantity=Decimal(over) / SECONDS_PER_MINUTE, unit_price=LOCAL_INBOUND_OVER_PER_MINUTE,
        description=f"Local & inbound minutes over the cap: {_minutes(used)} min used, cap "
        f"{LOCAL_INBOUND_CAP_MINUTES:,} × {terms.trunks} trunks, {_minutes(over)} min over",
    )  # fmt: skip


def ld_minimum(calls: Iterable[Call], terms: Terms) -> Line | None:
    """B3: when long-distance minutes average under 300 per trunk, the shortfall to
    300 × trunks bills at $0.019/min, when the customer's soft minimum is enforced."""
    if not terms.enforce_ld_minimum or terms.trunks <= 0:
        return None
    used = _seconds(calls, LD_JURISDICTIONS)
    floor = LD_MINIMUM_MINUTES * SECONDS_PER_MINUTE * terms.trunks
    short = floor - used
    if short <= 0:
        return None
    return Line(
        kind="ld_minimum", rule="B3", exact=usage_amount(short, LD_MINIMUM_PER_MINUTE),
        quantity=Decimal(short) / SECONDS_PER_MINUTE, unit_price=LD_MINIMUM_PER_MINUTE,
        description=f"Long-distance minimum: {_minutes(used)} min, under "
        f"{LD_MINIMUM_MINUTES} × {terms.trunks} trunks; shortfall {_minutes(short)} min",
    )  # fmt: skip


def rboc_threshold(calls: Iterable[Call], terms: Terms) -> Line | None:
    """B4: when fewer than 75% of flat-rate calls end on RBOC/ILEC or wireless networks,
    the minutes needed to reach 75% (0.75 × flat-rate minutes − RBOC/wireless minutes) bill
    at the customer's surcharge (up to $0.06/min).

    Decision: the threshold is measured on calls, as the agreement words it, and the charge
    on minutes; calls whose network the reference data cannot tell are left out of both
    counts (an unknown carrier is no evidence either way)."""
    if not terms.enforce_rboc_threshold:
        return None
    flat = [c for c in completed(calls)
            if c.jurisdiction in FLAT_RATE_JURISDICTIONS and c.carrier_category is not None]  # fmt: skip
    if not flat:
        return None
    good = [c for c in flat if c.carrier_category in RBOC_CATEGORIES]
    if len(good) >= RBOC_THRESHOLD * len(flat):
        return None
    total_s = sum(c.billed_seconds for c in flat)
    good_s = sum(c.billed_seconds for c in good)
    needed = RBOC_THRESHOLD * total_s - good_s
    if needed <= 0:
        return None
    rate = terms.rboc_surcharge_per_minute
    share = Decimal(len(good)) / len(flat) * 100
    return Line(
        kind="rboc_threshold", rule="B4", exact=usage_amount(needed, rate),
        quantity=needed / SECONDS_PER_MINUTE, unit_price=rate,
        description=f"RBOC/wireless threshold: {len(good)} of {len(flat)} flat-rate calls "
        f"({share:.2f}% < 75%); {_minutes(needed)} min needed to reach 75%",
    )  # fmt: skip


USAGE_RULES = (short_calls, local_inbound_cap, ld_minimum, rboc_threshold)
