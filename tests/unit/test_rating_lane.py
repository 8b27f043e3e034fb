"""RatingLane (rater/routes.py) answers /v1/rate and /v1/quote with exactly the bytes the
FastAPI routes give, and leaves every other answer to them."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rater import routes
from services.api import create_app
from services.auth import MemoryKeys
from services.inventory import Number
from tests.unit.test_decision import _Node, inventory

BODIES = [
    ("/v1/rate", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "+12125551234"}),
    ("/v1/rate", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "7275551234"}),
    ("/v1/rate", {"trunk_id": "tg", "dnis": "19005551234"}),  # A2: refused, still a 200
    ("/v1/rate", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "+442071234567"}),
    ("/v1/rate", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "911"}),
    ("/v1/quote", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "+12125551234",
                   "duration_seconds": 61}),
    ("/v1/quote", {"trunk_id": "tg", "ani": "+17275550100", "dnis": "+525512345678",
                   "duration_seconds": "61.5"}),
    ("/v1/quote", {"customer_id": "acme", "ani": "+17875551234", "oli": "27",
                   "dnis": "+18005550100", "direction": "inbound", "duration_seconds": "60"}),
]  # fmt: skip


def _app(rate_per_second: float = 100_000, scopes=frozenset({"rating"})):
    inv = inventory()
    inv.numbers["+18005550100"] = Number("+18005550100", "acme", "tg", "assigned")
    keys = MemoryKeys()
    key = keys.add("test", scopes, rate_per_second)
    app = create_app(_Node(inv), keys)
    return app, TestClient(app, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """Paths the FastAPI routes parsed: a request the lane answered is not among them."""
    seen: list[str] = []
    real = routes._parse

    async def spy(request, model):
        seen.append(request.url.path)
        return await real(request, model)

    monkeypatch.setattr(routes, "_parse", spy)
    return seen


@pytest.mark.rule("R3")
def test_the_lane_answers_byte_for_byte_as_the_routes(parsed) -> None:
    app, client = _app()
    for path, body in BODIES:
        app.state.api_auth._cache.clear()  # the key not proved yet: the routes answer
        by_route = client.post(path, json=body)
        assert parsed.pop() == path
        by_lane = client.post(path, json=body)  # proved now: the lane answers
        assert parsed == []
        assert by_lane.status_code == by_route.status_code == 200, by_route.text
        assert by_lane.content == by_route.content
        for header in ("content-type", "content-length"):
            assert by_lane.headers[header] == by_route.headers[header]
    assert json.loads(by_lane.content)["amount"] == "0.79000"  # the last one: R9 + R12


def test_every_refusal_is_the_routes_answer(parsed) -> None:
    _, client = _app()
    assert client.post("/v1/rate", json=BODIES[0][1]).status_code == 200  # key proved
    parsed.clear()
    bad = [({"dnis": "+12125551234"}, 422), ({"trunk_id": "nope", "dnis": "911"}, 404),
           ({"trunk_id": "tg", "dnis": "+1", "colour": "red"}, 422)]  # fmt: skip
    for body, status in bad:
        assert client.post("/v1/rate", json=body).status_code == status
    assert client.post("/v1/rate", content=b"{not json").status_code == 422
    assert client.post("/v1/rate", json=BODIES[0][1], headers={"Authorization": "Bearer x"}
                       ).status_code == 401  # fmt: skip
    assert client.get("/v1/rate").status_code == 405
    assert parsed == ["/v1/rate"] * 4  # the routes parsed each body the lane handed on
    # A body in chunks past the lane's size is handed on whole, in its chunks.
    big = json.dumps({**BODIES[0][1], "ani": "1" * 100_000}).encode()
    chunks = [big[i:i + 30_000] for i in range(0, len(big), 30_000)]
    r = client.post("/v1/rate", content=iter(chunks))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "ani"]
    r = client.post("/v1/rate", content=iter([big[:10], big[10:20]]))  # small, chunked
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_a_key_over_its_rate_or_without_the_scope_gets_the_routes_refusal() -> None:
    _, client = _app(rate_per_second=2)
    codes = [client.post("/v1/rate", json=BODIES[0][1]).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and codes[2:] == [429, 429]
    r = client.post("/v1/rate", json=BODIES[0][1])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    _, ops = _app(scopes=frozenset({"ops"}))
    assert [ops.post("/v1/rate", json=BODIES[0][1]).status_code for _ in range(2)] == [403, 403]
