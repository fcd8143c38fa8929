"""Hybrid retrieval, the pure part: the words a lexical search looks for, and how its scores
are fused with the dense (cosine) scores.

A passage's retrieval score is ``(1 - w) * cosine + w * lexical / best_lexical``, where
``lexical`` is the database's full-text rank of the passage for the question (BM25 on SQLite,
``ts_rank`` on PostgreSQL; 0 when it holds none of the question's words) and ``best_lexical`` is
the best rank any passage got for that question. The lexical part is thus in [0, 1] like a
cosine, and ``w = 0`` is dense retrieval alone, as is a question none of whose words any passage
holds. Dense embeddings find paraphrases; the lexical part finds exact words the embedder blurs
(names, error codes, numbers, rare terms).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..config import check_lexical_weight

#: Words too common to help a lexical search (its rank gives them little weight anyway, but each
#: would make the database visit almost every passage).
STOPWORDS = frozenset([
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "being", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing",
    "done", "during", "each", "for", "from", "had", "has", "have", "having", "he", "her", "here",
    "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me",
    "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other",
    "our", "out", "over", "own", "s", "same", "she", "should", "so", "some", "such", "t", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your"
])
MAX_TERMS = 32
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def query_terms(question: str, *, limit: int = MAX_TERMS) -> list[str]:
    """The distinct lower-cased words of ``question`` (letters and digits; punctuation splits
    words, so ``SYNC-413`` gives ``sync`` and ``413``), stopwords left out, in order of first
    appearance, at most ``limit``. Safe to quote into any full-text query syntax."""
    terms: list[str] = []
    for word in _WORD.findall(question.lower()):
        if word not in STOPWORDS and word not in terms:
            terms.append(word)
            if len(terms) == limit:
                break
    return terms


def fuse(dense: Mapping[int, float], lexical: Mapping[int, float], lexical_weight: float,
         k: int) -> list[tuple[int, float]]:
    """The ``k`` best ``(id, fused score)`` pairs, best first (ties: smaller id first).

    ``dense`` holds the cosine of every candidate id (the union of both searches' candidates);
    ``lexical`` the full-text rank (higher is better) of the candidates that hold a query word,
    with the question's best rank among them. A candidate missing from ``dense`` is skipped: the
    caller gives a cosine for every id it wants ranked. When no candidate has a rank (no passage
    holds a word of the question), the scores are the cosines. ConfigError unless 0 <= w <= 1.
    """
    w = check_lexical_weight(lexical_weight)
    best = max((s for s in lexical.values() if s > 0), default=0.0)
    if best <= 0:  # no passage holds a word of the question: the vector search alone
        w = 0.0
    fused = [
        (i, (1.0 - w) * cos + (w * max(lexical.get(i, 0.0), 0.0) / best if w > 0 else 0.0))
        for i, cos in dense.items()
    ]
    fused.sort(key=lambda pair: (-pair[1], pair[0]))
    return fused[:k]
