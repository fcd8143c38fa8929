"""The FastAPI app: `create_app(settings, system=...)`, and `app_from_env` for uvicorn workers.

Routes: ``/`` and ``/documents/{id}``, the search page for people (page.py), ``/v1/*`` (api.py),
``/healthz`` (the process is alive), ``/readyz`` (models loaded and
the store consistent: 200, else 503 with the reasons), ``/metrics`` (Prometheus text). The
models load in a background thread at start-up, so /healthz answers at once and /readyz turns
200 when the service can answer questions; until then ``/v1`` answers 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match

from .. import __version__
from ..config import Settings, load_settings
from .api import router as api_router
from .errors import install_error_handlers
from .feedback import router as feedback_router
from .limits import BodyLimitMiddleware, Scope
from .metrics import Metrics, MetricsMiddleware
from .page import install_page
from .schemas import QUESTION_PATTERN, DocumentsRequest, HealthResponse, LoadedModelsOut, ReadyResponse
from .settings import ServiceSettings, load_service_settings
from .state import ServiceState

DESCRIPTION = """Retriever-reader question answering over your documents.

Authentication (only when API keys are configured with `QA_SYSTEM_API_KEYS_READ` /
`QA_SYSTEM_API_KEYS_WRITE`): send `Authorization: Bearer <key>` or `X-API-Key: <key>` (a browser
on the search page at `/` sends the cookie its key form set, `qa_system_key`). Read
endpoints (and `POST /v1/feedback`) accept a read or a write key, write endpoints
(`POST`/`DELETE /v1/documents`) and `GET /v1/feedback` only a write key. `/healthz`, `/readyz`
and `/metrics` are always open.

Every error is `{"error": {"type": ..., "message": ...}}`.
"""


def create_app(settings: Settings | None = None, *, system: Any = None,
               service_settings: ServiceSettings | None = None,
               system_factory: Callable[[Settings], Any] | None = None,
               background_load: bool = True) -> FastAPI:
    """Build the app. With ``system`` the app serves that (QASystem-like) object and leaves
    closing it to the caller; otherwise it opens a `QASystem` from ``settings`` (default: the
    environment) at start-up and closes it at shutdown."""
    settings = settings if settings is not None else (getattr(system, "settings", None) or load_settings())
    service = service_settings if service_settings is not None else load_service_settings()
    metrics = Metrics()
    state = ServiceState(settings, service, metrics, system=system, factory=system_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start(background=background_load)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(state.stop)

    app = FastAPI(title="qa_system", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.qa = state
    app.state.service_settings = service
    app.state.metrics = metrics
    metrics.add_store_collector(state.stats_or_none, lambda: state.loaded)
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(feedback_router)
    install_page(app)
    _add_operations(app, state)
    _finish_openapi(app, settings, service)

    def route_of(scope: Scope) -> str | None:
        for route in app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "path", None)
        return None

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=service.max_body_bytes,
                       max_upload_bytes=service.max_upload_bytes, on_reject=metrics.record_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics, route_of=route_of)  # outermost
    return app


def _add_operations(app: FastAPI, state: ServiceState) -> None:
    @app.get("/healthz", response_model=HealthResponse, tags=["operations"], summary="The process is alive")
    async def healthz() -> HealthResponse:
        return HealthResponse(status="ok")

    @app.get("/readyz", response_model=ReadyResponse, tags=["operations"],
             responses={503: {"model": ReadyResponse}}, summary="Models loaded and the store consistent")
    async def readyz() -> JSONResponse:
        readiness = await state.readiness()
        models = LoadedModelsOut.model_validate(state.models().as_dict())
        body = ReadyResponse(ready=readiness.ready, reasons=list(readiness.reasons), models=models)
        return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = await anyio.to_thread.run_sync(state.metrics.render)
        return Response(body, media_type=content_type)


def _finish_openapi(app: FastAPI, settings: Settings, service: ServiceSettings) -> None:
    """Make the spec describe this app's configuration: its question limit (checked by
    QASystem, so a blank or long question gets the QuestionError message), and API keys only
    when keys are configured."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        # POST /v1/documents reads its body itself (JSON or multipart): add its JSON model.
        documents = DocumentsRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(documents.pop("$defs", {}))
        schemas["DocumentsRequest"] = documents
        for operations in spec["paths"].values():  # our 422s are ErrorResponse, not FastAPI's
            for operation in operations.values():
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:
                    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
                    invalid["content"] = {"application/json": {"schema": error_schema}}
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for request in ("AskRequest", "FeedbackRequest"):
            question = spec["components"]["schemas"][request]["properties"]["question"]
            question.update(minLength=1, maxLength=settings.max_question_chars, pattern=QUESTION_PATTERN)
        if not service.auth_enabled:
            spec.get("components", {}).pop("securitySchemes", None)
            for operations in spec["paths"].values():
                for operation in operations.values():
                    operation.pop("security", None)
                    for status in ("401", "403"):
                        operation.get("responses", {}).pop(status, None)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """The uvicorn factory for worker processes: every setting from ``QA_SYSTEM_*`` variables
    (``uvicorn --factory qa_system.service.app:app_from_env``)."""
    return create_app(load_settings(), service_settings=load_service_settings())
