"""Every metric the dashboard and the alert rules read is exported by a running node
(issue 9, Done when 1): a renamed metric breaks this test, not a 3 a.m. page."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.render import dashboard_exprs, metric_names, rule_exprs
from tests.e2e.conftest import example

# What a family of each type is queried by (prometheus_client's text exposition).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exported(text: str) -> dict[str, str]:
    """Queryable series name → its family's type, from a /metrics page."""
    names: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.type
    return names


def test_the_parser_reads_types_and_suffixes() -> None:
    page = (
        "# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n"
        '# TYPE c histogram\nc_bucket{le="+Inf"} 1\nc_sum 1\nc_count 1\n'
    )
    assert exported(page) == {"a_total": "counter", "b": "gauge", "c_bucket": "histogram",
                              "c_sum": "histogram", "c_count": "histogram"}  # fmt: skip


async def test_dashboard_and_rules_use_only_exported_metrics(start_node) -> None:
    used_by_dashboard = metric_names(dashboard_exprs())
    used_by_rules = metric_names(rule_exprs())
    assert len(used_by_dashboard) > 20 and len(used_by_rules) > 8  # the extraction works
    node = await start_node(example())  # `sipcc serve`: every role in one process
    names = exported(node.metrics())
    missing = {
        source: sorted(used - names.keys())
        for source, used in (("dashboard", used_by_dashboard), ("rules", used_by_rules))
    }
    assert missing == {"dashboard": [], "rules": []}, missing
    # What ops asked for is there (docs/METRICS.md).
    for name in (
        "sipcc_call_duration_seconds_bucket", "sipcc_trunk_groups_by_utilization",
        "sipcc_trunk_group_utilization_ratio", "sipcc_dependency_up",
        "sipcc_overload_rejections_total", "sipcc_e911_calls_total", "sipcc_e911_failovers_total",
        "sipcc_cdr_stream_oldest_seconds", "sipcc_http_requests_total",
    ):  # fmt: skip
        assert name in used_by_dashboard | used_by_rules and name in names, name
