"""The search page for people: ``/`` (a question, metadata filters, answers in their passages),
``/documents/{id}`` (a whole document, the answer highlighted and scrolled into view), and the
API key form (``/key``) when keys are configured.

Server-rendered from Jinja2 templates (autoescape on) with one small script for the feedback
buttons (``static/page.js``); nothing is loaded from another site, and the Content-Security-Policy
header says so. The page asks through the same batcher and limits as ``POST /v1/ask``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from ..errors import QASystemError
from .api import DOCUMENT_ID
from .auth import KEY_COOKIE, Access, Caller, caller_of, grant
from .errors import ApiError, status_for
from .presentation import answer_views, best_passages, filter_fields, parse_filters, split_at
from .settings import ServiceSettings
from .state import AskJob, ServiceState
from .tenancy import check_in_scope, scope_json, scoped

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: How long the metadata values offered as filters are reused before they are read again.
CHOICES_TTL_S = 60.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
router = APIRouter(include_in_schema=False)


def mount_static(app: Any) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status,
                        headers=SECURITY_HEADERS)


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.qa
    return state


def page_caller(request: Request) -> Caller | None:
    """The caller of a page request (its key from the cookie); None: the key form is due."""
    settings: ServiceSettings = request.app.state.service_settings
    key = request.cookies.get(KEY_COOKIE)
    try:
        return caller_of(settings, [key] if key else [], Access.READ)
    except ApiError:
        return None


def _key_form(request: Request, message: str | None = None) -> HTMLResponse:
    return render("key.html", 401, message=message, next=_local_path(str(request.url.path)),
                  auth=True)


def _local_path(path: str) -> str:
    """``path`` when it is a path on this site, else ``/`` (no open redirects)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _error_page(status: int, message: str, *, auth: bool, **context: Any) -> HTMLResponse:
    return render("message.html", status, message=message, auth=auth, **context)


class ChoiceCache:
    """The metadata values offered as filters, per scope (a scoped key is offered only the values
    of its own documents), read at most every ``CHOICES_TTL_S``."""

    def __init__(self) -> None:
        self._cached: dict[str | None, tuple[float, list[tuple[str, Any]]]] = {}

    async def get(self, state: ServiceState, system: Any, caller: Caller) -> list[tuple[str, Any]]:
        now = time.monotonic()
        key = scope_json(caller)
        cached = self._cached.get(key)
        if cached is not None and now - cached[0] < CHOICES_TTL_S:
            return cached[1]
        pairs = await state.run_read(lambda: system.metadata_choices(caller.scope))
        self._cached[key] = (now, pairs)
        return pairs


class PageError(Exception):
    def __init__(self, status: int, message: str, auth: bool) -> None:
        super().__init__(message)
        self.status, self.message, self.auth = status, message, auth


class KeyNeeded(Exception):
    """The request has no valid key in its cookie: the key form answers it."""


def open_page(request: Request) -> tuple[Caller, bool, ServiceState, Any]:
    """What every page needs: the caller (KeyNeeded without a valid key), whether keys are in use,
    the service state and the loaded system (PageError while it loads)."""
    caller = page_caller(request)
    auth = bool(request.app.state.service_settings.auth_enabled)
    if caller is None:
        raise KeyNeeded()
    state = _state(request)
    try:
        return caller, auth, state, state.system()
    except ApiError as e:
        raise PageError(e.status_code, str(e.detail), auth) from e


def install_page(app: Any) -> None:
    app.state.page_choices = ChoiceCache()
    mount_static(app)
    app.include_router(router)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> HTMLResponse:
        return _error_page(exc.status, exc.message, auth=exc.auth)

    @app.exception_handler(KeyNeeded)
    async def _key_needed(request: Request, exc: KeyNeeded) -> HTMLResponse:
        return _key_form(request)


@router.get("/", response_class=HTMLResponse)
async def search_page(request: Request) -> Response:
    caller, auth, state, system = open_page(request)
    question = request.query_params.get("q", "")
    context: dict[str, Any] = {"auth": auth, "question": question, "error": None, "result": None,
                               "answers": [], "passages": [], "seconds": None}
    status = 200
    try:
        filters, tokens = parse_filters(list(request.query_params.multi_items()))
    except ValueError as e:
        filters, tokens = {}, {}
        context["error"], status = str(e), 422
    context["filters"] = filter_fields(await request.app.state.page_choices.get(state, system, caller), tokens)
    if question.strip() and context["error"] is None:
        try:
            cleaned = system.validate_question(question)
            result = await state.ask(AskJob(cleaned, filters=scoped(caller, filters or None)))
        except QASystemError as e:
            status, context["error"] = status_for(e)
        except ApiError as e:
            status, context["error"] = e.status_code, str(e.detail)
        else:
            context.update(result=result, answers=answer_views(result), passages=best_passages(result),
                           seconds=result.timings.get("total_s"))
    return render("search.html", status, **context)


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document_page(request: Request, document_id: str) -> Response:
    caller, auth, state, system = open_page(request)
    if not DOCUMENT_ID.fullmatch(document_id):
        return _error_page(404, "There is no such document.", auth=auth)
    try:
        await check_in_scope(state, system, caller, document_id)
        doc = await state.run_read(lambda: system.get_document(document_id))
    except QASystemError as e:
        status, message = status_for(e)
        return _error_page(status, "There is no such document." if status == 404 else message, auth=auth)
    params = request.query_params
    start, end = _offset(params.get("start")), _offset(params.get("end"))
    highlight = split_at(doc.text, start, end) if start is not None and end is not None else None
    asked_for_span = params.get("start") is not None or params.get("end") is not None
    question = params.get("q", "")
    return render("document.html", auth=auth, doc=doc, highlight=highlight, question=question,
                  missing_span=asked_for_span and highlight is None,
                  back="/?" + urlencode({"q": question}) if question else "/")


def _offset(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 12:
        return None
    return int(raw)


@router.post("/key", response_class=HTMLResponse)
async def submit_key(request: Request) -> Response:
    settings: ServiceSettings = request.app.state.service_settings
    form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
    key = str(form.get("key", "")).strip()
    target = _local_path(str(form.get("next", "/")))
    if grant(settings, key) is None:
        message = "Enter your API key." if not key else "That API key is not valid."
        return render("key.html", 401, message=message, next=target, auth=True)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/key/forget")
async def forget_key() -> Response:
    response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(KEY_COOKIE, path="/")
    return response

