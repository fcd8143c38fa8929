"""ExtractiveReader: finds answer spans in passages with a Hugging Face QA model.

Lifecycle: the constructor only stores settings; ``load()`` reads the tokenizer, the model and
the model folder's ``qa_system_reader.json``; ``read()`` refuses to work before that.

Thread safety: one loaded reader may serve ``read()``/``read_batch()`` from several threads at
once. Tokenisation is serialised by a lock (a fast tokenizer changes its truncation settings on
every call, so concurrent calls can clash); the model runs read-only under
``torch.inference_mode()`` and needs no lock. ``load()`` is idempotent and safe to race.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import ConfigError, InputError, NotLoadedError, QuestionError
from ..hardware import READER_PRECISIONS, describe_torch_runtime, resolve_precision
from ..types import Passage, ReaderResult
from .answers import WindowLogits, decode_question
from .inference import load_pretrained, prepare_model, run_windows
from .model_config import ReaderModelConfig, ReaderParams, load_reader_config, resolve_params
from .stages import settled, split_first_passages
from .windows import Window, check_tokenizer_windows, encode_windows

_NO_MAX_LENGTH = 1_000_000  # tokenizers without a real limit report a huge model_max_length


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Any
    model: Any
    params: ReaderParams
    runtime: str


class ExtractiveReader:
    """Reads passages and returns answer spans, ranked across all passages of a question.

    Window settings (``max_seq_length``, ``doc_stride``, ``max_answer_tokens``) come from, in
    order: the constructor argument, a ``settings`` value changed from its default, the model
    folder's ``qa_system_reader.json``, the settings default. ``no_answer_threshold``: the
    argument, else ``settings.no_answer_threshold``, else the file, else 0.0; the file's
    long-passage threshold (answers from passages read in several windows) applies only when
    neither the argument nor the setting is given. ``retrieval_weight``
    (how much the passages' retrieval scores count in ranking answers across passages): the
    argument, else ``settings.retrieval_weight``. It assumes ``Passage.score`` is on a cosine's
    scale, as the retriever gives (a cosine, or hybrid retrieval's fused score); for passages with
    scores on another scale (or none that mean anything), pass ``retrieval_weight=0`` to rank by
    the reader's score alone.
    ``settings.torch_threads`` (process-wide in torch) and ``settings.device`` apply at ``load()``.

    ``precision`` (else ``settings.reader_precision``, default ``auto``): ``fp32``; ``bf16``
    (bfloat16 autocast); ``int8`` (dynamic quantisation of the Linear layers, per-channel weight
    scales, CPU only); ``auto`` is ``bf16`` where the hardware computes it natively (AVX512-BF16 or
    AMX CPUs, bf16-capable CUDA GPUs) and ``fp32`` elsewhere. ``quantize=True`` / ``bf16=True``
    are the older spellings of ``int8`` / ``bf16`` and win over ``precision``. Measured with the
    shipped reader on gold contexts (model card, "Inference precision"): on a 2-core AMD EPYC with
    AVX512-BF16, bf16 read 2.0x to 2.1x faster than fp32 and changed 0.7% of the answers (dev F1
    -0.26); int8 read 2.3x to 2.6x faster but changed 13% to 20% of them (dev F1 -1.5), so it is
    never chosen by ``auto``. Without native bf16 (AVX2 only), bf16 was about 6x slower.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        settings: Settings | None = None,
        top_n: int | None = None,
        max_answer_tokens: int | None = None,
        max_seq_length: int | None = None,
        doc_stride: int | None = None,
        batch_size: int | None = None,
        no_answer_threshold: float | None = None,
        retrieval_weight: float | None = None,
        quantize: bool = False,
        bf16: bool = False,
        precision: str | None = None,
    ) -> None:
        self._settings = settings if settings is not None else Settings()
        self._model_name = (
            model_name_or_path
            if model_name_or_path is not None
            else self._settings.resolved_reader_model
        )
        self._overrides: dict[str, Any] = {
            "top_n": top_n,
            "max_answer_tokens": max_answer_tokens,
            "max_seq_length": max_seq_length,
            "doc_stride": doc_stride,
            "batch_size": batch_size,
            "no_answer_threshold": no_answer_threshold,
            "retrieval_weight": retrieval_weight,
        }
        # quantize / bf16 (older keywords) win over precision, which wins over settings.reader_precision
        requested = "int8" if quantize else "bf16" if bf16 else precision or self._settings.reader_precision
        if requested not in READER_PRECISIONS:
            raise ConfigError(f"reader precision must be one of {', '.join(READER_PRECISIONS)}, got {requested!r}")
        self._requested_precision = requested
        self._quantize = requested == "int8"
        self._bf16 = requested == "bf16"
        self._state: _Loaded | None = None
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_components(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        reader_config: ReaderModelConfig | None = None,
        name: str = "<in-memory>",
        **kwargs: Any,
    ) -> ExtractiveReader:
        """A loaded reader around an already-built model and fast tokenizer (e.g. right after
        training, or fakes in tests). ``kwargs`` are the constructor's keyword arguments."""
        reader = cls(name, **kwargs)
        with reader._load_lock:
            reader._install(
                tokenizer,
                model,
                reader_config if reader_config is not None else ReaderModelConfig(),
            )
        return reader

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def is_loaded(self) -> bool:
        return self._state is not None

    @property
    def params(self) -> ReaderParams:
        """The effective settings; available after ``load()``."""
        return self._loaded().params

    def load(self) -> ExtractiveReader:
        """Load tokenizer, model and ``qa_system_reader.json`` (without transformers' loading
        progress bar); ConfigError if that fails."""
        from ..quiet import quiet_model_loading

        with self._load_lock:
            if self._state is None:
                with quiet_model_loading():
                    tokenizer, model = load_pretrained(self._model_name)
                self._install(tokenizer, model, load_reader_config(self._model_name))
        return self

    @property
    def precision(self) -> str:
        """How the model computes: ``fp32``, ``bf16`` or ``int8`` (``auto`` resolved for this
        machine and device)."""
        if self._requested_precision != "auto":
            return self._requested_precision
        return resolve_precision("auto", self._settings.device)

    @property
    def runtime(self) -> str | None:
        """What computes the logits: torch's version, the weights' dtype (or int8 quantisation)
        and the attention implementation; None before ``load()``."""
        state = self._state
        return None if state is None else state.runtime

    def _install(self, tokenizer: Any, model: Any, file_config: ReaderModelConfig) -> None:
        if self._requested_precision == "auto":
            self._bf16 = self.precision == "bf16"
        limit = getattr(tokenizer, "model_max_length", None)
        params = resolve_params(
            self._settings,
            file_config,
            model_max_length=limit if isinstance(limit, int) and limit < _NO_MAX_LENGTH else None,
            **self._overrides,
        )
        if tokenizer.pad_token_id is None:
            raise ConfigError(f"the tokenizer of {self._model_name!r} has no padding token")
        check_tokenizer_windows(tokenizer, params.max_seq_length, params.doc_stride)
        model = prepare_model(
            model,
            device=self._settings.device,
            quantize=self._quantize,
            torch_threads=self._settings.torch_threads,
            bf16=self._bf16,
        )
        self._state = _Loaded(tokenizer=tokenizer, model=model, params=params, runtime=describe_torch_runtime(model))

    def _loaded(self) -> _Loaded:
        state = self._state
        if state is None:
            raise NotLoadedError("call ExtractiveReader.load() before reading")
        return state

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        question: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        max_answer_tokens: int | None = None,
    ) -> ReaderResult:
        """The best answers to ``question`` found in ``passages`` (no passages: no answers)."""
        return self.read_batch(
            [question], [passages], top_n=top_n, max_answer_tokens=max_answer_tokens
        )[0]

    def read_batch(
        self,
        questions: Sequence[str],
        passages_per_question: Sequence[Sequence[Passage]],
        *,
        top_n: int | None = None,
        max_answer_tokens: int | None = None,
    ) -> list[ReaderResult]:
        """``read()`` for several questions, their windows run through the model together."""
        state = self._loaded()
        _check_inputs(questions, passages_per_question)
        n_answers = top_n if top_n is not None else state.params.top_n
        answer_tokens = (
            max_answer_tokens if max_answer_tokens is not None else state.params.max_answer_tokens
        )
        if n_answers <= 0 or answer_tokens <= 0:
            raise ConfigError("top_n and max_answer_tokens must be positive")

        if state.params.first_passages <= 0:
            windows = self._tokenize(state, questions, passages_per_question)
            return self._decode(state, windows, self._infer(state, windows), passages_per_question,
                                n_answers, answer_tokens)
        return self._read_in_two_stages(state, questions, passages_per_question, n_answers, answer_tokens)

    def _read_in_two_stages(
        self,
        state: _Loaded,
        questions: Sequence[str],
        passages_per_question: Sequence[Sequence[Passage]],
        top_n: int,
        max_answer_tokens: int,
    ) -> list[ReaderResult]:
        """Read each question's best ``first_passages`` passages (by retrieval score), then the
        rest of the questions whose best answer is not ``settled`` by then, together."""
        params = state.params
        first, rest = [], []
        for passages in passages_per_question:
            head, tail = split_first_passages(passages, params.first_passages)
            first.append(head)
            rest.append(tail)
        windows = self._tokenize(state, questions, passages_per_question, first)
        logits = self._infer(state, windows)
        results = self._decode(state, windows, logits, passages_per_question, top_n, max_answer_tokens)
        unsettled = {
            q for q, (result, unread) in enumerate(zip(results, rest, strict=True))
            if unread and not settled(result, max(passages_per_question[q][i].score for i in unread),
                                      params.retrieval_weight, params.settled_lead)
        }
        if not unsettled:
            return results
        more = self._tokenize(state, questions, passages_per_question,
                              [rest[q] if q in unsettled else [] for q in range(len(questions))])
        # decode again only the unsettled questions: the settled ones' windows are left out
        again = [(w, lg) for w, lg in zip(windows, logits, strict=True) if w.question_index in unsettled]
        again += zip(more, self._infer(state, more), strict=True)
        redone = self._decode(state, [w for w, _ in again], [lg for _, lg in again], passages_per_question,
                              top_n, max_answer_tokens)
        return [redone[q] if q in unsettled else result for q, result in enumerate(results)]

    def _tokenize(
        self,
        state: _Loaded,
        questions: Sequence[str],
        passages_per_question: Sequence[Sequence[Passage]],
        subsets: Sequence[Sequence[int]] | None = None,
    ) -> list[Window]:
        """The windows of each question's passages (``subsets``: of those passage indices only)."""
        windows: list[Window] = []
        with self._tokenizer_lock:
            for q, (question, passages) in enumerate(zip(questions, passages_per_question, strict=True)):
                chosen = range(len(passages)) if subsets is None else subsets[q]
                readable = [i for i in chosen if passages[i].text.strip()]
                if not readable:
                    continue
                windows.extend(
                    encode_windows(
                        state.tokenizer,
                        question.strip(),
                        [passages[i].text for i in readable],
                        question_index=q,
                        passage_indices=readable,
                        max_seq_length=state.params.max_seq_length,
                        doc_stride=state.params.doc_stride,
                    )
                )
        return windows

    def _infer(self, state: _Loaded, windows: Sequence[Window]) -> list[WindowLogits]:
        if not windows:
            return []
        return run_windows(
            state.model,
            windows,
            batch_size=state.params.batch_size,
            pad_token_id=state.tokenizer.pad_token_id,
            device=self._settings.device,
            bf16=self._bf16,
        )

    def _decode(
        self,
        state: _Loaded,
        windows: Sequence[Window],
        logits: Sequence[WindowLogits],
        passages_per_question: Sequence[Sequence[Passage]],
        top_n: int,
        max_answer_tokens: int,
    ) -> list[ReaderResult]:
        grouped: list[tuple[list[Window], list[WindowLogits]]] = [
            ([], []) for _ in passages_per_question
        ]
        for window, window_logits in zip(windows, logits, strict=True):
            grouped[window.question_index][0].append(window)
            grouped[window.question_index][1].append(window_logits)
        return [
            decode_question(
                passages,
                question_windows,
                question_logits,
                top_n=top_n,
                max_answer_tokens=max_answer_tokens,
                no_answer_threshold=state.params.no_answer_threshold,
                long_passage_threshold=state.params.long_passage_no_answer_threshold,
                retrieval_weight=state.params.retrieval_weight,
            )
            for passages, (question_windows, question_logits) in zip(passages_per_question, grouped, strict=True)
        ]


def _check_inputs(
    questions: Sequence[str], passages_per_question: Sequence[Sequence[Passage]]
) -> None:
    if isinstance(questions, str):
        raise InputError("read_batch() takes a sequence of questions, not one string")
    if len(questions) != len(passages_per_question):
        raise InputError(
            f"{len(questions)} questions but {len(passages_per_question)} passage lists"
        )
    for question in questions:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("the question is empty")
