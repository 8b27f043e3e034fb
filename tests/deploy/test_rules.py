"""The alert rules (issue 9, Done when 1): promtool accepts them and its unit tests fire the
alerts that matter (Postgres unreachable, 911 failover, 5xx ratio, trunk saturation) and
compute ASR, NER and ACD as docs/METRICS.md defines them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.render import render, rule_groups, tool

PROMTOOL_HOW = "`make test` installs it (apt-get install prometheus)"
PROMTEST = Path(__file__).with_name("alerts.promtest.yaml")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    promtool = tool("promtool", PROMTOOL_HOW)
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "sipcc-rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    return path


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    out = _promtool("check", "rules", str(_rules_file(tmp_path)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_the_rendered_rules_are_the_file(tmp_path: Path) -> None:
    for overlay in ("single-node", "production"):
        (rule,) = [o for o in render(overlay) if o["kind"] == "PrometheusRule"]
        assert rule["spec"] == rule_groups()


def test_promtool_unit_tests_fire_the_alerts(tmp_path: Path) -> None:
    _rules_file(tmp_path)
    shutil.copy(PROMTEST, tmp_path / PROMTEST.name)
    out = _promtool("test", "rules", PROMTEST.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The same tests against rules whose Postgres alert never fires: promtool says so."""
    spec = rule_groups()
    for group in spec["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "SipccPostgresUnreachable":
                rule["expr"] = 'min by (instance) (sipcc_dependency_up{dependency="postgres"}) == 2'
    (tmp_path / "sipcc-rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(PROMTEST, tmp_path / PROMTEST.name)
    out = _promtool("test", "rules", PROMTEST.name, cwd=tmp_path)
    assert out.returncode != 0 and "SipccPostgresUnreachable" in out.stdout + out.stderr
