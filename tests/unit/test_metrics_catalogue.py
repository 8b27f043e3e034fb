"""docs/METRICS.md is the complete catalogue: every metric services/metrics.py registers is
listed with its type and labels, and nothing listed is missing from the registry."""

from __future__ import annotations

import re
from pathlib import Path

from services import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"
ROW = re.compile(r"^\| `(sipcc_[a-z0-9_]+)` \| (counter|gauge|histogram) \|([^|]*)\|", re.M)


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    return {
        name: (kind, tuple(re.findall(r"`([a-z_]+)`", labels)))
        for name, kind, labels in ROW.findall(DOC.read_text())
    }


def registered() -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    for collector in metrics.REGISTRY._collector_to_names:  # every metric object
        name = collector._name + ("_total" if collector._type == "counter" else "")
        out[name] = (collector._type, tuple(collector._labelnames))
    return out


def test_the_catalogue_lists_every_metric_with_its_type_and_labels() -> None:
    doc, reg = documented(), registered()
    assert len(reg) > 40
    assert sorted(reg.keys() - doc.keys()) == [], "registered but not in docs/METRICS.md"
    assert sorted(doc.keys() - reg.keys()) == [], "in docs/METRICS.md but not registered"
    assert {n: doc[n] for n in reg} == reg
