"""`sipcc provision apply`: idempotent, atomic, and clear about bad input (issue 2, DoD 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services import inventory, provision

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "provision.yaml"


async def snapshot(conn) -> dict[str, list]:
    out = {}
    for table in ("carriers", "rate_plans", "customers", "trunk_groups", "numbers",
                  "registered_addresses"):  # fmt: skip
        rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")
        out[table] = [dict(r) for r in rows]
    return out


async def test_example_applies_and_second_apply_changes_nothing(pg) -> None:
    spec = provision.load_file(EXAMPLE)
    first = await provision.apply(pg, spec)
    assert first["numbers"] == 10 and first["trunk_groups"] == 1 and first["customers"] == 1
    before = await snapshot(pg)
    second = await provision.apply(pg, spec)
    assert set(second.values()) == {0}
    assert await snapshot(pg) == before  # not even updated_at moved


async def test_example_content(pg) -> None:
    await provision.apply(pg, provision.load_file(EXAMPLE))
    inv = await inventory.load(pg)
    assert inv.carriers["loopback-carrier"].gateway_uri == "sip:127.0.0.3:5060"
    tg = inv.trunk_for_source("127.0.0.2")
    assert tg is not None and tg.id == "acme-main" and tg.trunks == 2  # rule A1
    assert inv.trunk_for_source("127.0.0.9") is None  # rule A8
    assert sorted(inv.numbers) == [f"+1727555010{i}" for i in range(10)]
    addresses = await pg.fetchval("SELECT count(*) FROM registered_addresses")
    assert addresses == 10


def bad_variant(path: str, value) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    node[keys[-1]] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("customers.0.trunk_groups.0.trunks", "two", "customers[0] (id=acme).trunk_groups[0] (id=acme-main).trunks"),
        ("customers.0.trunk_groups.0.source_ips", ["127.0.0.300"], "trunk_groups[0] (id=acme-main).source_ips"),
        ("customers.0.rate_plan", "gold", "customers[0] (id=acme).rate_plan: no rate plan 'gold'"),
        ("customers.0.numbers.0.range", ["+17275550109", "+17275550100"], "customers[0] (id=acme).numbers[0].range"),
        ("customers.0.trunk_groups.0.carrier", "nobody", "trunk_groups[0] (id=acme-main).carrier"),
        ("rate_plans.0.interstate_per_minute", "-1", "rate_plans[0] (id=default).interstate_per_minute"),
        ("customers.0.statuss", "active", "customers[0] (id=acme).statuss: Extra inputs"),
    ],
)  # fmt: skip
async def test_bad_field_is_named_and_nothing_is_written(pg, path, value, expected) -> None:
    await provision.apply(pg, provision.load_file(EXAMPLE))
    before = await snapshot(pg)
    text = bad_variant(path, value).replace("Acme Dental Group", "Acme Renamed")
    with pytest.raises(provision.ProvisionError) as err:
        await provision.apply(pg, provision.parse(text, "bad.yaml"))
    assert expected in str(err.value)
    assert await snapshot(pg) == before


async def test_number_of_another_customer_is_refused(pg) -> None:
    await provision.apply(pg, provision.load_file(EXAMPLE))
    before = await snapshot(pg)
    other = """
customers:
  - id: globex
    name: Globex
    rate_plan: default
    numbers:
      - tn: "+17275550105"
"""
    with pytest.raises(provision.ProvisionError, match=r"customers\[0\] \(id=globex\)\.numbers\[0\]: \+17275550105 belongs to customer 'acme'"):
        await provision.apply(pg, provision.parse(other))
    assert await snapshot(pg) == before


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(provision.ProvisionError, match=r"broken.yaml: not valid YAML at line \d+, column \d+"):
        provision.parse("customers:\n  - id: x\n    name: [unclosed\n", "broken.yaml")


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_cli_migrate_twice_and_apply(pg, pg_dsn, tmp_path, monkeypatch) -> None:
    import os

    env = {**os.environ, "SIPCC_DATABASE_URL": pg_dsn}
    first = _cli("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "schema up to date" in first.stdout  # the fixture migrated already: safe twice
    ok = _cli("provision", "apply", str(EXAMPLE), env=env)
    assert ok.returncode == 0, ok.stderr
    again = _cli("provision", "apply", str(EXAMPLE), env=env)
    assert "0 rows changed" in again.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(bad_variant("customers.0.trunk_groups.0.trunks", -3))
    out = _cli("provision", "apply", str(bad), env=env)
    assert out.returncode == 2
    assert "trunk_groups[0] (id=acme-main).trunks" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.rule("A8")
async def test_digest_trunk_stores_only_ha1_and_is_idempotent(pg) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["customers"][0]["trunk_groups"].append(
        {"id": "acme-roaming", "trunks": 1, "carrier": "loopback-carrier",
         "digest": {"username": "acme-roaming", "password": "correct-horse-battery"}}
    )  # fmt: skip
    spec = provision.parse(yaml.safe_dump(doc))
    assert (await provision.apply(pg, spec))["trunk_groups"] == 2
    assert set((await provision.apply(pg, spec)).values()) == {0}
    row = await pg.fetchrow("SELECT * FROM trunk_groups WHERE id = 'acme-roaming'")
    assert "correct-horse-battery" not in str(dict(row))
    inv = await inventory.load(pg)
    assert inv.trunk_for_user("acme-roaming").id == "acme-roaming"
    doc["customers"][0]["trunk_groups"][1].pop("digest")
    with pytest.raises(provision.ProvisionError, match=r"trunk_groups\[1\] \(id=acme-roaming\): Value error, a trunk group needs source_ips or digest"):
        provision.parse(yaml.safe_dump(doc))
