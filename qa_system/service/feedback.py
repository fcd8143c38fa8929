"""``/v1/feedback``: what people say about answers (the search page's buttons post here too).

``POST`` needs a read key (whoever may ask may say whether the answer was right; a scoped key
only on documents in its scope, and its scope is stored with the feedback); ``GET``, the listing
of everyone's feedback with the questions they asked, a write key. Feedback names a span
of a stored document by character offsets and is checked against it (404 for an unknown
document, 400 for offsets outside it, 409 when the text sent is no longer there).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from ..storage.feedback import FeedbackInput, FeedbackRecord
from .api import READ_ERRORS, error_responses, state_of
from .auth import Caller, require_read, require_write
from .schemas import MAX_FEEDBACK_LIST, FeedbackListResponse, FeedbackOut, FeedbackRequest
from .tenancy import check_in_scope, scope_json

router = APIRouter(prefix="/v1", tags=["feedback"])


def feedback_out(record: FeedbackRecord) -> FeedbackOut:
    return FeedbackOut(id=record.id, created_at=record.created_at.isoformat(), kind=record.kind,
                       question=record.question, document_id=record.document_id, source=record.source,
                       start=record.start, end=record.end, text=record.text, passage_start=record.passage_start,
                       passage_end=record.passage_end, passage_text=record.passage_text, stale=record.stale,
                       current_document_id=record.current_document_id)


@router.post("/feedback", response_model=FeedbackOut, status_code=201,
             responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
             summary="Say whether an answer was right, or where the answer is")
async def add_feedback(body: FeedbackRequest, request: Request,
                       caller: Caller = Depends(require_read)) -> FeedbackOut:
    state = state_of(request)
    system = state.system()
    question = system.validate_question(body.question)
    await check_in_scope(state, system, caller, body.document_id)
    item = FeedbackInput(question=question, document_id=body.document_id, kind=body.kind, start=body.start,
                         end=body.end, passage_start=body.passage_start, passage_end=body.passage_end,
                         text=body.text, scope=scope_json(caller))
    record = await state.run_read(lambda: system.add_feedback(item))
    return feedback_out(record)


@router.get("/feedback", response_model=FeedbackListResponse, responses=READ_ERRORS,
            dependencies=[Depends(require_write)], summary="The feedback given, newest first")
async def list_feedback(request: Request, limit: int = Query(100, ge=1, le=MAX_FEEDBACK_LIST),
                        offset: int = Query(0, ge=0, le=2**31 - 1)) -> FeedbackListResponse:
    state = state_of(request)
    system = state.system()
    records = await state.run_read(lambda: system.list_feedback(limit=limit, offset=offset))
    return FeedbackListResponse(feedback=[feedback_out(r) for r in records], limit=limit, offset=offset)
