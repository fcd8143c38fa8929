"""Evaluation results: the result record, the published anchors, and its three renderings —
a text table (stdout), a JSON file, and a PNG chart of recall@k (matplotlib, Agg backend).

All figures are fractions in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .retrieval_metrics import RetrievalScores
from .squad_metrics import SquadScores

if TYPE_CHECKING:  # open_squad imports this module at run time
    from .open_squad import CorpusReport, EvalQuestion


@dataclass(frozen=True)
class RecallAnchor:
    """Recall@k published or measured elsewhere, to print beside ours."""

    label: str
    definition: str  # "book" or "strict"
    recall: Mapping[int, float]


@dataclass(frozen=True)
class QAAnchor:
    label: str
    exact_match: float
    f1: float


# Chapter 7 of "Natural Language Processing with Transformers" (Tunstall, von Werra, Wolf),
# SubjQA electronics test, retrieval filtered by item_id, Haystack 0.10 EvalDocuments.
SUBJQA_RECALL_ANCHORS: tuple[RecallAnchor, ...] = (
    RecallAnchor("book: BM25 (Elasticsearch)", "book", {1: 0.891, 3: 0.955, 5: 0.982, 10: 0.991, 20: 0.991}),
    RecallAnchor("book: DPR", "book", {1: 0.830, 3: 0.955, 5: 0.979, 10: 0.991, 20: 0.991}),
    # Measured earlier in this project with whole reviews as passages (orientation only).
    RecallAnchor("earlier: all-MiniLM-L6-v2 dense, whole reviews", "book",
                 {1: 0.752, 3: 0.933, 5: 0.970, 10: 0.991, 20: 0.991}),
    RecallAnchor("earlier: BM25 (bm25s), whole reviews", "book",
                 {1: 0.779, 3: 0.930, 5: 0.973, 10: 0.991, 20: 0.991}),
    RecallAnchor("earlier: MiniLM dense and bm25s alike, whole reviews", "strict", {1: 0.64}),
)
SUBJQA_READER_ANCHORS: tuple[QAAnchor, ...] = (
    QAAnchor("book: MiniLM trained on SQuAD 2.0", 0.060, 0.246),
    QAAnchor("book: MiniLM after fine-tuning on SubjQA", 0.327, 0.518),
)
SUBJQA_PIPELINE_ANCHORS: tuple[QAAnchor, ...] = (
    QAAnchor("book: BM25, 10 passages, 4 answers", 0.230, 0.431),
)


@dataclass(frozen=True)
class EvalResult:
    """One run of ``qa-system eval``."""

    benchmark: str  # "subjqa" or "open-squad"
    title: str  # e.g. "SubjQA electronics test"
    dataset: str
    questions: int
    answerable: int
    corpus: CorpusReport
    retrieval: Mapping[str, RetrievalScores]  # "book", "strict"
    retrieval_scope: str  # how each question was searched
    reader_model: str | None
    no_answer_threshold: float | None
    always_answer: bool
    reader_on_gold: SquadScores | None
    reader_pairs: int
    pipeline: SquadScores | None
    top_k_retriever: int
    top_k_reader: int
    seconds: Mapping[str, float]
    per_question: Sequence[Mapping[str, Any]] = ()
    recall_anchors: Sequence[RecallAnchor] = ()
    reader_anchors: Sequence[QAAnchor] = ()
    pipeline_anchors: Sequence[QAAnchor] = ()
    notes: Sequence[str] = field(default_factory=tuple)
    lexical_weight: float = 0.0  # hybrid retrieval's weight; 0: dense alone
    database: str = "temporary SQLite file"  # where the corpus was indexed (URL without password)
    long_passage_no_answer_threshold: float | None = None  # for passages read in several windows

    @property
    def slug(self) -> str:
        return "-".join(self.title.lower().split())


def per_question_records(questions: Sequence[EvalQuestion], ranks: Mapping[str, Sequence[int | None]],
                         predictions: Mapping[str, str] | None) -> list[dict[str, Any]]:
    return [
        {"id": q.id, "question": q.question, "filters": dict(q.filters or {}), "answers": list(q.answers),
         "gold_documents": sorted(q.gold_keys),
         **{f"{name}_rank": r[i] for name, r in ranks.items()},
         **({"prediction": predictions.get(q.id)} if predictions is not None else {})}
        for i, q in enumerate(questions)
    ]


# -- text ---------------------------------------------------------------------------------------

W = 62  # label column width


def _f(x: float | None) -> str:
    return "    -" if x is None else f"{x:.3f}"


def render_text(result: EvalResult) -> str:
    c = result.corpus
    ks = sorted(next(iter(result.retrieval.values())).recall) if result.retrieval else []
    cutoff = max(ks) if ks else 0
    lines = [
        f"{result.title}: {result.questions} questions ({result.answerable} answerable), {result.dataset}",
        f"corpus: {c.documents} documents -> {c.chunks} chunks ({c.split_documents} documents split, "
        f"at most {c.max_chunks_per_document} chunks each; chunks of <= {c.chunk_tokens} tokens, "
        f"overlap {c.chunk_overlap_tokens}); embedder {c.embedding_model}; indexed in {c.seconds:.1f}s "
        f"into {result.database}",
        f"retrieval: {result.retrieval_scope}; "
        + (f"hybrid, lexical weight {result.lexical_weight:g}" if result.lexical_weight else "dense alone"),
        "",
        f"{'retriever recall@k':<{W}}" + "".join(f"{'@' + str(k):>7}" for k in ks) + f"{'MRR@' + str(cutoff):>9}",
    ]
    for name, scores in result.retrieval.items():
        label = f"ours ({name} definition)"
        lines.append(f"{label:<{W}}" + "".join(f"{_f(scores.recall[k]):>7}" for k in ks) + f"{_f(scores.mrr):>9}")
    for a in result.recall_anchors:
        label = f"{a.label} [{a.definition}]"
        lines.append(f"{label[:W]:<{W}}" + "".join(f"{_f(a.recall.get(k)):>7}" for k in ks) + f"{'-':>9}")
    lines.append("  book: a hit when a gold answer text (lower-cased) occurs in a retrieved document; "
                 "no-answer questions always hit.")
    lines.append("  strict: a hit when a gold document itself is retrieved (every question).")
    if result.reader_on_gold is not None:
        lines += ["", f"{'reader top-1 on the gold document (' + str(result.reader_pairs) + ' pairs)':<{W}}"
                  f"{'EM':>7}{'F1':>7}{'HasAns F1':>11}{'NoAns acc':>11}"]
        lines.append(_qa_line(f"ours ({_short(result.reader_model)})", result.reader_on_gold))
        lines += [f"{a.label:<{W}}{_f(a.exact_match):>7}{_f(a.f1):>7}" for a in result.reader_anchors]
    if result.pipeline is not None:
        title = f"pipeline top-1 ({result.top_k_retriever} passages, {result.top_k_reader} answers)"
        lines += ["", f"{title:<{W}}{'EM':>7}{'F1':>7}{'HasAns F1':>11}{'NoAns acc':>11}"]
        lines.append(_qa_line("ours", result.pipeline))
        lines += [f"{a.label:<{W}}{_f(a.exact_match):>7}{_f(a.f1):>7}" for a in result.pipeline_anchors]
    if result.reader_model is not None:
        rule = ("off (--always-answer: every question gets the best span)" if result.always_answer
                else result.no_answer_threshold if result.long_passage_no_answer_threshold is None
                else f"{result.no_answer_threshold}, {result.long_passage_no_answer_threshold} for passages "
                     "read in several windows")
        lines.append(f"  reader {result.reader_model}, no-answer threshold {rule}")
    lines += ["", "time: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _short(model: str | None) -> str:
    if model is None:
        return "-"
    parts = Path(model).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else model


def _qa_line(label: str, s: SquadScores) -> str:
    return f"{label[:W]:<{W}}{_f(s.exact_match):>7}{_f(s.f1):>7}{_f(s.has_answer_f1):>11}{_f(s.no_answer_f1):>11}"


# -- JSON ---------------------------------------------------------------------------------------

def to_json(result: EvalResult) -> dict[str, Any]:
    payload = asdict(result)
    payload["retrieval"] = {name: s.as_dict() for name, s in result.retrieval.items()}
    payload["recall_anchors"] = [
        {"label": a.label, "definition": a.definition, "recall": {str(k): v for k, v in a.recall.items()}}
        for a in result.recall_anchors
    ]
    return payload


def write_json(result: EvalResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(result), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


# -- chart --------------------------------------------------------------------------------------

def write_chart(result: EvalResult, path: Path) -> Path | None:
    """A PNG of recall@k, ours beside the anchors; None when matplotlib is not installed
    (``pip install 'qa_system[eval]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not result.retrieval:
        return None
    ks = sorted(next(iter(result.retrieval.values())).recall)
    x = list(range(len(ks)))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    styles = {"book": ("tab:blue", "-"), "strict": ("tab:red", "-")}
    for name, scores in result.retrieval.items():
        color, line = styles.get(name, ("black", "-"))
        ax.plot(x, [scores.recall[k] for k in ks], line, color=color, marker="o", linewidth=2.5,
                label=f"ours ({name})")
    greys = ["tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:gray", "tab:olive"]
    for a, color in zip(result.recall_anchors, greys * 2, strict=False):
        points = [(i, a.recall[k]) for i, k in enumerate(ks) if k in a.recall]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, "--" if a.definition == "book" else ":", color=color, marker="s", markersize=4,
                linewidth=1.2, label=f"{a.label} [{a.definition}]")
    ax.set_xticks(x, [str(k) for k in ks])
    ax.set_xlabel("k (documents retrieved)")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{result.title}: retriever recall@k ({result.questions} questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
