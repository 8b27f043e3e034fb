"""Every A and R rule of SPEC.md, as a table: facts in, decision (and price) out.

One row per case, each marked with the rule it proves (`-m` / `grep 'rule("R7")'`). The
inventory is in memory; the reference data is the example files in examples/refdata,
parsed and snapshotted exactly as an import would store them. Amounts are compared as
exact Decimal strings: 0.0132 is not 0.01320 for an invoice line.

The customer 'acme' owns +1727555010x (CLEARWATER, FL; +17275550150 ported in) and the
toll-free +18005550100. CLEARWATER's local calling area holds ST PETERSBG (and TAMPA from
2030-01-01). Block 727-557-3 is pooled to ST PETERSBG, 727-557-9 to TAMPA.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.ani import originating_ani
from gateway.sip.message import parse_message
from rater.admission import LocalSlots
from rater.credit import CreditGuard, over_limit
from rater.decision import CallFacts, Decision, decide
from services import refdata
from services.inventory import Carrier, Customer, Inventory, Number, TrunkGroup, plan_from_row

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "refdata"
AT = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)
FUTURE = datetime(2030, 2, 1, 12, 0, tzinfo=UTC)  # after the 2030-01-01 changes
AFTER_TERM = datetime(2030, 7, 1, 12, 0, tzinfo=UTC)
D = Decimal


def example_refdata() -> refdata.RefData:
    files = [("npa-nxx", "npa-nxx.csv"), ("thousands", "thousands.csv"), ("lata", "lata.csv"),
             ("lca", "lca.csv"), ("carriers", "carriers.csv"), ("intl-rates", "intl-rates.csv")]
    return refdata.snapshot_of(*(refdata.parse_file(kind, EXAMPLES / f) for kind, f in files))


def plan(pid: str, tariff: dict, versions: list[tuple[date, dict]] = ()):  # type: ignore[assignment]
    row = {"id": pid, "name": pid, "currency": "USD", "interstate_per_minute": D("0.01200"),
           "intrastate_per_minute": D("0.01800"), "local_per_minute": D("0.00500"),
           "alaska_per_minute": D("0.30000"), "tariff": json.dumps(tariff)}
    return plan_from_row(row, list(versions))


def build_inventory() -> Inventory:
    inv = Inventory()
    inv.carriers["c"] = Carrier("c", "carrier", "sip:127.0.0.3:5060")
    inv.rate_plans["std"] = plan(
        "std",
        {"directory_assistance_per_call": "0.50000", "directory_assistance_per_minute": "0.10000",
         "operator_per_call": "1.50000", "intrastate_per_lata": {"460": "0.02000"}},
        # R15: from 2030 interstate rises, intrastate falls.
        [(date(2030, 1, 1), {"interstate_per_minute": "0.01500",
                             "intrastate_per_minute": "0.01600"})],
    )
    inv.rate_plans["bare"] = plan("bare", {})  # nothing but the agreement's defaults

    def customer(cid: str, tg: str, source: str, status: str = "active", plan_id: str = "std",
                 **kw) -> None:
        inv.customers[cid] = Customer(cid, cid.title(), status, plan_id, kw.pop("limit", None), **kw)
        inv.trunk_groups[tg] = TrunkGroup(tg, cid, 2, (ipaddress.ip_network(source),),
                                          ("pai", "rpid", "from"), "c")

    def owns(cid: str, tg: str, *tns: str, origin: str = "assigned") -> None:
        for tn in tns:
            inv.numbers[tn] = Number(tn, cid, tg, origin)

    customer("acme", "tg", "127.0.0.2/32")
    owns("acme", "tg", *(f"+172755501{n:02d}" for n in range(10)), "+18005550100")
    owns("acme", "tg", "+17275550150", origin="ported_in")
    customer("globex", "tg-globex", "127.0.0.20/32", high_cost_allowed=("870",))
    owns("globex", "tg-globex", "+12125550100")
    customer("shady", "tg-shady", "127.0.0.21/32", status="suspended")
    owns("shady", "tg-shady", "+13055550100", "+18005550111")
    customer("gone", "tg-gone", "127.0.0.22/32", status="cancelled")
    customer("termed", "tg-termed", "127.0.0.23/32", term_start=date(2029, 6, 1),
             initial_term_months=12)
    owns("termed", "tg-termed", "+17275550200")
    customer("plain", "tg-plain", "127.0.0.24/32", plan_id="bare")
    owns("plain", "tg-plain", "+17275550300")
    customer("limited", "tg-limited", "127.0.0.25/32", limit=D("10.00000"))
    inv.blocked_sources[ipaddress.ip_network("203.0.113.0/24")] = "SIP flood on 2026-03-01"
    inv.blocked_sources[ipaddress.ip_network("198.51.100.7/32")] = "scanner"
    inv.refdata = example_refdata()
    return inv.index()


INV = build_inventory()


def case(rule: str, name: str, dnis: str, expect: dict, *, quote: tuple | None = None,
         ani: str | None = "+17275550100", tg: str | None = "tg", at: datetime = AT, **facts):
    """A row: `expect` maps Decision attributes to values; `quote` is (duration in ms,
    billed seconds, amount as the exact 5-place string)."""
    call = dict(dnis=dnis, ani=ani, trunk_group_id=tg, at=at, **facts)
    return pytest.param(call, expect, quote, id=f"{rule}-{name}", marks=pytest.mark.rule(rule))


def refused(rule: str, status: int = 403) -> dict:
    return {"action": "reject", "rule": rule, "sip_status": status}


def fwd(jurisdiction: str, rate: str | None = None, increments=None, **more) -> dict:
    out: dict = {"action": "forward", "jurisdiction": jurisdiction, **more}
    if rate is not None:
        out["rate_per_minute"] = D(rate)
    if increments is not None:
        out["billing_increments"] = increments
    return out


LOCAL, INTRA, INTER, INTL = "local", "intrastate", "interstate", "international"

# fmt: off
CASES = [
    # --- A2: 900, 976, 1010xxx never carried ---
    case("A2", "900-e164", "+19005551234", refused("A2")),
    case("A2", "900-11-digit", "19005551234", refused("A2")),
    case("A2", "976-10-digit", "2129765555", refused("A2")),
    case("A2", "1010xxx-plus-number", "10102881234567", refused("A2")),
    case("A2", "1010xxx-alone", "1010321", refused("A2")),
    case("A2", "101xxxx-cic", "1012881", refused("A2")),
    # --- A3: outbound local, 800 and 411 only with an own ANI ---
    case("A3", "800-own-ani", "+18005551234", fwd("toll_free", "0.00000", (6, 6))),
    case("A3", "800-foreign-ani", "+18885551234", refused("A3"), ani="+12125550000"),
    case("A3", "800-no-ani", "+18005551234", refused("A3"), ani=None),
    case("A3", "411-foreign-ani", "411", refused("A3"), ani="+12125550000"),
    case("A3", "411-own-ani", "411", fwd("directory_assistance")),
    case("A3", "local-foreign-ani-not-local", "+17275559999", fwd(INTRA, "0.01800"),
         ani="+17275551234"),
    case("A3", "forwarded-from-stranger", "+12125551234", refused("A3"),
         forwarded_from="+12125550100"),
    # --- A5: high-cost international routes blocked unless unblocked for the customer ---
    case("A5", "inmarsat-blocked", "+870773112345", refused("A5")),
    case("A5", "intl-networks-blocked", "+882123456789", refused("A5")),
    case("A5", "cuba-blocked", "011 53 5551 2345", refused("A5")),
    case("A5", "unblocked-on-request", "+870773112345", fwd(INTL, "5.00000", (30, 6)),
         tg="tg-globex", ani="+12125550100"),
    case("A5", "unblock-is-per-prefix", "+882123456789", refused("A5"), tg="tg-globex",
         ani="+12125550100"),
    case("A5", "ordinary-route-open", "+442079460000", fwd(INTL, "0.01000")),
    # --- A7: floods and scanners blocked (per-source block list, scanner User-Agents) ---
    case("A7", "blocked-network", "+12125551234", refused("A7"), source_ip="203.0.113.9"),
    case("A7", "blocked-host", "+12125551234", refused("A7"), source_ip="198.51.100.7"),
    case("A7", "scanner-agent", "+12125551234", refused("A7"), user_agent="friendly-scanner"),
    case("A7", "other-source-passes", "+12125551234", fwd(INTER), source_ip="198.51.100.8"),
    case("A7", "blocked-source-911-still-goes", "911", {"action": "emergency"},
         source_ip="203.0.113.9"),
    # --- A8: unknown trunk or customer ---
    case("A8", "unknown-trunk", "+12125551234", refused("A8"), tg="nope"),
    case("A8", "unknown-customer", "+12125551234", refused("A8"), tg=None, customer_id="nobody"),
    case("A8", "inbound-to-nobodys-number", "+17275559876", refused("A8"), tg=None,
         direction="inbound", ani="+12125551234"),
    # --- A9: suspended or cancelled customers get nothing but 911 ---
    case("A9", "suspended", "+12125551234", refused("A9"), tg="tg-shady", ani="+13055550100"),
    case("A9", "cancelled", "+12125551234", refused("A9"), tg="tg-gone"),
    case("A9", "suspended-inbound", "+18005550111", refused("A9"), tg=None,
         direction="inbound", ani="+12125551234"),
    case("A9", "suspended-911", "911", {"action": "emergency"}, tg="tg-shady"),
    # --- E7: 911 never refused ---
    case("E7", "unknown-ani", "911", {"action": "emergency"}, ani="garbage"),
    case("E7", "unknown-trunk", "911", {"action": "emergency"}, tg="nope"),
    case("E7", "1-911", "1911", {"action": "emergency"}),
    # --- R1: increments, rounded up in integer milliseconds ---
    case("R1", "6.000s-is-6", "+12125551234", fwd(INTER, "0.01200", (6, 6)),
         quote=(6000, 6, "0.00120")),
    case("R1", "6.001s-is-12", "+12125551234", fwd(INTER), quote=(6001, 12, "0.00240")),
    case("R1", "1ms-bills-initial", "+12125551234", fwd(INTER), quote=(1, 6, "0.00120")),
    case("R1", "0ms-bills-nothing", "+12125551234", fwd(INTER), quote=(0, 0, "0.00000")),
    case("R1", "61s-domestic", "+12125551234", fwd(INTER), quote=(61_000, 66, "0.01320")),
    case("R1", "30/6-at-29s", "+442079460000", fwd(INTL, "0.01000", (30, 6)),
         quote=(29_000, 30, "0.00500")),
    case("R1", "30/6-at-31s", "+442079460000", fwd(INTL), quote=(31_000, 36, "0.00600")),
    case("R1", "30/6-at-36s", "+442079460000", fwd(INTL), quote=(36_000, 36, "0.00600")),
    case("R1", "30/6-at-36.001s", "+442079460000", fwd(INTL), quote=(36_001, 42, "0.00700")),
    case("R1", "mexico-60/60-at-61s", "+525512345678", fwd(INTL, "0.01500", (60, 60)),
         quote=(61_000, 120, "0.03000")),
    case("R1", "mexico-60/60-at-1s", "+526641234567", fwd(INTL, "0.03000", (60, 60)),
         quote=(1_000, 60, "0.03000")),
    # --- R2: non-continental NANP areas follow 30/6, but stay US jurisdictions ---
    case("R2", "alaska", "+19075551234", fwd(INTER, increments=(30, 6))),
    case("R2", "hawaii", "+18085551234", fwd(INTER, "0.01200", (30, 6))),
    case("R2", "puerto-rico", "+17875551234", fwd(INTER, "0.01200", (30, 6))),
    case("R2", "usvi", "+13405551234", fwd(INTER, "0.01200", (30, 6))),
    case("R2", "guam", "+16715551234", fwd(INTER, "0.01200", (30, 6))),
    case("R2", "cnmi", "+16705551234", fwd(INTER, "0.01200", (30, 6))),
    case("R2", "continental-stays-6/6", "+12125551234", fwd(INTER, increments=(6, 6))),
    # --- R3: local within the LCA of the ANI's rate center, else intra/inter/international ---
    case("R3", "same-rate-center", "+17275551234", fwd(LOCAL, "0.00500", (6, 6),
         rate_center="CLEARWATER")),
    case("R3", "lca-pair", "+17275581234", fwd(LOCAL, "0.00500", rate_center="ST PETERSBG")),
    case("R3", "outside-lca-same-state", "+18135551234", fwd(INTRA, "0.01800",
         rate_center="TAMPA")),
    case("R3", "other-state", "+12125551234", fwd(INTER, "0.01200")),
    case("R3", "abroad", "+33123456789", fwd(INTL, "0.02000")),
    case("R3", "canada-is-international", "+14165551234", fwd(INTL, "0.01000", (30, 6))),
    # --- R4: local only from the customer's own (assigned or ported) numbers ---
    case("R4", "unowned-ani-same-rate-center", "+17275559999", fwd(INTRA, rating_rule="R8"),
         ani="+17275551234"),
    case("R4", "unowned-ani-lca-pair", "+17275581234", fwd(INTRA), ani="+17275551234"),
    case("R4", "ported-in-ani-is-local", "+17275559999", fwd(LOCAL), ani="+17275550150"),
    case("R4", "another-customers-ani", "+12125551234", fwd(INTRA), ani="+12125550100"),
    case("R4", "own-ani-own-trunk", "+12125551234", fwd(LOCAL), tg="tg-globex",
         ani="+12125550100"),
    # --- R5: invalid or omitted ANI → the intrastate rate (not for international) ---
    case("R5", "omitted", "+12125551234", fwd(INTRA, "0.01800", ani_used=None,
         rating_rule="R5"), ani=None),
    case("R5", "anonymous", "+12125551234", fwd(INTRA, "0.01800", ani_used=None),
         ani="anonymous"),
    case("R5", "short-digits-to-lata-460", "+13055551234", fwd(INTRA, "0.02000", lata="460"),
         ani="123"),
    case("R5", "to-alaska-not-0.30", "+19075551234", fwd(INTRA, "0.01800"), ani=None),
    case("R5", "international-unaffected", "+442079460000", fwd(INTL, "0.01000"), ani=None),
    # --- R6: terminating carrier down to NPA-NXX-X, with its category ---
    case("R6", "pooled-block-in-other-rate-center-local", "+17275573000",
         fwd(LOCAL, rate_center="ST PETERSBG", ocn="7229", carrier_category="clec")),
    case("R6", "pooled-block-outside-lca", "+17275579000",
         fwd(INTRA, rate_center="TAMPA", ocn="6529", carrier_category="wireless")),
    case("R6", "nxx-without-block", "+17275574000",
         fwd(LOCAL, rate_center="CLEARWATER", ocn="9206", carrier_category="rboc_ilec")),
    case("R6", "unknown-ocn-is-other", "+18085551234", fwd(INTER, carrier_category="other")),
    case("R6", "ilec", "+12125551234", fwd(INTER, rate_center="NWYRCYZN01",
         carrier_category="rboc_ilec", lata="132")),
    # --- R7: interstate flat; Alaska $0.30 ---
    case("R7", "flat", "+12125551234", fwd(INTER, "0.01200", rating_rule="R7")),
    case("R7", "alaska-0.30", "+19075551234", fwd(INTER, "0.30000", (30, 6)),
         quote=(61_000, 66, "0.33000")),
    case("R7", "alaska-29s", "+19075551234", fwd(INTER, "0.30000"), quote=(29_000, 30, "0.15000")),
    case("R7", "hawaii-is-flat", "+18085551234", fwd(INTER, "0.01200")),
    case("R7", "within-alaska-is-intrastate", "+19075551234", fwd(INTRA, "0.01800"),
         ani="+19075550100"),
    # --- R8: intrastate, flat per LATA ---
    case("R8", "lata-952-plan-default", "+18135551234", fwd(INTRA, "0.01800", lata="952")),
    case("R8", "lata-460-own-rate", "+13055551234", fwd(INTRA, "0.02000", lata="460"),
         quote=(60_000, 60, "0.02000")),
    case("R8", "new-york-within-state", "+12125551234", fwd(INTRA, "0.01800"),
         ani="+12125550000"),
    case("R8", "plan-without-lata-table", "+13055551234", fwd(INTRA, "0.01800"),
         tg="tg-plain", ani="+17275550300"),
    # --- R9: 800 domestic inbound $0.029, only on own toll-free numbers ---
    case("R9", "continental-caller", "+18005550100", fwd("toll_free_inbound", "0.02900", (6, 6),
         rating_rule="R9"), quote=(60_000, 60, "0.02900"), tg=None, direction="inbound",
         ani="+12125551234"),
    case("R9", "61s", "+18005550100", fwd("toll_free_inbound", "0.02900"),
         quote=(61_000, 66, "0.03190"), tg=None, direction="inbound", ani="+13055551234"),
    case("R9", "no-ani", "+18005550100", fwd("toll_free_inbound", "0.02900"), tg=None,
         direction="inbound", ani=None),
    case("R9", "not-our-toll-free", "+18005559999", refused("R9", 404), tg=None,
         customer_id="acme", direction="inbound", ani="+12125551234"),
    case("R9", "via-api-customer", "+18005550100", fwd("toll_free_inbound", "0.02900"),
         tg=None, customer_id="acme", direction="inbound", ani="+12125551234"),
    # --- R10: 800 offshore originations ---
    *(
        case("R10", f"from-{area}", "+18005550100",
             fwd("toll_free_inbound", rate, rating_rule="R10"), quote=(60_000, 60, rate),
             tg=None, direction="inbound", ani=ani)
        for area, ani, rate in [
            ("alaska", "+19075551234", "0.45000"), ("canada", "+14165551234", "0.08000"),
            ("cnmi", "+16705551234", "0.30000"), ("guam", "+16715551234", "0.15000"),
            ("hawaii", "+18085551234", "0.05000"), ("puerto-rico", "+17875551234", "0.19000"),
            ("usvi", "+13405551234", "0.18000"),
        ]
    ),
    # --- R11: international by longest prefix, with effective dates ---
    case("R11", "london-longest-prefix", "+442079460000", fwd(INTL, "0.01000")),
    case("R11", "uk-mobile", "+447911123456", fwd(INTL, "0.04500")),
    case("R11", "uk-other", "+441612345678", fwd(INTL, "0.02000")),
    case("R11", "no-rate-refused", "+4930123456", refused("R11")),
    case("R11", "jamaica", "+18765551234", fwd(INTL, "0.19000", (30, 6))),
    case("R11", "france-today", "+33123456789", fwd(INTL, "0.02000")),
    case("R11", "france-from-2030", "+33123456789", fwd(INTL, "0.02500"), at=FUTURE),
    # --- R12: payphone-originated inbound toll-free, per-call surcharge ---
    case("R12", "oli-27", "+18005550100", fwd("toll_free_inbound", "0.02900",
         per_call_charge="0.60000", rating_rule="R12"), quote=(60_000, 60, "0.62900"),
         tg=None, direction="inbound", ani="+12125551234", oli="27"),
    case("R12", "oli-29-in-uri", "+18005550100", fwd("toll_free_inbound"),
         quote=(60_000, 60, "0.62900"), tg=None, direction="inbound",
         ani="tel:+12125551234;oli=29"),
    case("R12", "isup-oli-70", "+18005550100", fwd("toll_free_inbound"),
         quote=(6_000, 6, "0.60290"), tg=None, direction="inbound",
         ani="+12125551234;isup-oli=70"),
    case("R12", "oli-61-not-payphone", "+18005550100", fwd("toll_free_inbound",
         per_call_charge=None), quote=(60_000, 60, "0.02900"), tg=None, direction="inbound",
         ani="+12125551234", oli="61"),
    case("R12", "unanswered-no-surcharge", "+18005550100", fwd("toll_free_inbound"),
         quote=(0, 0, "0.00000"), tg=None, direction="inbound", ani="+12125551234", oli="27"),
    case("R12", "offshore-payphone", "+18005550100", fwd("toll_free_inbound", "0.19000"),
         quote=(60_000, 60, "0.79000"), tg=None, direction="inbound", ani="+17875551234",
         oli="27"),
    # --- R13: forwarded legs billed; jurisdiction from the original caller ---
    case("R13", "caller-ny-to-fl", "+18135551234", fwd(INTER, "0.01200"), ani="+12125551234",
         forwarded_from="+17275550101"),
    case("R13", "caller-fl-to-fl-lata-460", "+13055551234", fwd(INTRA, "0.02000"),
         ani="+18135551234", forwarded_from="+17275550101"),
    case("R13", "to-another-own-number-local", "+17275550102", fwd(LOCAL, "0.00500"),
         ani="+17275551234", forwarded_from="+17275550101"),
    case("R13", "to-pstn-never-local", "+17275551999", fwd(INTRA, "0.01800"),
         ani="+17275551234", forwarded_from="+17275550101"),
    case("R13", "unknown-caller-r5", "+12125551234", fwd(INTRA, rating_rule="R5"), ani=None,
         forwarded_from="+17275550101"),
    case("R13", "customer-from-forwarding-number", "+12125551234",
         fwd(INTER, customer_id="acme"), tg=None, ani="+13055551234",
         forwarded_from="+17275550101"),
    # --- R14: 411 and operator at the plan's per-call and/or per-minute rate ---
    case("R14", "411-per-call-and-minute", "411", fwd("directory_assistance", "0.10000",
         per_call_charge="0.50000"), quote=(60_000, 60, "0.60000")),
    case("R14", "411-not-priced", "411", refused("R14", 404), tg="tg-plain", ani="+17275550300"),
    case("R14", "operator-0", "0", fwd("operator", "0.00000", per_call_charge="1.50000"),
         quote=(60_000, 60, "1.50000")),
    case("R14", "operator-assisted-0-plus", "02125551234", fwd("operator", dnis="+12125551234")),
    case("R14", "other-n11-not-offered", "611", refused("R14", 404)),
    # --- R15: the rates and reference data in force on the call's day ---
    case("R15", "plan-today", "+12125551234", fwd(INTER, "0.01200")),
    case("R15", "plan-from-2030", "+12125551234", fwd(INTER, "0.01500"), at=FUTURE),
    case("R15", "initial-term-no-rise", "+12125551234", fwd(INTER, "0.01200"), at=FUTURE,
         tg="tg-termed", ani="+17275550200"),
    case("R15", "initial-term-drop-passes", "+18505551234", fwd(INTRA, "0.01600"), at=FUTURE,
         tg="tg-termed", ani="+17275550200"),
    case("R15", "after-initial-term", "+12125551234", fwd(INTER, "0.01500"), at=AFTER_TERM,
         tg="tg-termed", ani="+17275550200"),
    case("R15", "code-not-yet-in-force", "+17275599999", fwd(INTRA, rate_center=None)),
    case("R15", "code-in-force", "+17275599999", fwd(LOCAL, rate_center="CLEARWATER"), at=FUTURE),
    case("R15", "lca-grows-2030", "+18135551234", fwd(LOCAL, "0.00500"), at=FUTURE),
]
# fmt: on


@pytest.mark.parametrize(("call", "expect", "quote"), CASES)
def test_rule(call: dict, expect: dict, quote: tuple | None) -> None:
    d = decide(INV, CallFacts(**call))
    got = {k: getattr(d, k) for k in expect}
    assert got == expect, d
    if d.action == "reject":
        # Every refusal names its rule and says why in words.
        assert d.rule and d.reason and d.sip_status
    if d.action == "forward":
        assert d.rating_rule and d.basis
    if quote is not None:
        ms, secs, amount = quote
        billed, price = d.quote(ms)
        assert (billed, str(price)) == (secs, amount)
        assert isinstance(price, Decimal)


# --- A1: trunk slots, the pure in-process leases (Redis: tests/integration) ---


@pytest.mark.rule("A1")
@pytest.mark.parametrize(
    ("steps", "in_use"),
    [
        pytest.param([("acquire", "a", True), ("acquire", "b", True), ("acquire", "c", False)],
                     2, id="third-call-on-two-trunks-refused"),
        pytest.param([("acquire", "a", True), ("release", "a", True), ("release", "a", False),
                      ("acquire", "b", True)], 1, id="released-exactly-once"),
        pytest.param([("acquire", "a", True), ("acquire", "a", True), ("acquire", "b", True)],
                     2, id="retransmitted-invite-holds-one-slot"),
        pytest.param([("acquire", "a", True), ("expire", "", None), ("acquire", "b", True),
                      ("acquire", "c", True)], 2, id="crashed-holder-expires"),
    ],
)
async def test_a1_trunk_slots(steps: list, in_use: int) -> None:
    now = [0.0]
    slots = LocalSlots(ttl_seconds=10, clock=lambda: now[0])
    for op, call_id, expected in steps:
        if op == "acquire":
            assert await slots.acquire("tg", call_id, 2) is expected
        elif op == "release":
            assert await slots.release("tg", call_id) is expected
        else:
            now[0] += 11
    assert await slots.in_use("tg") == in_use


@pytest.mark.rule("A1")
async def test_a1_zero_trunks_admit_nothing() -> None:
    assert not await LocalSlots(ttl_seconds=10).acquire("tg", "a", 0)


# --- A4: the originating ANI and its source feed the decision ---


def invite(*headers: str) -> bytes:
    return "\r\n".join([
        "INVITE sip:+12125551234@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1",
        "From: <sip:+17275550100@127.0.0.2>;tag=a", "To: <sip:+12125551234@127.0.0.1>",
        "Call-ID: a4", "CSeq: 1 INVITE", "Max-Forwards: 70", *headers, "Content-Length: 0",
        "", "",
    ]).encode()


@pytest.mark.rule("A4")
@pytest.mark.parametrize(
    ("headers", "precedence", "ani_used", "source", "jurisdiction"),
    [
        pytest.param(["P-Asserted-Identity: <sip:+17275550105@pbx>"], ("pai", "rpid", "from"),
                     "+17275550105", "pai", INTER, id="pai-first"),
        pytest.param(["Remote-Party-ID: <sip:7275550108@pbx>;party=calling"],
                     ("pai", "rpid", "from"), "+17275550108", "rpid", INTER, id="rpid-when-no-pai"),
        pytest.param(["P-Asserted-Identity: <sip:+12125550000@pbx>"], ("from",),
                     "+17275550100", "from", INTER, id="trunk-trusts-from-only"),
        pytest.param(["P-Asserted-Identity: <sip:+12125550000@pbx>"], ("pai", "from"),
                     "+12125550000", "pai", INTRA, id="pai-sets-jurisdiction"),
    ],
)
def test_a4_ani_source(headers, precedence, ani_used, source, jurisdiction) -> None:
    raw, src = originating_ani(parse_message(invite(*headers)), precedence)
    d = decide(INV, CallFacts(dnis="+12125551234", ani=raw, ani_source=src,
                              trunk_group_id="tg", at=AT))
    assert (d.ani_used, d.ani_source, d.jurisdiction) == (ani_used, source, jurisdiction)


# --- A6: credit limit on unbilled usage (911 exempt) ---


@pytest.mark.rule("A6")
@pytest.mark.parametrize(
    ("usage", "limit", "blocked"),
    [("9.99999", "10.00000", False), ("10.00000", "10.00000", False),
     ("10.00001", "10.00000", True), ("999.00000", None, False)],
)
def test_a6_over_limit(usage: str, limit: str | None, blocked: bool) -> None:
    assert over_limit(D(usage), D(limit) if limit else None) is blocked


@pytest.mark.rule("A6")
@pytest.mark.parametrize(
    ("tg", "dnis", "spent", "action", "rule"),
    [
        pytest.param("tg-limited", "+12125551234", "9.50000", "forward", None, id="under"),
        pytest.param("tg-limited", "+12125551234", "10.00001", "reject", "A6", id="over"),
        pytest.param("tg-limited", "911", "50.00000", "emergency", None, id="911-exempt"),
        pytest.param("tg", "+12125551234", "50.00000", "forward", None, id="no-limit"),
    ],
)
async def test_a6_credit_guard(tg, dnis, spent, action, rule) -> None:
    guard = CreditGuard.local(lambda: INV, clock=lambda: AT)
    decision = decide(INV, CallFacts(dnis=dnis, ani=None, trunk_group_id=tg, at=AT))
    assert decision.customer_id is not None
    await guard.add_usage(decision.customer_id, D(spent), AT)
    admitted: Decision = await guard.admit(decision, AT)
    assert (admitted.action, admitted.rule) == (action, rule)
    if rule:
        assert admitted.sip_status == 403 and "credit limit" in (admitted.reason or "")


# --- A8: the source address identifies the trunk ---


@pytest.mark.rule("A8")
@pytest.mark.parametrize(
    ("source", "trunk"),
    [("127.0.0.2", "tg"), ("127.0.0.20", "tg-globex"), ("127.0.0.99", None), ("not-an-ip", None)],
)
def test_a8_trunk_by_source(source: str, trunk: str | None) -> None:
    tg = INV.trunk_for_source(source)
    assert (tg.id if tg else None) == trunk
