"""The versioned API, ``/v1``: ask, documents (ingest, get, delete), stats."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from .auth import Caller, require_read, require_write
from .errors import ApiError, validation_error_from
from .schemas import (
    MAX_ID_CHARS,
    AnswerOut,
    AskRequest,
    AskResponse,
    DeleteResponse,
    DocumentOut,
    DocumentRef,
    DocumentsRequest,
    ErrorResponse,
    IngestFailureOut,
    IngestResponse,
    StatsResponse,
)
from .state import AskJob, ServiceState
from .tenancy import check_in_scope, scoped
from .uploads import Upload, check_upload, check_upload_ids, documents_from_json, parse_uploads

DOCUMENT_ID = re.compile(r"[0-9a-f]{32}")
MAX_FORM_FIELD_BYTES = 64 * 1024


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse} for s in statuses}


ASK_ERRORS = error_responses(400, 401, 403, 413, 422, 503)
READ_ERRORS = error_responses(401, 403, 404, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 409, 413, 415, 422, 503)

router = APIRouter(prefix="/v1")


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.qa
    return state


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def ask_response(result: Any) -> AskResponse:
    return AskResponse(
        question=result.question,
        has_answer=bool(result.has_answer),
        no_answer_score=_finite_or_none(result.no_answer_score),
        answers=[AnswerOut(text=a.text, score=_finite_or_none(a.score),
                           passage_score=_finite_or_none(a.passage_score),
                           confidence=_finite_or_none(a.confidence),
                           source=a.source, document_id=a.document_id, title=a.title, start=a.start, end=a.end,
                           context=a.context) for a in result.answers],
        timings={k: float(v) for k, v in result.timings.items() if math.isfinite(v)},
    )


@router.post("/ask", response_model=AskResponse, responses=ASK_ERRORS, tags=["questions"],
             summary="Answer a question from the store")
async def ask(body: AskRequest, request: Request, caller: Caller = Depends(require_read)) -> AskResponse:
    state = state_of(request)
    system = state.system()
    question = system.validate_question(body.question)  # QuestionError -> 422 before queueing
    filters = scoped(caller, body.filter_mapping())
    result = await state.ask(AskJob(question, body.top_k_retriever, body.top_k_reader, filters,
                                    body.lexical_weight))
    return ask_response(result)


_DOCUMENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DocumentsRequest"}},
            "multipart/form-data": {"schema": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                              "description": "Files of the types `qa-system ingest` reads. A file's documents "
                                             "have the source `upload:<digest>/<name>` (the first 16 hex "
                                             "digits of the SHA-256 of its bytes; `#<record-id>` added for "
                                             "the records of a JSON lines/JSON/CSV file): two different "
                                             "files of one name are two documents, and the same file "
                                             "uploaded again is unchanged."},
                    "id": {"type": "array", "items": {"type": "string", "maxLength": MAX_ID_CHARS},
                           "description": "Optional: one per file, in the order of the files (an empty one "
                                          "for none). A file with an id has the source `api:<id>`, as a "
                                          "JSON document with that id: posting another file with the same "
                                          "id replaces it."},
                    "csv_text_column": {"type": "string", "default": "text"},
                    "csv_title_column": {"type": "string"},
                },
                "required": ["files"],
            }},
        },
    }
}


@router.post("/documents", response_model=IngestResponse, responses=WRITE_ERRORS, tags=["documents"],
             dependencies=[Depends(require_write)], openapi_extra=_DOCUMENTS_BODY,
             summary="Add or replace documents (JSON, or a multipart file upload)")
async def add_documents(request: Request) -> IngestResponse:
    state = state_of(request)
    system = state.system()
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _add_json(request, state, system)
    if content_type == "multipart/form-data":
        return await _add_files(request, state, system)
    raise ApiError(415, "send application/json documents or a multipart/form-data file upload")


async def _add_json(request: Request, state: ServiceState, system: Any) -> IngestResponse:
    raw = await request.body()
    try:
        body = DocumentsRequest.model_validate_json(raw)
    except ValidationError as e:
        raise validation_error_from(e.errors(include_url=False, include_input=False)) from e
    if len(body.documents) > state.service.max_documents:
        raise ApiError(413, f"at most {state.service.max_documents} documents per request")
    documents, repeats = documents_from_json(body.documents)
    report = await state.run_write(lambda: system.ingest_documents(documents))
    refs = [DocumentRef(source=d.source, id=d.id) for d in documents]
    return _ingest_response(state, report, refs, (), repeats=repeats)


async def _add_files(request: Request, state: ServiceState, system: Any) -> IngestResponse:
    service = state.service
    form = await request.form(max_files=service.max_upload_files, max_fields=20 + service.max_upload_files,
                              max_part_size=MAX_FORM_FIELD_BYTES)
    try:
        uploads: list[Upload] = []
        ids: list[str] = []
        options: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                ext, safe = check_upload(value.filename, service.upload_extensions)
                uploads.append(Upload(value.file, ext, safe))
            elif name == "id":
                ids.append(value)
            elif name in ("csv_text_column", "csv_title_column") and value.strip():
                options[name] = value.strip()
        if not uploads:
            raise ApiError(400, "the upload holds no files (send them in the form field `files`)")
        uploads = [replace(u, document_id=i) for u, i in zip(uploads, check_upload_ids(ids, len(uploads)),
                                                             strict=True)]
        max_file_bytes = min(service.max_upload_bytes, state.settings.max_file_bytes)

        def work() -> tuple[Any, Any]:
            parsed = parse_uploads(uploads, max_file_bytes=max_file_bytes, **options)
            if not parsed.documents:
                return None, parsed
            return system.ingest_documents(parsed.documents), parsed

        report, parsed = await state.run_write(work)
    finally:
        await form.close()
    refs = [DocumentRef(source=d.source, id=d.id) for d in parsed.documents]
    return _ingest_response(state, report, refs, parsed.failed)


def _ingest_response(state: ServiceState, report: Any, refs: list[DocumentRef], parse_failures: Any,
                     *, repeats: int = 0) -> IngestResponse:
    """``repeats``: documents of the request dropped as exact repeats of another (unchanged)."""
    failures = list(parse_failures) + (list(report.failed) if report is not None else [])
    added = report.added if report is not None else 0
    updated = report.updated if report is not None else 0
    unchanged = (report.unchanged if report is not None else 0) + repeats
    for outcome, n in (("added", added), ("updated", updated), ("unchanged", unchanged), ("failed", len(failures))):
        if n:
            state.metrics.ingested.labels(outcome).inc(n)
    return IngestResponse(added=added, updated=updated, unchanged=unchanged, skipped=unchanged,
                          failed=[IngestFailureOut(source=f.source, reason=f.reason) for f in failures],
                          documents=refs)


def _document_id(document_id: str) -> str:
    if not DOCUMENT_ID.fullmatch(document_id):
        raise ApiError(404, f"no such document: id {document_id[:64]}", type="DocumentNotFoundError")
    return document_id


@router.get("/documents/{document_id}", response_model=DocumentOut, responses=READ_ERRORS,
            tags=["documents"], summary="One stored document")
async def get_document(document_id: str, request: Request, caller: Caller = Depends(require_read)) -> DocumentOut:
    state = state_of(request)
    system = state.system()
    checked = _document_id(document_id)
    await check_in_scope(state, system, caller, checked)
    doc = await state.run_read(lambda: system.get_document(checked))
    return DocumentOut(id=doc.id, source=doc.source, title=doc.title, text=doc.text,
                       content_hash=doc.content_hash, metadata=dict(doc.metadata),
                       chunk_count=doc.chunk_count, created_at=doc.created_at.isoformat(),
                       updated_at=doc.updated_at.isoformat())


@router.delete("/documents/{document_id}", response_model=DeleteResponse,
               responses=READ_ERRORS, tags=["documents"],
               dependencies=[Depends(require_write)], summary="Delete a document and its vectors")
async def delete_document(document_id: str, request: Request) -> DeleteResponse:
    state = state_of(request)
    system = state.system()
    checked = _document_id(document_id)
    deleted = await state.run_write(lambda: system.delete(document_ids=[checked]))
    return DeleteResponse(deleted=int(deleted))


@router.get("/stats", response_model=StatsResponse, responses=error_responses(401, 403, 503), tags=["store"],
            dependencies=[Depends(require_read)], summary="Store statistics")
async def stats(request: Request) -> StatsResponse:
    state = state_of(request)
    system = state.system()
    s = await state.run_read(system.stats)
    values = asdict(s) if hasattr(s, "__dataclass_fields__") else dict(s)
    return StatsResponse(**{k: values[k] for k in StatsResponse.model_fields})
