"""The HTTP API app: health, readiness, Prometheus metrics and the /v1 routes."""

from __future__ import annotations

import time

import asyncpg
from fastapi import Depends, FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from e911_router.routes import router as e911_router
from rater.routes import RatingLane
from rater.routes import router as rater_router
from services import metrics
from services.auth import AUTH_RESPONSES, ApiAuth, KeyStore, PgKeys, require_scope
from services.billing.routes import router as billing_router
from services.cdr_routes import router as cdr_router
from services.provision_routes import router as provisioning_router
from services.referrals.routes import router as referrals_router


class RedMiddleware:
    """Rate, errors, duration of every request. A plain ASGI middleware: Starlette's
    `@app.middleware("http")` costs ~300 µs of CPU per request here (a task group and
    memory streams each time), more than the rater's own answer (bench/rater_bench.py)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            metrics.http_requests_total.labels(route=name, status=str(status)).inc()
            metrics.http_request_seconds.labels(route=name).observe(time.perf_counter() - t0)


def _scope(name: str) -> dict:
    """include_router arguments: every route of the router needs an API key with `name`."""
    return {"dependencies": [Depends(require_scope(name))], "responses": AUTH_RESPONSES}


async def _bad_data(_request, exc: asyncpg.DataError) -> JSONResponse:
    """Input Postgres cannot store (a NUL character, a number out of range) that a route's
    own checks let through: the client's error (422, saying what), not the server's."""
    return JSONResponse({"detail": f"invalid value: {exc}"}, status_code=422)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, with the 422 body as the routes really send it: pydantic's list of
    field errors, or a message (a string or an object) from a route's own checks."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        err = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if err is not None:
            listed = err["properties"]["detail"]
            err["properties"]["detail"] = {"title": "Detail", "anyOf": [
                listed, {"type": "string"}, {"type": "object"}]}  # fmt: skip
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(node, keys: KeyStore | None = None) -> FastAPI:
    """`keys`: where API keys are looked up (default: the node's Postgres)."""
    from services.config import Settings

    # FastAPI's OpenTelemetry hooks look up the providers (and os.environ) on every
    # request; sipcc exports Prometheus metrics instead (services/metrics.py).
    off = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="sipcc", version="0.1.0", docs_url="/docs", redoc_url=None, telemetry=off)
    app.state.node = node
    s = getattr(node, "settings", None) or Settings()
    app.state.api_auth = ApiAuth(
        keys or PgKeys(lambda: node.pool),
        cache_seconds=s.api_key_cache_seconds,
        failures_per_minute=s.api_auth_failures_per_minute,
    )
    app.include_router(rater_router, **_scope("rating"))
    app.add_middleware(RatingLane, scope="rating")  # inside RedMiddleware: counted the same
    app.include_router(cdr_router, **_scope("billing"))
    app.include_router(e911_router, **_scope("e911"))
    app.include_router(billing_router, **_scope("billing"))
    app.include_router(referrals_router, **_scope("referrals"))
    app.include_router(provisioning_router, **_scope("provisioning"))
    app.add_middleware(RedMiddleware)
    app.add_exception_handler(asyncpg.DataError, _bad_data)
    app.openapi = lambda: _openapi(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        checks = await node.check_dependencies()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
