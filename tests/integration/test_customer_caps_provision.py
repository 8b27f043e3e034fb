"""Per-customer toll-fraud caps are provisioned like the rest of a customer: in the YAML file
and through the API (one validation and write path, services/provision.py), loaded into
the inventory the edge routes with; bad values are refused by name, nothing written."""

from __future__ import annotations

import pytest
import yaml

from services import inventory, provision
from tests.integration.test_provision_api import EXAMPLE, api, pool, refused  # noqa: F401


def doc_with(**caps) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["customers"][0].update(caps)
    return yaml.safe_dump(doc)


@pytest.mark.rule("A7")
async def test_caps_from_yaml_reach_the_inventory(pg) -> None:
    await provision.apply(pg, provision.parse(doc_with(max_concurrent_calls=2,
                                                       max_calls_per_second=5)))  # fmt: skip
    acme = (await inventory.load(pg)).customers["acme"]
    assert (acme.max_concurrent_calls, acme.max_calls_per_second) == (2, 5)
    # Taken out of the file: no cap any more (the file declares the customer).
    await provision.apply(pg, provision.parse(doc_with()))
    acme = (await inventory.load(pg)).customers["acme"]
    assert (acme.max_concurrent_calls, acme.max_calls_per_second) == (None, None)


@pytest.mark.parametrize("field,value", [("max_concurrent_calls", 0),
                                         ("max_calls_per_second", -1),
                                         ("max_calls_per_second", "lots")])  # fmt: skip
def test_bad_caps_in_yaml_are_named(field, value) -> None:
    with pytest.raises(provision.ProvisionError) as err:
        provision.parse(doc_with(**{field: value}), "caps.yaml")
    assert field in str(err.value) and "Traceback" not in str(err.value)


@pytest.mark.rule("A7")
async def test_caps_through_the_api(api, pool) -> None:  # noqa: F811
    async def patch(body: dict):
        tag = (await api.get("/v1/customers/acme")).headers["etag"]
        return await api.patch("/v1/customers/acme", json=body, headers={"If-Match": tag})

    r = await patch({"max_concurrent_calls": 2, "max_calls_per_second": 10})
    assert r.status_code == 200, r.text
    assert (r.json()["max_concurrent_calls"], r.json()["max_calls_per_second"]) == (2, 10)
    async with pool.acquire() as conn:
        acme = (await inventory.load(conn)).customers["acme"]
    assert (acme.max_concurrent_calls, acme.max_calls_per_second) == (2, 10)
    tag = (await api.get("/v1/customers/acme")).headers["etag"]
    await refused(api, pool, "PATCH", "/v1/customers/acme", {"max_concurrent_calls": 0}, 422,
                  "max_concurrent_calls", headers={"If-Match": tag})  # fmt: skip
    r = await patch({"max_concurrent_calls": None})
    assert r.status_code == 200 and r.json()["max_concurrent_calls"] is None
