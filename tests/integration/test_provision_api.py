"""The provisioning API (issue 11, Done-when 1): each resource's create, read, update and
list, bad input refused with the field named and nothing written, lost updates refused by
If-Match, A3 conflicts, dated number events that billing reads (B5), and the audit trail."""

from __future__ import annotations

import asyncio
import json
import types
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services import inventory, provision
from services.api import create_app
from tests.support import apikeys
from tests.support.node import ROOT

EXAMPLE = ROOT / "examples" / "provision.yaml"


@pytest.fixture
async def pool(pg_dsn, pg):
    await pg.execute("TRUNCATE provisioning_audit")
    await provision.apply(pg, provision.load_file(EXAMPLE), actor="yaml:examples/provision.yaml")
    p = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=3)
    yield p
    await p.close()


@pytest.fixture
async def api(pool):
    app = create_app(types.SimpleNamespace(pool=pool))
    headers = await apikeys.headers(pool, scopes="provisioning", name="sales-portal")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=headers) as c:  # fmt: skip
        yield c


async def snapshot(pool) -> dict:
    out = {}
    for table in ("customers", "trunk_groups", "numbers", "rate_plans", "rate_plan_versions",
                  "billing_events", "provisioning_audit"):  # fmt: skip
        out[table] = [dict(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY 1")]
    return out


async def refused(api, pool, method: str, url: str, body, status: int, field: str, **kw) -> dict:
    """The request is refused with `status`, the error names `field`, nothing is written."""
    before = await snapshot(pool)
    r = await api.request(method, url, json=body, **kw)
    assert r.status_code == status, r.text
    assert field in r.text, r.text
    assert await snapshot(pool) == before
    return r.json()


CUSTOMER = {"id": "bravo", "name": "Bravo Plumbing", "rate_plan": "default",
            "credit_limit": "250.00000"}  # fmt: skip


# --- customers -----------------------------------------------------------------------------


async def test_customer_create_read_update_list(api, pool) -> None:
    r = await api.post("/v1/customers", json=CUSTOMER)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "active" and created["credit_limit"] == "250.00000"
    assert created["credit_level"] == "250.00000"  # no billing account: the customer's limit
    got = await api.get("/v1/customers/bravo")
    assert got.json() == created and got.headers["etag"] == r.headers["etag"]

    r = await api.patch("/v1/customers/bravo", json={"status": "suspended", "status_reason": "billing"},
                        headers={"If-Match": got.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "suspended" and r.json()["status_reason"] == "billing"
    assert r.headers["etag"] != got.headers["etag"]
    inv = await inventory.load(pool)
    assert inv.customers["bravo"].status == "suspended"  # A9 reads it from here

    # Reactivated, the reason goes with the suspension it explained.
    r = await api.patch("/v1/customers/bravo", json={"status": "active"},
                        headers={"If-Match": r.headers["etag"]})  # fmt: skip
    assert r.json()["status_reason"] is None

    page = (await api.get("/v1/customers", params={"limit": 1})).json()
    assert [c["id"] for c in page["items"]] == ["acme"] and page["next_cursor"]
    page = (await api.get("/v1/customers", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert [c["id"] for c in page["items"]] == ["bravo"] and page["next_cursor"] is None
    page = (await api.get("/v1/customers", params={"status": "suspended"})).json()
    assert page["items"] == []
    assert (await api.get("/v1/customers/nobody")).status_code == 404
    assert (await api.post("/v1/customers", json=CUSTOMER)).status_code == 409


async def test_credit_level_follows_billing(api, pool) -> None:
    """B10 → A6: billing's limit plus deposit is the level, shown beside the customer's own."""
    await pool.execute("INSERT INTO billing_accounts (customer_id, credit_limit, deposit) "
                       "VALUES ('acme', 100, 50)")  # fmt: skip
    body = (await api.get("/v1/customers/acme")).json()
    assert body["credit_limit"] == "500.00000" and body["credit_level"] == "150.00000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CUSTOMER, "status": "paused"}, "status"),
        ({**CUSTOMER, "rate_plan": "gold"}, "rate_plan: no rate plan 'gold'"),
        ({**CUSTOMER, "status": "suspended"}, "status_reason"),
        ({**CUSTOMER, "credit_limit": "-5"}, "credit_limit"),
        ({**CUSTOMER, "id": "Bad Id"}, "id"),
        ({**CUSTOMER, "colour": "red"}, "colour"),
        ({**CUSTOMER, "trunk_groups": [{"id": "b1", "trunks": 2, "carrier": "loopback-carrier",
                                        "source_ips": ["10.0.0.300"]}]}, "trunk_groups.0.source_ips"),
    ],
)  # fmt: skip
async def test_bad_customer_refused(api, pool, body, field) -> None:
    await refused(api, pool, "POST", "/v1/customers", body, 422, field)


async def test_broken_json_refused(api, pool) -> None:
    before = await snapshot(pool)
    r = await api.post("/v1/customers", content=b'{"id": "bravo", "name": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.text
    r = await api.post("/v1/trunk-groups", json=["not", "an", "entry"])
    assert r.status_code == 422
    assert await snapshot(pool) == before


async def test_lost_update_refused_by_if_match(api, pool) -> None:
    got = await api.get("/v1/customers/acme")
    tag = got.headers["etag"]
    # Clerk 1 renames; clerk 2, still holding the old ETag, would overwrite it.
    first = await api.patch("/v1/customers/acme", json={"name": "Acme Dental"}, headers={"If-Match": tag})
    assert first.status_code == 200
    await refused(api, pool, "PATCH", "/v1/customers/acme", {"credit_limit": "1"}, 412, "If-Match",
                  headers={"If-Match": tag})  # fmt: skip
    await refused(api, pool, "PATCH", "/v1/customers/acme", {"credit_limit": "1"}, 428, "If-Match")
    await refused(api, pool, "PATCH", "/v1/customers/acme", {"id": "other"}, 422, "id",
                  headers={"If-Match": first.headers["etag"]})  # fmt: skip
    assert (await api.get("/v1/customers/acme")).json()["name"] == "Acme Dental"


async def test_two_clerks_at_once_one_wins(api, pool) -> None:
    """The same ETag sent twice at the same moment: the row lock orders them, so the second
    is compared against the first's result and refused."""
    tag = (await api.get("/v1/customers/acme")).headers["etag"]
    results = await asyncio.gather(*(
        api.patch("/v1/customers/acme", json={"name": f"Clerk {i}"}, headers={"If-Match": tag})
        for i in range(2)))  # fmt: skip
    assert sorted(r.status_code for r in results) == [200, 412]
    winner = next(r for r in results if r.status_code == 200).json()["name"]
    assert (await api.get("/v1/customers/acme")).json()["name"] == winner


# --- trunk groups --------------------------------------------------------------------------

TG = {"customer_id": "acme", "id": "acme-branch", "trunks": 3, "carrier": "loopback-carrier",
      "source_ips": ["10.1.0.0/24"], "digest": {"username": "acme-branch", "password": "s3cret-password-1"}}  # fmt: skip


@pytest.mark.rule("A1")
@pytest.mark.rule("A8")
async def test_trunk_group_create_read_update_list(api, pool) -> None:
    r = await api.post("/v1/trunk-groups", json=TG)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["digest"] == {"username": "acme-branch"}  # no password, ever
    stored = await pool.fetchrow("SELECT digest_ha1::text AS ha1 FROM trunk_groups WHERE id = 'acme-branch'")
    assert "s3cret" not in stored["ha1"] and "SHA-256" in stored["ha1"]
    audit = await pool.fetch("SELECT after::text AS a FROM provisioning_audit WHERE key = 'acme-branch'")
    assert audit and all("s3cret" not in a["a"] and "digest_ha1" not in a["a"] for a in audit)

    got = await api.get("/v1/trunk-groups/acme-branch")
    assert got.json() == body
    r = await api.patch("/v1/trunk-groups/acme-branch", json={"trunks": 1, "ani_precedence": ["from"]},
                        headers={"If-Match": got.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["trunks"] == 1
    after = await pool.fetchrow("SELECT digest_ha1::text AS ha1 FROM trunk_groups WHERE id = 'acme-branch'")
    assert after["ha1"] == stored["ha1"]  # the credential was kept: the update left it alone
    inv = await inventory.load(pool)
    assert inv.trunk_groups["acme-branch"].trunks == 1

    page = (await api.get("/v1/trunk-groups", params={"customer_id": "acme"})).json()
    assert [t["id"] for t in page["items"]] == ["acme-branch", "acme-main"]
    assert (await api.get("/v1/trunk-groups", params={"customer_id": "zzz"})).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**TG, "trunks": -1}, 422, "trunks"),
        ({**TG, "source_ips": ["300.1.1.1"]}, 422, "source_ips"),
        ({**TG, "carrier": "nobody"}, 422, "carrier: no carrier 'nobody'"),
        ({**TG, "customer_id": "nobody"}, 404, "nobody"),
        ({**TG, "ani_precedence": ["pai"]}, 422, "ani_precedence"),
        ({**TG, "digest": {"username": "acme-branch"}}, 422, "digest.password"),
        ({**TG, "id": "acme-main", "customer_id": "acme"}, 409, "acme-main"),
    ],
)  # fmt: skip
async def test_bad_trunk_group_refused(api, pool, body, status, field) -> None:
    await refused(api, pool, "POST", "/v1/trunk-groups", body, status, field)


async def test_trunk_group_of_another_customer_is_a_conflict(api, pool) -> None:
    await api.post("/v1/trunk-groups", json=TG)
    tg = {k: v for k, v in TG.items() if k != "customer_id"}
    await refused(api, pool, "POST", "/v1/customers", {**CUSTOMER, "trunk_groups": [{**tg, "id": "acme-main"}]},
                  409, "trunk group 'acme-main' belongs to customer 'acme'")  # fmt: skip
    await refused(api, pool, "POST", "/v1/customers", {**CUSTOMER, "trunk_groups": [{**tg, "id": "b-main"}]},
                  409, "digest.username: already used by trunk group 'acme-branch'")  # fmt: skip
    got = await api.get("/v1/trunk-groups/acme-main")
    await refused(api, pool, "PATCH", "/v1/trunk-groups/acme-main", {"customer_id": "bravo"}, 422,
                  "customer_id", headers={"If-Match": got.headers["etag"]})  # fmt: skip


# --- telephone numbers ---------------------------------------------------------------------


@pytest.mark.rule("A3")
async def test_a_tn_belongs_to_one_customer(api, pool) -> None:
    await api.post("/v1/customers", json=CUSTOMER)
    out = await refused(api, pool, "POST", "/v1/numbers",
                        {"customer_id": "bravo", "range": ["+17275550105", "+17275550112"]}, 409,
                        "+17275550105 belongs to customer 'acme'")  # fmt: skip
    assert "A3" in out["detail"]
    r = await api.post("/v1/numbers", json={"customer_id": "bravo", "range": ["+17275550110", "+17275550112"]})
    assert r.status_code == 201, r.text
    assert [n["tn"] for n in r.json()["items"]] == ["+17275550110", "+17275550111", "+17275550112"]
    assert all(n["state"] == "active" and n["customer_id"] == "bravo" for n in r.json()["items"])
    await refused(api, pool, "POST", "/v1/numbers", {"customer_id": "bravo", "tn": "+17275550110"}, 409,
                  "already bravo's")  # fmt: skip


@pytest.mark.rule("E6")
async def test_assign_with_a_registered_address(api, pool) -> None:
    """The address goes through the E911 router's normalisation (and its history)."""
    r = await api.post("/v1/numbers", json={"customer_id": "acme", "tn": "+17275550150",
                                            "registered_address": {"street": "600 cleveland street",
                                                                   "city": "Clearwater", "state": "FL",
                                                                   "zip": "33755"}})  # fmt: skip
    assert r.status_code == 201, r.text
    row = await pool.fetchrow("SELECT street, county_fips FROM registered_addresses WHERE tn = '+17275550150'")
    assert row["street"] == "600 CLEVELAND ST" and row["county_fips"] == "12103"
    assert await pool.fetchval("SELECT count(*) FROM registered_address_history WHERE tn = '+17275550150'") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "acme", "tn": "12345"}, "tn"),
        ({"customer_id": "acme", "tn": "+12125550000", "range": ["+12125550001", "+12125550002"]}, "tn"),
        ({"customer_id": "acme", "range": ["+12125550009", "+12125550001"]}, "range"),
        ({"customer_id": "acme", "tn": "+12125550000", "trunk_group": "other"}, "trunk_group"),
        ({"customer_id": "acme", "tn": "+12125550000", "foc_at": "2026-12-01T00:00:00Z"}, "foc_at"),
        ({"customer_id": "acme", "tn": "+12125550000", "registered_address": {"line": "PO Box 12"}},
         "registered_address"),
        ({"tn": "+12125550000"}, "customer_id"),
    ],
)  # fmt: skip
async def test_bad_number_refused(api, pool, body, field) -> None:
    await refused(api, pool, "POST", "/v1/numbers", body, 422, field)


@pytest.mark.rule("A3")
@pytest.mark.rule("R4")
@pytest.mark.rule("B5")
async def test_port_out_ends_ownership_from_its_date(api, pool) -> None:
    tn = "+17275550101"
    got = await api.get(f"/v1/numbers/{tn}")
    assert got.json()["state"] == "active"
    when = datetime.now(UTC) + timedelta(days=2)
    r = await api.post(f"/v1/numbers/{tn}/port-out", json={"at": when.isoformat(), "note": "to LEC"},
                       headers={"If-Match": got.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ported_out"
    ev = await pool.fetchrow("SELECT * FROM billing_events WHERE kind = 'port_out'")
    assert ev["customer_id"] == "acme" and list(ev["tns"]) == [tn] and ev["at"] == when
    inv = await inventory.load(pool)
    today = datetime.now(UTC).date().toordinal()
    assert inv.owner_of(tn, today) is not None  # still acme's until the port date
    assert inv.owner_of(tn, today + 2) is None
    await refused(api, pool, "POST", f"/v1/numbers/{tn}/disconnect", {}, 409, "already ported out")
    # Until the port date the TN is still held: no one else may take it yet.
    await api.post("/v1/customers", json=CUSTOMER)
    await refused(api, pool, "POST", "/v1/numbers", {"customer_id": "bravo", "tn": tn}, 409, "acme")

    listed = (await api.get("/v1/numbers", params={"state": "ported_out"})).json()["items"]
    assert [n["tn"] for n in listed] == [tn]


@pytest.mark.rule("A3")
@pytest.mark.rule("B5")
async def test_disconnected_tn_can_be_assigned_again(api, pool) -> None:
    tn = "+17275550102"
    r = await api.post(f"/v1/numbers/{tn}/disconnect", json={})
    assert r.status_code == 200 and r.json()["state"] == "disconnected"
    await api.post("/v1/customers", json=CUSTOMER)
    r = await api.post("/v1/numbers", json={"customer_id": "bravo", "tn": tn})
    assert r.status_code == 201, r.text
    assert r.json()["items"][0]["customer_id"] == "bravo" and r.json()["items"][0]["owned_until"] is None
    kinds = [e["kind"] for e in await pool.fetch("SELECT kind FROM billing_events ORDER BY id")]
    assert kinds == ["disconnect"]


@pytest.mark.rule("B5")
async def test_port_in_with_foc_and_reinstatement(api, pool) -> None:
    foc = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    r = await api.post("/v1/numbers", json={"customer_id": "acme", "tn": "+13055550100",
                                            "origin": "ported_in", "foc_at": foc.isoformat(),
                                            "trunk_group": "acme-main"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["items"][0]["owned_from"] == foc.isoformat()
    ev = await pool.fetchrow("SELECT * FROM billing_events WHERE kind = 'port_in'")
    assert ev["foc_at"] == foc and list(ev["tns"]) == ["+13055550100"]
    inv = await inventory.load(pool)
    assert inv.owner_of("+13055550100", foc.date().toordinal() - 1) is None
    assert inv.owner_of("+13055550100", foc.date().toordinal()) is not None

    await refused(api, pool, "POST", "/v1/numbers/+17275550100/reinstate", {}, 422, "only a ported-in")
    await refused(api, pool, "POST", "/v1/numbers/+13055550100/reinstate",
                  {"at": "2026-11-30T00:00:00Z"}, 422, "at:")  # fmt: skip
    back = foc + timedelta(hours=20)
    r = await api.post("/v1/numbers/+13055550100/reinstate", json={"at": back.isoformat()})
    assert r.status_code == 200, r.text
    ev = await pool.fetchrow("SELECT * FROM billing_events WHERE kind = 'reinstate'")
    assert ev["ported_at"] == foc and ev["at"] == back  # B5: $300 within 24 h of the port

    await refused(api, pool, "POST", "/v1/numbers/+17275550100/port-out", {"at": "2026-12-01T00:00:00"},
                  422, "time zone")  # fmt: skip
    # Billing's rule: a month already invoiced takes no new event (a credit note corrects it).
    await pool.execute("""INSERT INTO invoices (number, customer_id, period_start, due_on, total)
                          VALUES ('INV-1', 'acme', '2026-10-01', '2026-11-30', 0)""")  # fmt: skip
    await refused(api, pool, "POST", "/v1/numbers/+17275550100/disconnect", {"at": "2026-10-15T00:00:00Z"},
                  409, "already invoiced")  # fmt: skip
    assert (await api.post("/v1/numbers/+19995550000/disconnect", json={})).status_code in (404, 422)


@pytest.mark.rule("B5")
async def test_port_in_cancelled_before_its_foc(api, pool) -> None:
    foc = datetime.now(UTC) + timedelta(days=5)
    await api.post("/v1/numbers", json={"customer_id": "acme", "tn": "+13055550101",
                                        "origin": "ported_in", "foc_at": foc.isoformat()})  # fmt: skip
    r = await api.post("/v1/numbers/+13055550101/cancel-port-in", json={"note": "customer stays"})
    assert r.status_code == 200, r.text
    assert (await api.get("/v1/numbers/+13055550101")).status_code == 404
    ev = await pool.fetchrow("SELECT * FROM billing_events WHERE kind = 'lnp_cancel'")
    assert ev["foc_at"] == foc and list(ev["tns"]) == ["+13055550101"]  # > 48 h ahead: $6 (B5)
    await refused(api, pool, "POST", "/v1/numbers/+17275550100/cancel-port-in", {}, 409, "no port-in pending")


async def test_number_update_and_cursor(api, pool) -> None:
    await api.post("/v1/trunk-groups", json=TG)
    got = await api.get("/v1/numbers/7275550103")  # 10-digit accepted, E.164 answered
    assert got.json()["tn"] == "+17275550103"
    r = await api.patch("/v1/numbers/+17275550103", json={"trunk_group": "acme-branch"},
                        headers={"If-Match": got.headers["etag"]})  # fmt: skip
    assert r.status_code == 200 and r.json()["trunk_group"] == "acme-branch"
    await refused(api, pool, "PATCH", "/v1/numbers/+17275550103", {"customer_id": "bravo"}, 422,
                  "customer_id", headers={"If-Match": r.headers["etag"]})  # fmt: skip
    await refused(api, pool, "PATCH", "/v1/numbers/+17275550103", {"trunk_group": "nope"}, 422,
                  "trunk_group", headers={"If-Match": r.headers["etag"]})  # fmt: skip
    seen, cursor = [], None
    while True:
        page = (await api.get("/v1/numbers", params={"customer_id": "acme", "limit": 3,
                                                    **({"cursor": cursor} if cursor else {})})).json()  # fmt: skip
        seen += [n["tn"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"+1727555010{i}" for i in range(10)]
    assert (await api.get("/v1/numbers", params={"cursor": "!!"})).status_code == 400


# --- rate plans ----------------------------------------------------------------------------

PLAN = {"id": "gold", "name": "Gold", "interstate_per_minute": "0.01000",
        "intrastate_per_minute": "0.01500", "local_per_minute": "0.00400",
        "directory_assistance": {"per_call": "0.75000"}, "increments": {"domestic": [30, 6]}}  # fmt: skip


@pytest.mark.rule("R15")
async def test_rate_plan_create_read_update_and_assign(api, pool) -> None:
    r = await api.post("/v1/rate-plans", json=PLAN)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["directory_assistance"] == {"per_call": "0.75000", "per_minute": None}
    assert body["increments"] == {"domestic": [30, 6]}
    got = await api.get("/v1/rate-plans/gold")
    assert got.json() == body
    r = await api.patch("/v1/rate-plans/gold", json={"versions": [
        {"effective_from": "2027-01-01", "interstate_per_minute": "0.00900"}]},
        headers={"If-Match": got.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["versions"] == [{"effective_from": "2027-01-01", "interstate_per_minute": "0.00900"}]
    # Re-reading and re-sending the same entry changes nothing: the shapes round-trip.
    again = await api.patch("/v1/rate-plans/gold", json=r.json(), headers={"If-Match": r.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] == r.headers["etag"]

    cust = await api.get("/v1/customers/acme")
    r = await api.patch("/v1/customers/acme", json={"rate_plan": "gold"},
                        headers={"If-Match": cust.headers["etag"]})  # fmt: skip
    assert r.json()["rate_plan"] == "gold"
    assert (await inventory.load(pool)).customers["acme"].rate_plan_id == "gold"
    assert [p["id"] for p in (await api.get("/v1/rate-plans")).json()["items"]] == ["default", "gold"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PLAN, "local_per_minute": "abc"}, "local_per_minute"),
        ({**PLAN, "increments": {"domestic": [0, 6]}}, "increments.domestic"),
        ({**PLAN, "versions": [{"effective_from": "2027-01-01"}, {"effective_from": "2027-01-01"}]},
         "versions"),
        ({k: v for k, v in PLAN.items() if k != "interstate_per_minute"}, "interstate_per_minute"),
    ],
)  # fmt: skip
async def test_bad_rate_plan_refused(api, pool, body, field) -> None:
    await refused(api, pool, "POST", "/v1/rate-plans", body, 422, field)


# --- audit ---------------------------------------------------------------------------------


async def test_every_change_is_audited(api, pool) -> None:
    # A second apply of the same file changes nothing, so it records nothing.
    n = await pool.fetchval("SELECT count(*) FROM provisioning_audit")
    async with pool.acquire() as conn:
        assert set((await provision.apply(conn, provision.load_file(EXAMPLE))).values()) == {0}
    assert await pool.fetchval("SELECT count(*) FROM provisioning_audit") == n

    got = await api.get("/v1/customers/acme")
    await api.patch("/v1/customers/acme", json={"status": "suspended", "status_reason": "unpaid"},
                    headers={"If-Match": got.headers["etag"]})  # fmt: skip
    await api.post("/v1/numbers/+17275550104/disconnect", json={})
    await pool.execute("UPDATE carriers SET name = 'by hand'")

    page = (await api.get("/v1/provisioning/audit", params={"resource": "customers", "key": "acme"})).json()
    first, last = page["items"][0], page["items"][-1]
    assert first["actor"] == "yaml:examples/provision.yaml" and first["action"] == "insert"
    assert last["actor"] == "api:sales-portal" and last["action"] == "update"
    assert last["before"]["status"] == "active" and last["after"]["status"] == "suspended"
    assert last["after"]["status_reason"] == "unpaid"
    numbers = (await api.get("/v1/provisioning/audit", params={"resource": "numbers",
                                                               "key": "+17275550104"})).json()["items"]  # fmt: skip
    assert numbers[-1]["after"]["state"] == "disconnected" and numbers[-1]["actor"] == "api:sales-portal"
    carriers = (await api.get("/v1/provisioning/audit", params={"resource": "carriers"})).json()["items"]
    assert carriers[-1]["actor"].startswith("sql:") and carriers[-1]["after"]["name"] == "by hand"

    ts = [json.loads(json.dumps(i))["at"] for i in page["items"]]
    assert ts == sorted(ts)


async def test_provisioning_scope_required(pool) -> None:
    app = create_app(types.SimpleNamespace(pool=pool))
    headers = await apikeys.headers(pool, scopes="billing", name="billing-only")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=headers) as c:  # fmt: skip
        assert (await c.get("/v1/customers")).status_code == 403
        assert (await c.post("/v1/customers", json=CUSTOMER)).status_code == 403
