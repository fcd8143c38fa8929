"""Request and response bodies of the HTTP API (pydantic models; the OpenAPI spec comes from them).

Strings that reach the store refuse NUL characters (PostgreSQL cannot store them) and numbers
must be finite, so bad input is a 422 here rather than an error deep in the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_serializer,
)

from ..storage.feedback import MAX_PASSAGE_CHARS
from ..storage.models import METADATA_KEY_LENGTH

MAX_TOP_K_RETRIEVER = 100
MAX_TOP_K_READER = 20
MAX_FILTER_VALUES = 100
MAX_METADATA_ITEMS = 100
MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1000
MAX_METADATA_VALUE_CHARS = 10_000


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _keys_without_nul(schema: dict[str, Any]) -> None:
    """State the key rule in the spec as ``propertyNames`` (a pattern on the key type would
    become ``patternProperties``, which leaves other keys unconstrained)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "object":
            branch.setdefault("propertyNames", {})["pattern"] = NO_NUL


def _not_text_or_bool(value: Any) -> Any:
    """JSON integers, also written as 3.0 (as JSON Schema allows), but never "3" or true."""
    if isinstance(value, (str, bool)):
        raise ValueError("must be an integer")
    return value


NO_NUL = r"^[^\x00]*$"
# Characters Python's str.strip() removes (str.isspace), as a regex class body: a question must
# hold at least one character outside it (see QASystem.validate_question).
PY_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
QUESTION_PATTERN = rf"^[^\x00]*[^\x00{PY_SPACE}][^\x00]*$"
# A client's document id: no control characters, not only spaces.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"

Text = Annotated[StrictStr, Field(pattern=NO_NUL)]
def _count(low: int, high: int) -> Any:
    """An integer in ``[low, high]``; 3.0 counts as 3 (as in JSON Schema), "3" and true do not."""
    return Annotated[int, BeforeValidator(_not_text_or_bool), Field(ge=low, le=high),
                     WithJsonSchema({"type": "integer", "minimum": low, "maximum": high})]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_finite)]
#: A number in [0, 1] (JSON integers 0 and 1 included), with its bounds in the OpenAPI schema.
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1),
                     WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
SafeInt = Annotated[StrictInt, Field(ge=-(2**53 - 1), le=2**53 - 1)]  # exact in every JSON parser
MetadataKey = Annotated[StrictStr, Field(min_length=1, max_length=METADATA_KEY_LENGTH), AfterValidator(_no_nul)]
MetadataScalar = (StrictBool | SafeInt | FiniteFloat
                  | Annotated[Text, Field(max_length=MAX_METADATA_VALUE_CHARS)])
FilterValues = Annotated[list[MetadataScalar], Field(max_length=MAX_FILTER_VALUES)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------- ask

class AskRequest(_Model):
    question: Text = Field(description="The question; not blank, at most max_question_chars "
                                       "characters (1000 by default).")
    top_k_retriever: _count(1, MAX_TOP_K_RETRIEVER) | None = Field(None,  # type: ignore[valid-type]
                                        description="Passages to retrieve (default: server setting).")
    top_k_reader: _count(1, MAX_TOP_K_READER) | None = Field(None,  # type: ignore[valid-type]
                                     description="Answers to return (default: server setting).")
    filters: dict[MetadataKey, MetadataScalar | FilterValues] | None = Field(
        None, max_length=MAX_METADATA_ITEMS,
        description="Metadata filters: every key must match; a list value means any of. The keys "
                    "`document_id` and `source` match those fields.",
        json_schema_extra=_keys_without_nul,
    )
    lexical_weight: Fraction | None = Field(
        None, description="Hybrid retrieval: passages rank by (1 - w) x cosine + w x full-text rank / best "
                          "rank; 0: dense retrieval alone (default: server setting, see /readyz).")

    def filter_mapping(self) -> Mapping[str, Any] | None:
        return None if self.filters is None else dict(self.filters)


class AnswerOut(BaseModel):
    text: str
    score: float | None = Field(description="The reader's start + end logit.")
    passage_score: float | None = Field(
        None, description="Retrieval score of the passage the answer comes from: its cosine, or with hybrid "
                          "retrieval (lexical_weight > 0, see /readyz, models.embedder) the fused score, "
                          "0 to 1 like a cosine. Answers come best first, "
                          "by score + retrieval_weight x passage_score (retrieval_weight: see /readyz, models.reader).")
    confidence: float | None = Field(
        None, description="The probability that the answer is right, fitted on development questions from the "
                          "reader's margin and the retrieval scores (docs/reader.md); has_answer is true when the "
                          "first answer's confidence reaches the reader's threshold. Null without a fitted model.")
    source: str
    document_id: str
    title: str | None
    start: int = Field(description="Character offset of the answer in the document text.")
    end: int
    context: str


class AskResponse(BaseModel):
    question: str
    has_answer: bool
    no_answer_score: float | None
    answers: list[AnswerOut]
    timings: dict[str, float]


# --------------------------------------------------------------------------------- documents

class DocumentIn(_Model):
    text: Annotated[Text, Field(min_length=1)]
    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)] | None = Field(
        None, description="Your id for the document: its source becomes `api:<id>`, and posting the "
                          "same id again replaces it. Without an id the source is derived from the text.")
    title: Annotated[Text, Field(max_length=MAX_TITLE_CHARS)] | None = None
    metadata: dict[MetadataKey, MetadataScalar] | None = Field(
        None, max_length=MAX_METADATA_ITEMS, json_schema_extra=_keys_without_nul)


class DocumentsRequest(_Model):
    documents: list[DocumentIn] = Field(min_length=1)


class IngestFailureOut(BaseModel):
    source: str
    reason: str


class DocumentRef(BaseModel):
    source: str
    id: str


class IngestResponse(BaseModel):
    added: int = Field(description="Documents whose source was new.")
    updated: int = Field(description="Documents that replaced their source's stored text, or changed only its "
                                     "title or metadata (then its passages are kept as they are).")
    unchanged: int = Field(description="Documents already stored with the same text, title and metadata (and "
                                       "repeats within the request).")
    skipped: int = Field(description="Deprecated: the same as `unchanged`.", deprecated=True)
    failed: list[IngestFailureOut]
    documents: list[DocumentRef] = Field(
        description="Source and id of every document of the request that was parsed.")


class DocumentOut(BaseModel):
    id: str
    source: str
    title: str | None
    text: str
    content_hash: str
    metadata: dict[str, Any]
    chunk_count: int
    created_at: str
    updated_at: str


class DeleteResponse(BaseModel):
    deleted: int


class StatsResponse(BaseModel):
    documents: int
    chunks: int
    vectors: int
    generation: int
    embedding_model: str
    dimension: int
    index_bytes: int
    segments: int = 0
    tombstones: int = 0


# ------------------------------------------------------------------------------ feedback

MAX_FEEDBACK_LIST = 1000
DOCUMENT_ID_PATTERN = r"^[0-9a-f]{32}$"
Offset = _count(0, 2**31 - 1)


class FeedbackRequest(_Model):
    question: Text = Field(description="The question asked; the same rules as /v1/ask's.")
    document_id: Annotated[StrictStr, Field(pattern=DOCUMENT_ID_PATTERN)] = Field(
        description="The document the feedback is about (an answer's document_id).")
    kind: Literal["right", "wrong", "here"] = Field(
        description="right / wrong: the answer at [start, end) is right or wrong; here: the answer to the "
                    "question is at [start, end) (text the person selected).")
    start: Offset = Field(  # type: ignore[valid-type]
        description="Character offset of the span in the document text.")
    end: Offset = Field(  # type: ignore[valid-type]
        description="Character offset just past the span; more than start.")
    passage_start: Offset | None = Field(  # type: ignore[valid-type]
        None, description="The passage shown, [passage_start, passage_end), holding the span (default: the "
                          f"store's passages the span lies in); at most {MAX_PASSAGE_CHARS} characters.")
    passage_end: Offset | None = None  # type: ignore[valid-type]
    text: Annotated[Text, Field(max_length=MAX_PASSAGE_CHARS)] | None = Field(
        None, description="The span's text as the person saw it: a 409 if the document has other text there now.")


class FeedbackOut(BaseModel):
    id: int
    created_at: str
    kind: str
    question: str
    document_id: str
    source: str = Field(description="The document's source when the feedback was given.")
    start: int
    end: int
    text: str = Field(description="The span's text when the feedback was given.")
    passage_start: int
    passage_end: int
    passage_text: str = Field(description="The passage as it was when the feedback was given.")
    stale: bool = Field(description="The document is no longer stored as it was: changed (a new document id) "
                                    "or deleted. The feedback is kept as it was given.")
    current_document_id: str | None = Field(
        description="When stale: the document stored under the same source now, if any.")


class FeedbackListResponse(BaseModel):
    feedback: list[FeedbackOut] = Field(description="Newest first.")
    limit: int
    offset: int


# ------------------------------------------------------------------------------ operations

class HealthResponse(BaseModel):
    status: str


class EmbedderOut(BaseModel):
    model: str = Field(description="Model name or folder.")
    precision: str | None = Field(None, description="How it computes on this machine: fp32, bf16 or int8.")
    runtime: str | None = Field(
        None, description="What computes it: library and version, the weights' dtype, the attention implementation.")
    lexical_weight: float | None = Field(
        None, description="Hybrid retrieval: passage_score = (1 - lexical_weight) x cosine + lexical_weight x "
                          "full-text rank / best rank; 0: dense retrieval alone.")


class ReaderOut(BaseModel):
    model: str = Field(description="Model name or folder.")
    precision: str | None = Field(None, description="How it computes on this machine: fp32, bf16 or int8.")
    runtime: str | None = Field(
        None, description="What computes it: library and version, the weights' dtype, the attention implementation.")
    no_answer_threshold: float | None = Field(None, description="The margin above which it answers.")
    long_passage_no_answer_threshold: float | None = Field(
        None, description="The margin above which it answers when the best answer's passage was read in several "
                          "windows (null: no_answer_threshold serves every passage).")
    max_seq_length: int | None = Field(None, description="Window length in tokens.")
    doc_stride: int | None = Field(None, description="Tokens shared by consecutive windows.")
    retrieval_weight: float | None = Field(
        None, description="Answers rank by score + retrieval_weight x passage_score.")


class RerankerOut(BaseModel):
    model: str = Field(description="The cross-encoder's folder.")
    precision: str | None = Field(None, description="How it computes on this machine: fp32 or bf16.")
    runtime: str | None = Field(None, description="What computes it: library and version.")
    rerank_top_n: int | None = Field(None, description="How many of the retrieved passages it re-scores.")
    retrieval_weight: float | None = Field(
        None, description="Re-scored passages order by rerank_score + retrieval_weight x passage_score.")


class LoadedModelsOut(BaseModel):
    """The loaded models; a model still loading is left out (``LoadedModels.as_dict``)."""

    embedder: EmbedderOut | None = Field(None, description="The embedding model (retrieval).")
    reader: ReaderOut | None = Field(None, description="The extractive reader.")
    reranker: RerankerOut | None = Field(
        None, description="The re-ranking cross-encoder, when one is set (QA_SYSTEM_RERANKER).")

    # no return annotation on purpose: pydantic then keeps this model's own schema in the spec
    @model_serializer(mode="wrap")
    def _leave_out_unloaded(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        return {role: value for role, value in handler(self).items() if value is not None}


class ReadyResponse(BaseModel):
    ready: bool
    reasons: list[str]
    models: LoadedModelsOut = Field(
        default_factory=LoadedModelsOut, description="The loaded models (embedder, reader); empty while loading.")


class ErrorDetail(BaseModel):
    loc: str
    msg: str
    type: str


class ErrorBody(BaseModel):
    type: str = Field(description="The error class, e.g. QuestionError, NotFound, Unauthorized.")
    message: str
    details: list[ErrorDetail] | None = Field(None, description="Validation errors, field by field.")


class ErrorResponse(BaseModel):
    error: ErrorBody
