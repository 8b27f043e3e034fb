"""The API shows a rate plan in the file's shape (provision.tariff_entry, the inverse of the
stored form) and merges updates into it: shown and sent back unchanged, it must store the
same thing, or every read-modify-write would drift a plan (issue 11)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.provision import PlanVersionIn, RatePlanIn, tariff_entry

rate = st.decimals(min_value=0, max_value=Decimal("9.99999"), places=5).map(str)
pair = st.tuples(st.integers(1, 3600), st.integers(1, 3600)).map(list)
area = st.sampled_from(["AK", "HI", "PR", "GU", "VI", "MX", "GB"])
service = st.fixed_dictionaries({}, optional={"per_call": rate, "per_minute": rate})
tariff = st.fixed_dictionaries({}, optional={
    "toll_free_inbound_per_minute": rate, "toll_free_outbound_per_minute": rate,
    "inbound_per_minute": rate, "payphone_surcharge": rate,
    "offshore_toll_free_per_minute": st.dictionaries(area, rate, max_size=3),
    "intrastate_per_lata": st.dictionaries(st.from_regex(r"[0-9]{3}", fullmatch=True), rate, max_size=3),
    "directory_assistance": service, "operator": service,
    "international_deck": st.sampled_from(["default", "wholesale-2027"]),
    "high_cost_prefixes": st.lists(st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True), max_size=3),
    "increments": st.fixed_dictionaries({}, optional={"domestic": pair, "international": pair,
                                                      "mexico": pair}),
    "international_increment_regions": st.lists(area, max_size=3, unique=True),
})  # fmt: skip
base_rates = st.fixed_dictionaries({}, optional={
    "interstate_per_minute": rate, "intrastate_per_minute": rate, "local_per_minute": rate,
    "alaska_per_minute": rate})  # fmt: skip


@given(tariff, tariff, base_rates)
def test_shown_plan_stores_the_same(plan_tariff: dict, version_tariff: dict, version_rates: dict) -> None:
    plan = RatePlanIn.model_validate({
        "id": "p", "name": "P", "interstate_per_minute": "0.01", "intrastate_per_minute": "0.02",
        "local_per_minute": "0.005", **plan_tariff,
        "versions": [{"effective_from": "2027-01-01", **version_tariff, **version_rates}]})  # fmt: skip
    stored, vstored = plan.tariff(), plan.versions[0].tariff()
    shown = RatePlanIn.model_validate({
        "id": "p", "name": "P", "interstate_per_minute": "0.01", "intrastate_per_minute": "0.02",
        "local_per_minute": "0.005", **tariff_entry(stored),
        "versions": [{"effective_from": "2027-01-01", **tariff_entry(vstored)}]})  # fmt: skip
    assert shown.tariff() == stored
    assert shown.versions[0].tariff() == vstored
    assert PlanVersionIn.model_validate({"effective_from": "2027-01-01", **tariff_entry(vstored)}
                                        ).tariff() == vstored  # fmt: skip
