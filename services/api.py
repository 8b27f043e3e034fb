"""The HTTP API app: health, readiness, Prometheus metrics and the /v1 routes."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rater.routes import router as rater_router
from services import metrics


def create_app(node) -> FastAPI:
    app = FastAPI(title="sipcc", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.node = node
    app.include_router(rater_router)

    @app.middleware("http")
    async def _red(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.http_requests_total.labels(route=name, status=str(response.status_code)).inc()
        metrics.http_request_seconds.labels(route=name).observe(time.perf_counter() - t0)
        return response

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        checks = await node.check_dependencies()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
