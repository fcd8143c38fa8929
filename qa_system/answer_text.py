"""Answer text normalisation: the official SQuAD rules, shared by the reader (which drops an answer
whose normalised text repeats a better one) and evaluation (which compares normalised texts)."""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation, articles and extra whitespace (official SQuAD rules)."""
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())
