"""Render deploy/k8s with the real kustomize, and read what the monitoring files use.

kustomize itself is Go; no Debian or PyPI package ships a binary for Python 3.11 (PyPI's
pykustomize needs Python 3.14), but kubectl embeds it (`kubectl kustomize`, kustomize v5),
and kubectl is on this project's machines (docs/OPERATIONS.md: the tools). The tests name
what is missing rather than skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
DASHBOARD = K8S / "monitoring" / "sipcc-dashboard.json"
RULES = K8S / "monitoring" / "prometheusrule.yaml"


def tool(name: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: {how}")
    return path


@cache
def render(overlay: str) -> tuple[dict, ...]:
    kubectl = tool("kubectl", "kubectl embeds kustomize; install kubectl (>= 1.27)")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, f"kustomize {overlay}: {out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def rule_groups() -> dict:
    """The PrometheusRule's spec: a plain Prometheus rule file ({groups: […]})."""
    return yaml.safe_load(RULES.read_text())["spec"]


def _exprs_in(node) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "expr" and isinstance(v, str)]
        return found + [e for k, v in node.items() if k != "expr" for e in _exprs_in(v)]
    if isinstance(node, list):
        return [e for item in node for e in _exprs_in(item)]
    return []


def dashboard_exprs() -> list[str]:
    return _exprs_in(json.loads(DASHBOARD.read_text()))


def rule_exprs() -> list[str]:
    return _exprs_in(rule_groups())


# Recording rules' own outputs (sipcc:…) are not exported by sipcc; sipcc_ names are.
METRIC = re.compile(r"\b(sipcc_[a-z0-9_]+)\b")


def metric_names(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in METRIC.findall(e)}
