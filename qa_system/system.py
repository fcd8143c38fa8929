"""`QASystem`: the Python API over one store (open, ingest, ask, delete, check).

The pipeline for a question reads as its steps: validate -> embed -> search the store
(metadata filters applied inside the vector search) -> read all passages together -> answers.

Models load when first needed: opening a store reads the embedding model's name and dimension
the store records, so `stats`, `check`, `delete` and `get_document` never load a model; the
embedder loads on the first ingest, question or repair that re-embeds (or `load_embedder()`),
the reader on the first question (or `load_reader()`). Neither prints a loading progress bar.

Thread-safety contract: one open `QASystem` may serve `ask`/`ask_many`/`retrieve`/`get_document`
from many threads at once (the models run read-only, their tokenizers behind locks, and the
ingest's chunker has a tokenizer of its own; the store hands every search one complete index
generation). Writes (`ingest*`, `delete`, `repair`, `reindex`) may run in another thread
meanwhile: they are serialised among themselves, and a question sees the index as it was before
or after a write, never half of it. Another process writing to the same store is picked up
within `refresh_interval_s` seconds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .confidence import ConfidenceModel, answer_features
from .config import Settings, load_settings
from .embedding import Embedder, SentenceTransformerEmbedder, encode_queries, tokenizer_copy
from .errors import QuestionError
from .ingestion import Chunker, Ingestor, IngestReport
from .reader.model_config import load_confidence_model
from .types import AskResult, Document, LoadedModel, LoadedModels, MetadataValue, Passage

if TYPE_CHECKING:
    from .retrieval import Retriever

Filters = Mapping[str, "MetadataValue | Sequence[MetadataValue]"]


def _is_loaded(embedder: Embedder | None) -> bool:
    """Whether ``embedder`` can report its dimension without loading (any embedder without
    ``is_loaded`` is taken as ready)."""
    return embedder is not None and bool(getattr(embedder, "is_loaded", True))


class _OnFirstEncode:
    """The store's model and dimension as an `Embedder` that loads the real one only to encode
    (a repair that re-embeds nothing then loads no model)."""

    def __init__(self, system: QASystem, store: Any) -> None:
        self._system = system
        self.model_name: str = store.embedding_model
        self.dimension: int = store.dimension

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Any:
        return self._system.embedder.encode(texts, batch_size=batch_size, progress=progress)


class QASystem:
    """Cheap to construct; `open()` opens the store (a new store loads the embedder, to record its
    dimension); the embedder loads on first need (or with `load_embedder()`), the reader on the
    first question (or with `load_reader()`)."""

    def __init__(
        self, settings: Settings | None = None, *, embedder: Embedder | None = None, reader: Any = None,
        chunker: Chunker | None = None, refresh_interval_s: float = 2.0,
        retriever: Callable[[Any, float], Retriever] | None = None,
    ) -> None:
        """``retriever``: builds the retriever from (the store, the lexical weight) -- e.g. one
        that re-ranks what ``qa_system.retrieval.StoreRetriever`` finds; default StoreRetriever."""
        self.settings = settings if settings is not None else load_settings()
        self._make_retriever = retriever
        self._embedder = embedder
        self._embedder_checked = False  # compared with the store's recorded model and dimension
        self._reader = reader
        self._chunker = chunker
        self._store: Any = None
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._refresh_interval_s = refresh_interval_s
        self._last_refresh = 0.0
        self._confidence_models: dict[str, ConfidenceModel | None] = {}  # reader folder -> its fit
        self._reranker: Any = None  # qa_system.retrieval.rerank.CrossEncoder when settings.reranker is set

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, store_dir: str | Path | None = None, **overrides: Any) -> QASystem:
        """Open (or create) the store in ``store_dir`` with settings from the environment and
        ``overrides`` (any `Settings` field, e.g. ``db_url=...``, ``reader_model=...``)."""
        settings = load_settings(store_dir=Path(store_dir) if store_dir is not None else None, **overrides)
        return cls(settings).load(verify=True)

    def load(self, *, verify: bool = True) -> QASystem:
        """Open the store (creating it if there is none). Loads no model unless the store is new
        (its embedding dimension comes from the model then); an embedder given to the constructor
        is compared with the store now."""
        from .storage import Store

        with self._lock:
            if self.settings.reranker is not None and self._reranker is None:
                self._reranker = self._new_reranker()  # a missing or foreign folder is refused now
            if self._store is None:
                given = self._embedder
                self._store = Store.open(
                    self.settings.store_dir,
                    embedding_model=given.model_name if given is not None else self.settings.embedding_model,
                    dimension=given.dimension if _is_loaded(given) else lambda: self.load_embedder().dimension,
                    db_url=self.settings.db_url, verify=verify, nprobe=self.settings.search_nprobe,
                    auto_compact=self.settings.auto_compact, vector_backend=self.settings.vector_backend,
                    ef_search=self.settings.search_ef,
                )
                # compared by Store.open when it was loaded (or made the new store's dimension)
                self._embedder_checked = _is_loaded(self._embedder)
        return self

    def _new_reranker(self) -> Any:
        """The cross-encoder of ``settings.reranker``, its folder checked (ConfigError) but not loaded."""
        from .retrieval.rerank import CrossEncoder

        precision = self.settings.embedding_precision
        reranker = CrossEncoder(Path(str(self.settings.reranker)), device=self.settings.device,
                                precision=precision if precision in ("fp32", "bf16") else "auto")
        reranker.check()
        return reranker

    def load_reranker(self) -> Any:
        """The re-ranking cross-encoder (``settings.reranker``), loaded now if it is not yet;
        None when re-ranking is off."""
        with self._lock:
            if self.settings.reranker is None:
                return None
            if self._reranker is None:
                self._reranker = self._new_reranker()
            return self._reranker.load()

    def load_embedder(self) -> Embedder:
        """The embedder, loaded now if it is not yet (``settings.embedding_model``), and checked
        against the model the store records (IndexMismatchError if it differs)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder(
                    self.settings.embedding_model, device=self.settings.device,
                    precision=self.settings.embedding_precision, query_prompt=self.settings.query_prompt,
                    passage_prompt=self.settings.passage_prompt,
                )
            if not _is_loaded(self._embedder):
                self._embedder.load()  # type: ignore[attr-defined]
            if not self._embedder_checked and self._store is not None:
                self._check_embedder(self._embedder)
                self._embedder_checked = True
            return self._embedder

    def _check_embedder(self, embedder: Embedder) -> None:
        from .storage.opening import mismatch_error

        store = self._store
        if (embedder.model_name, embedder.dimension) != (store.embedding_model, store.dimension):
            raise mismatch_error(store.directory, (store.embedding_model, store.dimension),
                                 embedder.model_name, embedder.dimension)

    def load_reader(self) -> Any:
        from .reader import ExtractiveReader

        with self._lock:
            if self._reader is None:
                self._reader = ExtractiveReader(settings=self.settings)
            if hasattr(self._reader, "load"):
                self._reader.load()
            return self._reader

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> QASystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Any:
        if self._store is None:
            self.load()
        return self._store

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded (on first use) and matching the store."""
        embedder = self._embedder
        if embedder is not None and self._embedder_checked:
            return embedder
        self.load()
        return self.load_embedder()

    # -- writes ------------------------------------------------------------------------------
    def _ingestor(self) -> Ingestor:
        from .chunking import make_chunker

        embedder = self.embedder
        if self._chunker is None:
            max_tokens = min(self.settings.chunk_tokens, embedder.max_tokens)
            overlap = min(self.settings.chunk_overlap_tokens, max_tokens // 2)
            # its own tokenizer: chunking in this thread must not change the one questions embed with
            self._chunker = make_chunker(tokenizer_copy(embedder.tokenizer), max_tokens, overlap)
        return Ingestor(self.store, embedder, self._chunker, self.settings)

    def ingest(self, paths: str | Path | Sequence[str | Path], *, progress: bool = False,
               csv_text_column: str = "text", csv_title_column: str | None = None) -> IngestReport:
        """Ingest files and folders; bad files are reported in the report and skipped."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        with self._write_lock:
            return self._ingestor().ingest_paths(
                paths, progress=progress, csv_text_column=csv_text_column, csv_title_column=csv_title_column
            )

    def ingest_on_ray(self, paths: str | Path | Sequence[str | Path], *, address: str, workers: int | None = None,
                      progress: bool = False, csv_text_column: str = "text",
                      csv_title_column: str | None = None) -> IngestReport:
        """Ingest files and folders with Ray workers parsing, chunking and embedding
        (``qa_system.ray_ingest``; ``address``: auto, local or a cluster's); this process writes."""
        from .ray_ingest import import_ray, ray_ingest

        import_ray()  # before a model loads: say how to install the extra
        if isinstance(paths, (str, Path)):
            paths = [paths]
        with self._write_lock:
            self.load()
            return ray_ingest(self.store, self.settings, paths, address=address, workers=workers,
                              progress=progress, csv_text_column=csv_text_column,
                              csv_title_column=csv_title_column)

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        with self._write_lock:
            return self._ingestor().ingest_documents(documents)

    def delete(self, *, document_ids: Sequence[str] = (), sources: Sequence[str] = ()) -> int:
        """Delete documents by id and by source. A source that names a JSON lines / JSON / CSV
        file deletes every record document of that file. Nothing is deleted when any id or
        source is unknown (DocumentNotFoundError names them)."""
        with self._write_lock:
            exact = self.store.source_states(list(sources))
            ids = list(document_ids)
            plain = []
            for source in sources:
                records = [] if source in exact else self.store.find_documents({"source_path": source})
                if records:
                    ids.extend(records)
                else:
                    plain.append(source)
            return int(self.store.delete(document_ids=ids, sources=plain))

    def check(self) -> Any:
        return self.store.check()

    def quick_check(self) -> Any:
        """Counts only, no file read (`Store.quick_check`): what `/readyz` runs."""
        return self.store.quick_check()

    def repair(self) -> Any:
        """Fix the store (`Store.repair`); the embedder loads only if chunks need new vectors."""
        with self._write_lock:
            store = self.store
            embedder = self._embedder if self._embedder_checked else _OnFirstEncode(self, store)
            return store.repair(embedder)

    def reindex(self, model: str | Embedder, *, batch_size: int | None = None, progress: Any = None) -> Any:
        """Re-embed every chunk with ``model`` (an embedding model name or folder, or an
        `Embedder`) and make it the store's model (`Store.reindex`: resumable, swapped in
        atomically). The store may be of any model: if it is not open yet, it is opened with the
        one it records. Questions go on with the old model meanwhile; afterwards this QASystem
        embeds (and chunks) with the new one. ``progress``: called with a `ReindexProgress`."""
        from dataclasses import replace

        from .storage.reindex import DEFAULT_BATCH_SIZE, open_recorded

        with self._write_lock:
            with self._lock:
                if self._store is None:
                    self._store = open_recorded(
                        self.settings.store_dir, db_url=self.settings.db_url, nprobe=self.settings.search_nprobe,
                        auto_compact=self.settings.auto_compact, vector_backend=self.settings.vector_backend,
                        ef_search=self.settings.search_ef)
                store = self._store
            if isinstance(model, str):
                model = SentenceTransformerEmbedder(model, device=self.settings.device,
                                                    precision=self.settings.embedding_precision,
                                                    query_prompt=self.settings.query_prompt,
                                                    passage_prompt=self.settings.passage_prompt)
            if not _is_loaded(model):
                model.load()  # type: ignore[attr-defined]
            result = store.reindex(model, batch_size=batch_size or DEFAULT_BATCH_SIZE,
                                   encode_batch_size=self.settings.embed_batch_size, progress=progress)
            with self._lock:
                self._embedder, self._embedder_checked, self._chunker = model, True, None
                self.settings = replace(self.settings, embedding_model=model.model_name)
        return result

    def stats(self) -> Any:
        return self.store.stats()

    def compact(self, *, force: bool = False) -> Any:
        """Merge index segments now (`Store.compact`); ``force``: all into one."""
        return self.store.compact(force=force)

    def describe_models(self) -> LoadedModels:
        """The embedding model, the reader and the re-ranker (when one is set) as loaded, each
        with the precision it computes in (``auto`` resolved for this machine), the reader's window
        and no-answer threshold, the retriever's lexical weight (with the embedder) and what the
        re-ranker re-scores."""
        embedder = self._embedder
        reader = self._reader
        reader_info = None
        if reader is not None and getattr(reader, "is_loaded", True):
            params = getattr(reader, "params", None)  # a custom reader may have none
            window = {} if params is None else {"no_answer_threshold": params.no_answer_threshold,
                                                "long_passage_no_answer_threshold":
                                                    params.long_passage_no_answer_threshold,
                                                "max_seq_length": params.max_seq_length,
                                                "doc_stride": params.doc_stride,
                                                "retrieval_weight": params.retrieval_weight}
            reader_info = LoadedModel(str(getattr(reader, "model_name", type(reader).__name__)),
                                      getattr(reader, "precision", None), getattr(reader, "runtime", None),
                                      **window)
        reranker = self._reranker
        return LoadedModels(
            embedder=(LoadedModel(embedder.model_name, getattr(embedder, "precision", None),
                                  getattr(embedder, "runtime", None), lexical_weight=self.settings.lexical_weight)
                      if embedder is not None else None),
            reader=reader_info,
            reranker=(LoadedModel(str(reranker.folder), reranker.loaded_precision, reranker.runtime,
                                  rerank_top_n=self.settings.rerank_top_n,
                                  retrieval_weight=reranker.retrieval_weight)
                      if reranker is not None and reranker.loaded else None),
        )

    def get_document(self, document_id: str) -> Any:
        return self.store.get_document(document_id)

    def find_documents(self, filters: Filters) -> list[str]:
        """Ids of the documents matching ``filters`` (the rules of a question's filters)."""
        return self.store.find_documents(filters)

    def add_feedback(self, item: Any) -> Any:
        """Store feedback on a span of a document (``qa_system.storage.feedback.FeedbackInput``)."""
        return self.store.add_feedback(item)

    def list_feedback(self, *, limit: int = 100, offset: int = 0) -> Any:
        return self.store.list_feedback(limit=limit, offset=offset)

    def all_feedback(self, page: int = 1000) -> Iterator[Any]:
        """Every feedback record, newest first, read ``page`` records at a time."""
        offset = 0
        while True:
            records = self.store.list_feedback(limit=page, offset=offset)
            yield from records
            if len(records) < page:
                return
            offset += page

    def metadata_choices(self, filters: Filters | None = None) -> list[tuple[str, MetadataValue]]:
        """Distinct ``(key, value)`` metadata pairs of the documents matching ``filters``."""
        return self.store.metadata_choices(filters)

    # -- reads -------------------------------------------------------------------------------
    def validate_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question)} characters long; the limit is "
                f"{self.settings.max_question_chars}"
            )
        return question.strip()

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= self._refresh_interval_s:
            self._last_refresh = now
            self.store.refresh()

    def retrieve_many(self, questions: Sequence[str], *, top_k: int | None = None,
                      filters: Filters | None = None, lexical_weight: float | None = None,
                      ) -> list[list[Passage]]:
        """The top-``k`` passages of each question, best first (hybrid unless the lexical weight,
        ``settings.lexical_weight`` unless given, is 0; see ``qa_system.retrieval.fusion``)."""
        k = self.settings.top_k_retriever if top_k is None else top_k
        if k <= 0:
            raise QuestionError(f"top_k must be positive, got {k}")
        cleaned = [self.validate_question(q) for q in questions]
        self._maybe_refresh()
        vectors = encode_queries(self.embedder, cleaned, batch_size=self.settings.embed_batch_size)
        weight = self.settings.lexical_weight if lexical_weight is None else lexical_weight
        retriever = self.retriever(weight)
        return retriever.retrieve(vectors, k, query_texts=cleaned, filters=filters)

    def retriever(self, lexical_weight: float | None = None) -> Retriever:
        """The retriever over this system's store (``settings.lexical_weight`` unless given),
        re-ranked by ``settings.reranker`` when one is set."""
        from .retrieval import StoreRetriever

        weight = self.settings.lexical_weight if lexical_weight is None else lexical_weight
        if self._make_retriever is not None:
            return self._make_retriever(self.store, weight)
        retriever = StoreRetriever(self.store, lexical_weight=weight)
        reranker = self.load_reranker()
        if reranker is None:
            return retriever
        from .retrieval.rerank import RerankingRetriever

        return RerankingRetriever(retriever, reranker, top_n=self.settings.rerank_top_n)

    def retrieve(self, question: str, *, top_k: int | None = None, filters: Filters | None = None,
                 lexical_weight: float | None = None) -> list[Passage]:
        return self.retrieve_many([question], top_k=top_k, filters=filters, lexical_weight=lexical_weight)[0]

    def ask_many(self, questions: Sequence[str], *, top_k_retriever: int | None = None,
                 top_k_reader: int | None = None, filters: Filters | None = None,
                 lexical_weight: float | None = None) -> list[AskResult]:
        """Answer several questions with batched embedding and reading."""
        top_n = self.settings.top_k_reader if top_k_reader is None else top_k_reader
        if top_n <= 0:
            raise QuestionError(f"top_k_reader must be positive, got {top_n}")
        t0 = time.perf_counter()
        passages = self.retrieve_many(questions, top_k=top_k_retriever, filters=filters,
                                      lexical_weight=lexical_weight)
        t1 = time.perf_counter()
        reader = self.load_reader()
        cleaned = [q.strip() for q in questions]
        results = reader.read_batch(cleaned, passages, top_n=top_n)
        t2 = time.perf_counter()
        timings = {"retrieve_s": t1 - t0, "read_s": t2 - t1, "total_s": t2 - t0}
        confidence = self.confidence_model()
        # a no-answer threshold set for this system asks for the reader's margin rule to decide
        decide = confidence is not None and self.settings.no_answer_threshold is None
        return [self._ask_result(q, tuple(p), r, timings, confidence, decide)
                for q, p, r in zip(cleaned, passages, results, strict=True)]

    def confidence_model(self) -> ConfidenceModel | None:
        """The answer-confidence model fitted for the loaded reader and this system's embedder,
        or None (none fitted, another embedder, or ``settings.answer_confidence`` off)."""
        if not self.settings.answer_confidence:
            return None
        reader = self.load_reader()
        name = getattr(reader, "model_name", None)
        if name is None:
            return None
        if name not in self._confidence_models:
            self._confidence_models[name] = load_confidence_model(name)
        model = self._confidence_models[name]
        if model is None or model.embedding_model != self.settings.embedding_model:
            return None
        level = self.settings.answer_confidence_threshold
        return model if level is None else dataclasses.replace(model, threshold=float(level))

    @staticmethod
    def _ask_result(question: str, passages: tuple[Passage, ...], result: Any, timings: Mapping[str, float],
                    confidence: ConfidenceModel | None, decide: bool) -> AskResult:
        long_passage = bool(getattr(result, "long_passage", False))
        answers = tuple(result.answers)
        has_answer = result.has_answer
        if confidence is not None and answers:
            answers = tuple(
                dataclasses.replace(a, confidence=confidence.probability(
                    answer_features(question, a, passages, result.no_answer_score, long_passage)))
                for a in answers)
            if decide:
                has_answer = answers[0].confidence >= confidence.threshold
        return AskResult(question=question, answers=answers, passages=passages,
                         no_answer_score=result.no_answer_score, has_answer=has_answer, timings=timings,
                         no_answer_threshold=getattr(result, "no_answer_threshold", None),
                         long_passage=long_passage, margin_rule_answers=result.has_answer,
                         confidence_threshold=confidence.threshold if confidence is not None and decide else None)

    def ask(self, question: str, *, top_k_retriever: int | None = None, top_k_reader: int | None = None,
            filters: Filters | None = None, lexical_weight: float | None = None) -> AskResult:
        return self.ask_many([question], top_k_retriever=top_k_retriever, top_k_reader=top_k_reader,
                             filters=filters, lexical_weight=lexical_weight)[0]
