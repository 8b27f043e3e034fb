"""Reference data in the real Postgres: import, bad rows, effective dates, the snapshot the
call path reads, and the tariff parts of provisioning (rules R3-R15, A5, A7)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from rater.decision import CallFacts, decide
from services import inventory, provision, refdata

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "refdata"
PROVISION = ROOT / "examples" / "provision.yaml"
FILES = [("npa-nxx", "npa-nxx.csv"), ("thousands", "thousands.csv"), ("lata", "lata.csv"),
         ("lca", "lca.csv"), ("carriers", "carriers.csv"), ("intl-rates", "intl-rates.csv")]  # fmt: skip
TABLES = "nanp_codes, nanp_blocks, latas, carrier_categories, local_calling_areas, intl_rates, " \
         "refdata_imports, blocked_sources"  # fmt: skip
AT = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)


@pytest.fixture
async def db(pg):
    """The run's database with the example provisioning and no reference data; the
    reference data (which conftest does not truncate) is emptied again afterwards."""
    await pg.execute(f"TRUNCATE {TABLES}")
    await provision.apply(pg, provision.load_file(PROVISION))
    yield pg
    await pg.execute(f"TRUNCATE {TABLES}")


async def import_examples(conn) -> dict[str, refdata.ImportReport]:
    return {kind: await refdata.import_file(conn, kind, EXAMPLES / f) for kind, f in FILES}


def rate(inv, dnis: str, ani: str | None = "+17275550100", at: datetime = AT, **kw):
    return decide(inv, CallFacts(dnis=dnis, ani=ani, trunk_group_id="acme-main", at=at, **kw))


@pytest.mark.rule("R3")
async def test_without_reference_data_phonenumbers_still_decides(db) -> None:
    inv = await inventory.load(db)
    assert not inv.refdata.has_numbering
    assert rate(inv, "+13055551234").jurisdiction == "intrastate"  # FL → FL by NPA
    assert rate(inv, "+12125551234").jurisdiction == "interstate"
    assert rate(inv, "+17275551234").jurisdiction == "intrastate"  # no LCA known: not local
    assert rate(inv, "+442079460000").rule == "R11"  # no deck imported: no price, refused


@pytest.mark.rule("R6")
async def test_examples_import_and_drive_the_decision(db) -> None:
    reports = await import_examples(db)
    assert {k: r.imported for k, r in reports.items()} == {
        "npa-nxx": 10, "thousands": 3, "lata": 7, "lca": 4, "carriers": 6, "intl-rates": 13}  # fmt: skip
    assert all(r.errors == [] and r.skipped == 0 for r in reports.values())
    inv = await inventory.load(db)
    pooled = rate(inv, "+17275573000")  # block pooled to ST PETERSBG, NXX in CLEARWATER
    assert (pooled.jurisdiction, pooled.rate_center, pooled.carrier_category, pooled.ocn) == (
        "local", "ST PETERSBG", "clec", "7229")
    other = rate(inv, "+17275579000")  # block pooled to TAMPA: outside the LCA
    assert (other.jurisdiction, other.rate_center, other.lata) == ("intrastate", "TAMPA", "952")
    uk = rate(inv, "+442079460000")
    assert (uk.rate_per_minute, uk.billing_increments) == (Decimal("0.01000"), (30, 6))
    assert rate(inv, "+33123456789").rate_per_minute == Decimal("0.02000")
    later = datetime(2030, 2, 1, tzinfo=UTC)
    assert rate(inv, "+33123456789", at=later).rate_per_minute == Decimal("0.02500")  # R15
    assert rate(inv, "+18135551234", at=later).jurisdiction == "local"  # LCA grows in 2030


@pytest.mark.rule("R15")
async def test_import_twice_changes_nothing_and_snapshot_is_cached(db) -> None:
    await import_examples(db)
    first = await inventory.load(db)
    again = await import_examples(db)
    assert {r.imported for r in again.values()} == {0}
    assert {r.unchanged for r in again.values()} == {3, 4, 6, 7, 10, 13}
    second = await inventory.load(db)
    # Nothing moved: the snapshot is reused, not rebuilt (a full NANPA takes seconds).
    assert second.refdata is first.refdata
    await db.execute("UPDATE latas SET lata = '999' WHERE rate_center = 'MIAMI'")
    third = await inventory.load(db)
    assert third.refdata is not first.refdata
    assert rate(third, "+13055551234").lata == "999"


@pytest.mark.rule("R6")
async def test_bad_rows_refused_with_line_numbers(db, tmp_path) -> None:
    bad = tmp_path / "codes.csv"
    bad.write_text(
        "State,NPA-NXX,Ocn,Company,RateCenter,EffectiveDate,Use,AssignDate,Initial/Growth,Pooled\n"
        "FL,727-555,9206,VERIZON,CLEARWATER,01/01/1999,AS,01/01/1999,I,N\n"
        "Florida,727-556,6529,CELLCO,CLEARWATER,03/15/2005,AS,03/15/2005,G,N\n"
        "FL,127-557,9206,VERIZON,CLEARWATER,06/01/2010,AS,06/01/2010,G,Y\n"
        "\n"
        "FL,727-558,9206,VERIZON,ST PETERSBG,13/45/1999,AS,01/01/1999,I,N\n"
        "FL,727-555,9206,VERIZON,CLEARWATER,01/01/1999,AS,01/01/1999,I,N\n"
        "FL,813-555,9206,VERIZON,TAMPA,01/01/1999,AS,01/01/1999,I,maybe\n"
    )
    with pytest.raises(refdata.RefdataError) as err:
        await refdata.import_file(db, "npa-nxx", bad, on_error="refuse")
    text = str(err.value)
    for line, what in [(3, "state 'FLORIDA'"), (4, "NPA '127'"), (6, "not a date"),
                       (7, "same key and effective date as line 2"), (8, "not Y or N")]:  # fmt: skip
        assert f"codes.csv: line {line}: " in text and what in text, text
    assert "nothing imported" in text
    assert await db.fetchval("SELECT count(*) FROM nanp_codes") == 0
    report = await refdata.import_file(db, "npa-nxx", bad, on_error="skip")
    assert (report.read, report.imported, report.skipped) == (6, 1, 5)
    assert [n for n, _ in report.errors] == [3, 4, 6, 7, 8]
    assert await db.fetchval("SELECT count(*) FROM nanp_codes") == 1


async def test_missing_column_refuses_the_file(db, tmp_path) -> None:
    f = tmp_path / "deck.csv"
    f.write_text("Prefix,Description\n44,United Kingdom\n")
    with pytest.raises(refdata.RefdataError, match="no column for rate"):
        await refdata.import_file(db, "intl-rates", f, on_error="skip")
    with pytest.raises(refdata.RefdataError, match="unknown kind"):
        refdata.parse_text("lerg", "a,b\n")


@pytest.mark.rule("R11")
async def test_tab_separated_deck_replace_and_named_decks(db, tmp_path) -> None:
    f = tmp_path / "deck.tsv"
    f.write_text("Prefix\tDescription\tRate\tEffective Date\n+49\tGermany\t0.01800\t2020-01-01\n")
    await refdata.import_file(db, "intl-rates", EXAMPLES / "intl-rates.csv")
    await refdata.import_file(db, "intl-rates", f, deck="wholesale")
    assert await db.fetchval("SELECT count(*) FROM intl_rates WHERE deck = 'wholesale'") == 1
    report = await refdata.import_file(db, "intl-rates", f, replace=True)
    assert report.imported == 1
    # --replace emptied only the default deck before loading it.
    assert await db.fetchval("SELECT count(*) FROM intl_rates WHERE deck = 'default'") == 1
    assert await db.fetchval("SELECT count(*) FROM intl_rates WHERE deck = 'wholesale'") == 1
    inv = await inventory.load(db)
    assert rate(inv, "+4930123456").rate_per_minute == Decimal("0.01800")
    assert rate(inv, "+442079460000").rule == "R11"  # replaced away


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_cli_import_skip_refuse_and_status(db, pg_dsn, tmp_path) -> None:
    env = {**os.environ, "SIPCC_DATABASE_URL": pg_dsn}
    ok = _cli("refdata", "import", "thousands", str(EXAMPLES / "thousands.csv"), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "3 rows read, 3 imported or changed" in ok.stdout
    bad = tmp_path / "cats.csv"
    bad.write_text("OCN,Company,Category\n9206,VERIZON,RBOC\n6529,CELLCO,satellite\n")
    refused = _cli("refdata", "import", "carriers", str(bad), env=env)
    assert refused.returncode == 2
    assert "line 3: category 'satellite'" in refused.stderr and "Traceback" not in refused.stderr
    skipped = _cli("refdata", "import", "carriers", str(bad), "--on-error", "skip", env=env)
    assert skipped.returncode == 0, skipped.stderr
    assert "line 3:" in skipped.stderr and "1 imported or changed, 0 unchanged, 1 skipped" in skipped.stdout
    status = _cli("refdata", "status", env=env)
    assert '"carriers": 1' in status.stdout and '"thousands": 3' in status.stdout


TARIFF_YAML = """
carriers:
  - {id: c, name: Carrier, gateway: "sip:127.0.0.3:5060"}
rate_plans:
  - id: gold
    name: Gold
    interstate_per_minute: "0.01000"
    intrastate_per_minute: "0.01500"
    local_per_minute: "0.00400"
    toll_free_inbound_per_minute: "0.02500"
    offshore_toll_free_per_minute: {PR: "0.17000"}
    payphone_surcharge: "0.55000"
    directory_assistance: {per_call: "0.75000"}
    intrastate_per_lata: {"460": "0.02200"}
    high_cost_prefixes: ["44"]
    increments: {domestic: [1, 1]}
    versions:
      - effective_from: 2030-01-01
        interstate_per_minute: "0.02000"
customers:
  - id: initech
    name: Initech
    rate_plan: gold
    credit_limit: "25.00000"
    high_cost_allowed: ["4420"]
    term_start: 2029-06-01
    initial_term_months: 12
    trunk_groups:
      - {id: initech-main, trunks: 3, source_ips: [127.0.0.30], carrier: c}
    numbers:
      - {tn: "+17275550400", trunk_group: initech-main}
      - {tn: "+18885550400", trunk_group: initech-main}
blocked_sources:
  - {network: 203.0.113.0/24, reason: SIP flood}
"""


@pytest.mark.rule("R15")
async def test_provisioned_tariff_versions_and_blocks(db) -> None:
    spec = provision.parse(TARIFF_YAML, "tariff.yaml")
    first = await provision.apply(db, spec)
    assert first["rate_plan_versions"] == 1 and first["blocked_sources"] == 1
    assert set((await provision.apply(db, spec)).values()) == {0}  # idempotent
    inv = await inventory.load(db)

    def go(dnis: str, ani: str | None = "+17275550400", at: datetime = AT, **kw):
        return decide(inv, CallFacts(dnis=dnis, ani=ani, trunk_group_id="initech-main", at=at,
                                     **kw))  # fmt: skip

    d = go("+12125551234")
    assert (d.rate_per_minute, d.billing_increments) == (Decimal("0.01000"), (1, 1))
    assert go("+12125551234", at=datetime(2029, 12, 31, tzinfo=UTC)).rate_per_minute == Decimal("0.01000")
    # In the initial term (to 2030-06-01) the 2030 rise does not apply; after it, it does.
    assert go("+12125551234", at=datetime(2030, 2, 1, tzinfo=UTC)).rate_per_minute == Decimal("0.01000")
    assert go("+12125551234", at=datetime(2030, 7, 1, tzinfo=UTC)).rate_per_minute == Decimal("0.02000")
    assert go("+13055551234").rate_per_minute == Decimal("0.01500")  # no refdata: no LATA
    assert go("411").per_call_charge == "0.75000"
    assert go("+441612345678").rule == "A5"  # the plan's own high-cost list
    assert go("+442079460000").rule == "R11"  # unblocked for initech, but no deck imported
    inbound = decide(inv, CallFacts(dnis="+18885550400", ani="+17875551234;oli=27",
                                    direction="inbound", at=AT))  # fmt: skip
    assert (inbound.customer_id, inbound.rate_per_minute, inbound.per_call_charge) == (
        "initech", Decimal("0.17000"), "0.55000")
    assert go("+12125551234", source_ip="203.0.113.50").rule == "A7"
    assert inv.customers["initech"].credit_limit == Decimal("25.00000")
    # A file without the section leaves the block list; one with an empty section clears it.
    await provision.apply(db, provision.parse("carriers: []"))
    assert await db.fetchval("SELECT count(*) FROM blocked_sources") == 1
    await provision.apply(db, provision.parse("blocked_sources: []"))
    assert await db.fetchval("SELECT count(*) FROM blocked_sources") == 0


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("rate_plans.0.versions.0.effective_from", "someday", "versions[0].effective_from"),
        ("rate_plans.0.offshore_toll_free_per_minute", {"Puerto Rico": "0.1"},
         "offshore_toll_free_per_minute"),
        ("rate_plans.0.increments", {"domestic": [0, 6]}, "increments.domestic"),
        ("customers.0.high_cost_allowed", ["+44"], "high_cost_allowed"),
        ("customers.0.initial_term_months", None, "term_start and initial_term_months together"),
        ("blocked_sources.0.network", "203.0.113.0/33", "blocked_sources[0].network"),
    ],
)  # fmt: skip
def test_bad_tariff_fields_are_named(path: str, value, expected: str) -> None:
    import yaml

    doc = yaml.safe_load(TARIFF_YAML)
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    node[keys[-1]] = value
    with pytest.raises(provision.ProvisionError) as err:
        provision.parse(yaml.safe_dump(doc), "tariff.yaml")
    assert expected in str(err.value)
