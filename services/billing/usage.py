"""Usage from the month's rated CDRs, by jurisdiction: one line per jurisdiction with its
calls, billed minutes and the sum of the rated amounts (which the rater computed per call
at 5 places, R1–R15)."""

from __future__ import annotations

from decimal import Decimal

from services.billing.model import Call, Line

SECONDS_PER_MINUTE = Decimal(60)

LABELS = {
    "local": "Local",
    "intrastate": "Intrastate long distance",
    "interstate": "Interstate long distance",
    "international": "International",
    "inbound": "Inbound to DIDs",
    "toll_free_inbound": "800 / toll-free inbound",
    "toll_free": "Outbound toll-free",
    "directory_assistance": "Directory assistance (411)",
    "operator": "Operator-assisted",
    "service": "Service codes",
    "emergency": "911",
}
ORDER = tuple(LABELS)


def by_jurisdiction(calls: list[Call]) -> dict[str, tuple[int, Decimal, Decimal]]:
    """jurisdiction → (answered calls, billed minutes, amount), in a fixed order."""
    acc: dict[str, list] = {}
    for c in calls:
        if not c.answered or (c.billed_seconds <= 0 and not c.amount):
            continue
        j = c.jurisdiction or "unrated"
        row = acc.setdefault(j, [0, 0, Decimal(0)])
        row[0] += 1
        row[1] += c.billed_seconds
        row[2] += c.amount
    keys = sorted(acc, key=lambda j: (ORDER.index(j) if j in ORDER else len(ORDER), j))
    return {j: (acc[j][0], Decimal(acc[j][1]) / SECONDS_PER_MINUTE, acc[j][2]) for j in keys}


def usage_lines(summary: dict[str, tuple[int, Decimal, Decimal]]) -> list[Line]:
    out = []
    for j, (calls, minutes, amount) in summary.items():
        if not amount:
            continue  # 911 and free service codes are shown in the chart, not charged
        out.append(Line(
            kind="usage", rule="B6", exact=amount, quantity=minutes, jurisdiction=j,
            description=f"{LABELS.get(j, j)} usage: {calls} calls, {minutes:.2f} min",
        ))  # fmt: skip
    return out
