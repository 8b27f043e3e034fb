"""deploy/k8s (issue 9, Done when 1): both overlays render with kustomize, every rendered
object is valid against the Kubernetes API schema, the workloads carry what ops rely on
(probes, resources, drain), and the dashboard's JSON is well formed."""

from __future__ import annotations

import json
import subprocess

import kubernetes_validate
import pytest

from tests.deploy.render import DASHBOARD, OVERLAYS, render

# The oldest Kubernetes we support (the preStop `sleep` action is on by default from 1.30)
# and the newest the validator knows.
VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())

# Custom resources of operators installed cluster-wide: kubernetes-validate ships only the
# core API's schemas. Their content is checked otherwise: PrometheusRule by promtool
# (test_rules.py), the CNPG Cluster, ScheduledBackup and PodMonitor by the structure
# assertions below. Any other kind without a schema fails.
CUSTOM = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
ROLES = {"gateway", "rater", "e911", "api", "cdr-writer"}


def test_both_overlays_exist() -> None:
    assert OVERLAYS == ["production", "single-node"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_is_valid(overlay: str, version: str) -> None:
    errors, custom = [], set()
    for obj in render(overlay):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (obj["apiVersion"], obj["kind"]) not in CUSTOM:
                errors.append(f"{name}: no schema for {obj['apiVersion']}")
            custom.add((obj["apiVersion"], obj["kind"]))
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not errors, "\n".join(errors)
    assert custom <= CUSTOM


def _by_kind(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_role_runs_its_own_command_with_probes_and_resources(overlay: str) -> None:
    deployments = _by_kind(overlay, "Deployment")
    assert {n.removeprefix("sipcc-") for n in deployments} == ROLES
    # Generated here (single-node: its name carries a content hash, so a change rolls the
    # pods) or created out of band under its plain name (production).
    generated = [n for n in _by_kind(overlay, "Secret") if n.startswith("sipcc-secrets")]
    secret_name = generated[0] if generated else "sipcc-secrets"
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"] == [name.removeprefix("sipcc-")]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
        env = {e["name"]: e for e in c.get("env", [])}
        assert env["SIPCC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "sipcc-db-app", "key": "uri"}
        refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
        assert refs == {"sipcc-config", secret_name}
    assert _by_kind(overlay, "HorizontalPodAutoscaler")["sipcc-rater"]["spec"]["scaleTargetRef"]["name"] == "sipcc-rater"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_drains_and_keeps_its_address(overlay: str) -> None:
    gw = _by_kind(overlay, "Deployment")["sipcc-gateway"]
    pod = gw["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["hostNetwork"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    # services/node.py: calls up for SIPCC_DRAIN_SECONDS, then CDRs published (5 s) and
    # written (10 s); preStop before it all.
    drain = float(env["SIPCC_DRAIN_SECONDS"]) + 5 + 10 + c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= drain
    assert gw["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert env["SIPCC_SIP_ADVERTISE"] == "$(HOST_IP):5060"
    ports = {(p["containerPort"], p["protocol"]) for p in c["ports"]}
    assert {(5060, "UDP"), (5060, "TCP")} <= ports
    assert "sipcc-gateway" in _by_kind(overlay, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_stores_and_isolation(overlay: str) -> None:
    objs = render(overlay)
    (db,) = [o for o in objs if o["kind"] == "Cluster"]
    assert db["metadata"]["name"] == "sipcc-db"  # → CNPG's Secret sipcc-db-app
    assert db["spec"]["bootstrap"]["initdb"] == {"database": "sipcc", "owner": "sipcc"}
    redis = _by_kind(overlay, "StatefulSet")["sipcc-redis"]
    names = [c["name"] for c in redis["spec"]["template"]["spec"]["containers"]]
    assert names == ["redis", "sentinel"]
    config = _by_kind(overlay, "ConfigMap")["sipcc-config"]["data"]
    assert config["SIPCC_REDIS_URL"].startswith("redis+sentinel://sipcc-redis-sentinel:26379/")
    policies = _by_kind(overlay, "NetworkPolicy")
    assert policies["default-deny"]["spec"]["podSelector"] == {}
    assert {o["metadata"]["namespace"] for o in objs if o["kind"] != "Namespace"} == {"sipcc"}


def test_production_is_highly_available() -> None:
    objs = render("production")
    (db,) = [o for o in objs if o["kind"] == "Cluster"]
    assert db["spec"]["instances"] == 3 and "barmanObjectStore" in db["spec"]["backup"]
    assert [o["spec"]["cluster"]["name"] for o in objs if o["kind"] == "ScheduledBackup"] == ["sipcc-db"]
    assert _by_kind("production", "StatefulSet")["sipcc-redis"]["spec"]["replicas"] == 3
    assert _by_kind("production", "Deployment")["sipcc-gateway"]["spec"]["replicas"] == 3
    assert not [o for o in objs if o["kind"] == "Secret"]  # created out of band


def test_dashboard_is_grafana_json_loaded_by_the_sidecar() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "sipcc-overview"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for overlay in OVERLAYS:
        cm = _by_kind(overlay, "ConfigMap")["sipcc-dashboard"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"]["sipcc-dashboard.json"]) == dash


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inline_shell_scripts_parse(overlay: str) -> None:
    """The Redis and Sentinel start scripts are shell inside YAML: `sh -n` reads them."""
    scripts = [
        c["args"][0]
        for o in render(overlay) if o["kind"] in ("Deployment", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"] if c.get("command") == ["sh", "-c"]
    ]  # fmt: skip
    assert len(scripts) == 2
    for script in scripts:
        out = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr + script
