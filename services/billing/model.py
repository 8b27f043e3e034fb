"""The values billing works on: what a customer-month's invoice is computed from, and the
invoice itself. Money is Decimal; amounts of lines are at working precision (5 places)
until `invoice.assemble` turns them into cents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period: one calendar month, UTC."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        """'2026-03' → Period(2026, 3); anything else is a ValueError naming the input."""
        try:
            y, m = text.split("-")
            if len(y) != 4 or len(m) != 2:
                raise ValueError
            period = cls(int(y), int(m))
            date(period.year, period.month, 1)
        except ValueError:
            raise ValueError(f"period must be YYYY-MM (e.g. 2026-03), got {text!r}") from None
        return period

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """The first day of the next month (exclusive end)."""
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def hours(self) -> int:
        return self.days * 24

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), 12 if self.month == 1 else self.month - 1)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)


@dataclass(frozen=True, slots=True)
class Service:
    """A recurring service from the service order (B6: MRC from the service order).

    `quantity` None on a 'trunk' service means "the customer's provisioned trunk count".
    Active from `start` (inclusive) to `end` (exclusive, None = still active)."""

    id: str
    description: str
    kind: str  # 'trunk' | 'did' | 'circuit' | 'other'
    unit_mrc: Decimal
    quantity: int | None = 1
    start: date | None = None
    end: date | None = None
    circuit_id: str | None = None
    sla: bool = False  # B8: an Enterprise circuit with the 99.9% availability SLA


@dataclass(frozen=True, slots=True)
class Terms:
    """A customer's billing terms (service agreement + service order)."""

    customer_id: str
    name: str
    trunks: int
    services: tuple[Service, ...] = ()
    enforce_local_inbound_cap: bool = False  # B2 is a soft cap: per customer flag
    enforce_ld_minimum: bool = False  # B3 is a soft threshold: per customer flag
    enforce_short_calls: bool = True  # B1 "reserves the right": on unless waived
    enforce_rboc_threshold: bool = True  # B4 "reserves the right": on unless waived
    rboc_surcharge_per_minute: Decimal = Decimal("0.06")  # B4: "up to $0.06"
    term_start: date | None = None  # B7
    initial_term_months: int | None = None
    credit_limit: Decimal | None = None  # B10 / A6
    deposit: Decimal = ZERO  # B10


@dataclass(frozen=True, slots=True)
class Call:
    """A rated CDR leg as billing needs it."""

    direction: str  # 'outbound' | 'inbound'
    jurisdiction: str | None
    duration_ms: int
    billed_seconds: int
    amount: Decimal
    answered: bool = True
    carrier_category: str | None = None  # R6 of the far end (B4), None when unknown
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """A non-recurring event (B5, B7). `at` is when it happened (the request, the
    cancellation, the termination); `foc_at` the LNP firm order commitment; `ported_at`
    when a number was ported (for a reinstatement)."""

    kind: str  # 'port_in' | 'port_out' | 'disconnect' | 'lnp_cancel' | 'reinstate' | 'terminate'
    at: datetime
    tns: tuple[str, ...] = ()
    foc_at: datetime | None = None
    ported_at: datetime | None = None
    id: int | None = None


EVENT_KINDS = ("port_in", "port_out", "disconnect", "lnp_cancel", "reinstate", "terminate")


@dataclass(frozen=True, slots=True)
class Outage:
    """Downtime of an SLA circuit (B8), credited the month after it happened, on request."""

    circuit_id: str
    start: datetime
    end: datetime
    credit_requested: bool = True
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DisputeCredit:
    """A dispute resolved for the customer (B9), credited on the next invoice."""

    dispute_id: int
    amount: Decimal
    description: str


@dataclass(frozen=True, slots=True)
class Payment:
    received_at: datetime
    amount: Decimal
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A line another programme asks for (referral credits and discounts, F1–F6): a
    negative amount is a credit."""

    kind: str
    description: str
    amount: Decimal
    rule: str
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TaxRate:
    """B6: a tax or surcharge passed through at a configurable rate on the lines whose
    kind (or kind:jurisdiction) is in `applies_to`."""

    code: str
    name: str
    rate: Decimal
    applies_to: tuple[str, ...]


@dataclass(slots=True)
class BillingInputs:
    terms: Terms
    period: Period
    calls: list[Call] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    outages_last_month: list[Outage] = field(default_factory=list)
    dispute_credits: list[DisputeCredit] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)
    taxes: list[TaxRate] = field(default_factory=list)
    previous_balance: Decimal = ZERO
    payments: list[Payment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line. `exact` is the working-precision amount the rule computed;
    `amount` the cents the invoice shows (set by `invoice.assemble`)."""

    kind: str
    description: str
    rule: str | None
    exact: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    jurisdiction: str | None = None
    amount: Decimal | None = None
    ref: str | None = None  # what it came from: a dispute, an adjustment, an event id


@dataclass(frozen=True, slots=True)
class Invoice:
    customer_id: str
    period: Period
    lines: tuple[Line, ...]
    usage_by_jurisdiction: dict[str, tuple[int, Decimal, Decimal]]  # calls, minutes, amount
    kind: str = "invoice"  # 'invoice' | 'credit_note'
    number: str | None = None
    issued_at: datetime | None = None
    corrects: str | None = None  # the invoice a credit note corrects

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    def subtotal(self, *kinds: str) -> Decimal:
        return sum((ln.amount for ln in self.lines if ln.kind in kinds), Decimal("0.00"))
