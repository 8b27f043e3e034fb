"""PSAPs from an FCC-registry shaped CSV (`sipcc psaps import`), and E3 upgrades."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e911_router import coverage, psap_csv
from e911_router.routing import route
from services import provision

ROOT = Path(__file__).resolve().parents[2]


def test_bad_rows_are_named_and_refuse_the_file() -> None:
    text = ("PSAP ID,PSAP Name,State,County,City,Type,ZIPs,Route\n"
            "ok-1,Fine,FL,Pinellas,Largo,E911,,\n"
            "bad-1,Typo,FL,Pinelas,Largo,E911,,\n"
            "bad-2,What,F,Pinellas,Largo,Wireless,3375,http://x\n"
            "ok-1,Again,FL,Pinellas,Largo,Basic,,\n")  # fmt: skip
    with pytest.raises(psap_csv.PsapCsvError) as err:
        psap_csv.parse(text, "p.csv")
    msg = str(err.value)
    assert "p.csv:3: County 'Pinelas' is not a county of FL" in msg
    assert "p.csv:4: State 'F' is not a two-letter state" in msg
    assert "p.csv:4: Type 'Wireless' is neither E911 nor basic" in msg
    assert "p.csv:4: ZIPs 3375 are not 5-digit ZIP codes" in msg
    assert "p.csv:4: Route 'http://x' is not a sip: or sips: URI" in msg
    assert "p.csv:5: PSAP ID 'ok-1' repeats line 2" in msg
    with pytest.raises(psap_csv.PsapCsvError, match="header lacks column"):
        psap_csv.parse("ID,Name\n1,x\n")


@pytest.mark.rule("E3")
async def test_import_and_a_psap_upgrade_reaches_its_callers(pg, pg_dsn, tmp_path) -> None:
    await pg.execute("DELETE FROM psaps")
    doc = yaml.safe_load((ROOT / "examples" / "provision.yaml").read_text())
    await provision.apply(pg, provision.parse(yaml.safe_dump(doc)))

    def tampa_level(data) -> str:
        return route(data, "+17275550105", "acme", lambda tn: "acme").level

    assert tampa_level(await coverage.load(pg)) == "basic"
    # The registry now lists Hillsborough as E911 (Phase II), without a route column.
    csv_file = tmp_path / "registry.csv"
    csv_file.write_text("PSAP ID,PSAP Name,State,County,City,Type\n"
                        "fl-hillsborough,Hillsborough County 911,FL,Hillsborough,Tampa,Phase II\n")  # fmt: skip
    env = {**os.environ, "SIPCC_DATABASE_URL": pg_dsn, "SIPCC_LOG_JSON": "false"}
    out = subprocess.run([sys.executable, "-m", "services.cli", "psaps", "import", str(csv_file)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "1 PSAPs read, 1 PSAPs" in out.stdout
    data = await coverage.load(pg)
    assert tampa_level(data) == "e911"  # upgraded, nobody touched the customer (E3)
    assert data.psaps["fl-hillsborough"].route_uri == "sip:127.0.0.5:5060"  # route kept

    # The example registry file: a new PSAP by county name → FIPS, no route yet.
    changed = await psap_csv.import_rows(pg, psap_csv.parse_file(ROOT / "examples/e911/psaps.csv"))
    assert changed["psaps"] == 2  # Pasco new; Hillsborough basic again, as this file says
    data = await coverage.load(pg)
    assert tampa_level(data) == "basic"
    assert data.areas[("county", "12101")] == "fl-pasco"
    assert data.psaps["fl-pasco"].route_uri is None and data.psaps["fl-pasco"].capability == "e911"
    bad = tmp_path / "bad.csv"
    bad.write_text("PSAP ID,PSAP Name,State,County,City,Type\nx,X,FL,Nowhere,Y,Basic\n")
    out = subprocess.run([sys.executable, "-m", "services.cli", "psaps", "import", str(bad)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "bad.csv:2: County 'Nowhere' is not a county of FL" in out.stderr
    assert "Traceback" not in out.stderr
