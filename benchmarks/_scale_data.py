"""The synthetic corpus of benchmarks/scale.py: passages, metadata, vectors and queries, all
deterministic from a seed, generated piece by piece so a million passages never sit in memory.

Pure numpy: no qa_system import, so the same data reach every code tree the benchmark compares.

Text. Document ``i`` has 3 chunks (the last document of the corpus may have fewer, so the corpus
holds exactly the number of passages asked for); a chunk is 80-120 words drawn from a
Zipf-Mandelbrot distribution, p(rank r) ~ 1 / (r + 2.7), over a vocabulary whose most frequent
ranks are English function words (about 37% of the words, as in English; the product's full-text
query drops them as it drops a real question's) followed by 50,000 made-up words of 2-4
consonant-vowel syllables. So full-text search meets common, middling and rare words. The
document text is its chunk texts joined by one space, so ``text[start:end] == chunk text``. Each
document is generated from its own random stream, so any one can be rebuilt alone (to delete it,
or to find which chunk a search returned).

Metadata. ``tenant``: one of 100 values (a filter on one matches ~1% of the passages); ``half``:
one of 2 (~50%). Drawn per block of documents, independently of text and vectors.

Vectors. 2,000 random unit centres in 384 dimensions; passage vector =
normalise(centre + PASSAGE_NOISE * g / sqrt(384)), g standard normal, the centre picked uniformly
per passage. The noise norm is about PASSAGE_NOISE (1.75) times the centre's: a passage's
cosine to its own centre is ~0.50 and to the nearest other centre ~0.17 (its nearest centre is
its own: 100% in a sample of 3,000), two passages of one cluster have cosine ~0.25 +- 0.05, of
different clusters 0 +- 0.05 -- so clusters overlap: of the exact top-10 of a query, ~44% (20k
passages), ~16% (100k), ~3.5% (1M) come from other clusters than the query's passage (scale.py
prints this for the data it runs on; PASSAGE_NOISE 2.0 would give 64% / 42% / 20%, 1.5 gives
21% / 1.5% at 20k / 100k). Random unit vectors would be the worst case for approximate search
and unlike real embeddings; these have the cluster structure an inverted-file index relies on,
without making it trivial.

Queries. A random stored passage's vector plus QUERY_NOISE (1.0) times a random direction,
normalised (cosine ~0.7 to its passage, as a question to its answer passage); the query text is
5-8 consecutive words of that passage; the filters are that passage's tenant and half.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DATA_VERSION = 1  # change when the data below change: cached stores and answers are rebuilt
DIMENSION = 384
CHUNKS_PER_DOCUMENT = 3
WORDS_PER_CHUNK = (80, 120)  # inclusive
MADE_UP_WORDS = 50_000
ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 2.7
CLUSTERS = 2_000
PASSAGE_NOISE = 1.75
QUERY_NOISE = 1.0
QUERY_WORDS = (5, 8)  # inclusive
TENANTS = 100
HALVES = 2
BLOCK_DOCUMENTS = 1_000  # documents per vector/metadata block

# The most frequent ranks: common English function words (the product's stopword list, copied so
# that this module stays free of qa_system; a word missing from the product's list is simply a
# common query word).
FUNCTION_WORDS = (
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
    "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
    "more", "when", "will", "would", "who", "so", "no", "she", "other", "its", "into", "than", "them",
    "these", "may", "some", "what", "out", "only", "do", "time", "him", "could", "my", "about", "over",
    "any", "then", "after", "such", "our", "also", "those", "most", "me", "through", "should", "how",
    "where", "before", "between", "both", "being", "each", "did", "does", "under", "while", "very",
    "same", "own", "until", "during", "why", "whom", "here", "your", "off", "once", "too", "nor",
    "having", "doing", "done", "am", "i", "up", "just", "itself", "hers", "s", "t",
)
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _stream(seed: int, kind: int, index: int = 0) -> np.random.Generator:
    """An independent random stream per (seed, kind, index): pieces are generated in any order."""
    return np.random.default_rng([seed, kind, index])


_VOCABULARY, _METADATA, _VECTORS, _CENTRES, _DOCUMENT, _QUERIES, _EXTRA = range(7)


@dataclass(frozen=True)
class SyntheticDocument:
    index: int
    source: str
    chunk_texts: tuple[str, ...]
    tenant: str
    half: str

    @property
    def text(self) -> str:
        return " ".join(self.chunk_texts)

    @property
    def starts(self) -> tuple[int, ...]:
        """Character offset of each chunk in ``text``."""
        starts, at = [], 0
        for chunk in self.chunk_texts:
            starts.append(at)
            at += len(chunk) + 1
        return tuple(starts)

    @property
    def metadata(self) -> dict[str, str]:
        return {"tenant": self.tenant, "half": self.half}


@dataclass(frozen=True)
class Queries:
    passages: np.ndarray  # (q,) int64: the stored passage each query was made from
    vectors: np.ndarray  # (q, DIMENSION) float32, unit
    texts: tuple[str, ...]
    tenants: tuple[str, ...]  # the source passage's document's
    halves: tuple[str, ...]


def source_of(document: int) -> str:
    return f"scale/{document:08d}"


def document_of_source(source: str) -> int:
    prefix = "scale/"
    if not source.startswith(prefix):
        raise ValueError(f"not a synthetic source: {source!r}")
    return int(source[len(prefix):])


def tenant_name(i: int) -> str:
    return f"t{i:03d}"


def half_name(i: int) -> str:
    return f"h{i}"


class Corpus:
    """``passages`` passages in ``ceil(passages / 3)`` documents; passage ``p`` is chunk ``p % 3``
    of document ``p // 3``."""

    def __init__(self, passages: int, seed: int = 0) -> None:
        if passages <= 0:
            raise ValueError(f"passages must be positive, got {passages}")
        self.passages = passages
        self.seed = seed
        self.documents = -(-passages // CHUNKS_PER_DOCUMENT)
        self.blocks = -(-self.documents // BLOCK_DOCUMENTS)

    # ------------------------------------------------------------------ text

    @functools.cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """Function words, then the made-up words, in rank order (most frequent first)."""
        rng = _stream(self.seed, _VOCABULARY)
        words: dict[str, None] = dict.fromkeys(FUNCTION_WORDS)
        start = len(words)
        while len(words) < start + MADE_UP_WORDS:
            syllables = rng.integers(2, 5, size=4096)
            consonants = rng.integers(0, len(_CONSONANTS), size=(4096, 4))
            vowels = rng.integers(0, len(_VOWELS), size=(4096, 4))
            for n, cs, vs in zip(syllables.tolist(), consonants.tolist(), vowels.tolist(), strict=True):
                word = "".join(_CONSONANTS[c] + _VOWELS[v] for c, v in zip(cs[:n], vs[:n], strict=True))
                words.setdefault(word, None)
                if len(words) == start + MADE_UP_WORDS:
                    break
        return tuple(words)

    @functools.cached_property
    def _cdf(self) -> np.ndarray:
        ranks = np.arange(1, len(self.vocabulary) + 1, dtype=np.float64)
        weights = 1.0 / (ranks + ZIPF_OFFSET) ** ZIPF_EXPONENT
        cdf = np.cumsum(weights)
        return cdf / cdf[-1]

    def chunk_count(self, document: int) -> int:
        if not 0 <= document < self.documents:
            raise IndexError(f"document {document} is not in a corpus of {self.documents}")
        return min(CHUNKS_PER_DOCUMENT, self.passages - CHUNKS_PER_DOCUMENT * document)

    def document(self, index: int, chunks: int | None = None) -> SyntheticDocument:
        """Document ``index`` of the corpus; an index past the end (with ``chunks``) makes an
        extra document for writes, from the same distribution."""
        if chunks is None:
            chunks = self.chunk_count(index)
        if not 1 <= chunks <= CHUNKS_PER_DOCUMENT:
            raise ValueError(f"a document has 1 to {CHUNKS_PER_DOCUMENT} chunks, not {chunks}")
        rng = _stream(self.seed, _DOCUMENT, index)
        lengths = rng.integers(WORDS_PER_CHUNK[0], WORDS_PER_CHUNK[1] + 1, size=CHUNKS_PER_DOCUMENT)
        picks = np.searchsorted(self._cdf, rng.random(int(lengths.sum())), side="right").tolist()
        vocabulary = self.vocabulary
        texts, at = [], 0
        for length in lengths.tolist()[:chunks]:
            texts.append(" ".join([vocabulary[w] for w in picks[at:at + length]]))
            at += length
        tenants, halves = self.block_metadata(index // BLOCK_DOCUMENTS)
        row = index % BLOCK_DOCUMENTS
        return SyntheticDocument(index, source_of(index), tuple(texts), tenant_name(int(tenants[row])),
                                 half_name(int(halves[row])))

    # -------------------------------------------------------------- metadata

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few blocks per corpus object, on purpose
    def block_metadata(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(tenant numbers, half numbers) of the documents of ``block`` (all BLOCK_DOCUMENTS
        slots, also past the corpus's end, for extra documents)."""
        rng = _stream(self.seed, _METADATA, block)
        return (rng.integers(0, TENANTS, size=BLOCK_DOCUMENTS), rng.integers(0, HALVES, size=BLOCK_DOCUMENTS))

    def block_documents(self, block: int) -> range:
        return range(block * BLOCK_DOCUMENTS, min((block + 1) * BLOCK_DOCUMENTS, self.documents))

    def block_passages(self, block: int) -> range:
        documents = self.block_documents(block)
        return range(documents.start * CHUNKS_PER_DOCUMENT,
                     min(documents.stop * CHUNKS_PER_DOCUMENT, self.passages))

    def passage_metadata(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(tenant, half) numbers per passage of ``block``."""
        tenants, halves = self.block_metadata(block)
        passages = self.block_passages(block)
        rows = (np.arange(passages.start, passages.stop) // CHUNKS_PER_DOCUMENT) % BLOCK_DOCUMENTS
        return tenants[rows], halves[rows]

    # --------------------------------------------------------------- vectors

    @functools.cached_property
    def centres(self) -> np.ndarray:
        return _unit(_stream(self.seed, _CENTRES).standard_normal((CLUSTERS, DIMENSION), dtype=np.float32))

    def block_vectors(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(unit vectors, cluster numbers) of the passages of ``block``, in passage order."""
        return self._clustered(_stream(self.seed, _VECTORS, block), len(self.block_passages(block)))

    def extra_vectors(self, batch: int, count: int) -> np.ndarray:
        """Vectors for ``count`` extra passages (writes), from their own stream ``batch``."""
        return self._clustered(_stream(self.seed, _EXTRA, batch), count)[0]

    def _clustered(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        clusters = rng.integers(0, CLUSTERS, size=count)
        noise = rng.standard_normal((count, DIMENSION), dtype=np.float32)
        noise *= np.float32(PASSAGE_NOISE / np.sqrt(DIMENSION))
        return _unit(self.centres[clusters] + noise), clusters

    # --------------------------------------------------------------- queries

    def queries(self, count: int) -> Queries:
        rng = _stream(self.seed, _QUERIES)
        passages = rng.choice(self.passages, size=min(count, self.passages), replace=False).astype(np.int64)
        noise = rng.standard_normal((len(passages), DIMENSION), dtype=np.float32)
        noise *= np.float32(QUERY_NOISE / np.sqrt(DIMENSION))
        sources = np.zeros((len(passages), DIMENSION), dtype=np.float32)
        texts, tenants, halves = [], [], []
        by_block: dict[int, list[int]] = {}
        for row, p in enumerate(passages.tolist()):
            by_block.setdefault(p // CHUNKS_PER_DOCUMENT // BLOCK_DOCUMENTS, []).append(row)
        for block, rows in by_block.items():
            vectors, _ = self.block_vectors(block)
            first = self.block_passages(block).start
            for row in rows:
                sources[row] = vectors[passages[row] - first]
        for p in passages.tolist():
            document = self.document(p // CHUNKS_PER_DOCUMENT)
            words = document.chunk_texts[p % CHUNKS_PER_DOCUMENT].split(" ")
            n = int(rng.integers(QUERY_WORDS[0], QUERY_WORDS[1] + 1))
            at = int(rng.integers(0, len(words) - n + 1))
            texts.append(" ".join(words[at:at + n]))
            tenants.append(document.tenant)
            halves.append(document.half)
        return Queries(passages, _unit(sources + noise), tuple(texts), tuple(tenants), tuple(halves))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@dataclass(frozen=True)
class Neighbours:
    """The exact top-``k`` passages (by cosine) of every query, best first: ``ids`` (q, k) passage
    numbers (-1 where fewer exist) and their ``scores`` (NaN there)."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class GroundTruth:
    """Exact neighbours per search mode ('all', 'tenant': among the passages of the query's
    tenant, 'half': of its half), and how clustered the data are: the share of the exact top-10
    (all) from other clusters than the query's passage, and of the first block's passages whose
    nearest centre is their own."""

    neighbours: dict[str, Neighbours]
    foreign_top10: float
    own_centre: float


def exact_neighbours(corpus: Corpus, queries: Queries, k: int) -> GroundTruth:
    """Exact top-``k`` of each query in every mode; one pass over the vectors, block by block."""
    q = len(queries.passages)
    q_tenants = np.asarray([int(t[1:]) for t in queries.tenants])
    q_halves = np.asarray([int(h[1:]) for h in queries.halves])
    best = {mode: (np.full((q, k), -np.inf, dtype=np.float32), np.full((q, k), -1, dtype=np.int64))
            for mode in ("all", "tenant", "half")}
    clusters = np.zeros(corpus.passages, dtype=np.int32)
    own_centre = float("nan")
    for block in range(corpus.blocks):
        vectors, block_clusters = corpus.block_vectors(block)
        span = corpus.block_passages(block)
        clusters[span.start:span.stop] = block_clusters
        if block == 0:
            own_centre = float((np.argmax(vectors @ corpus.centres.T, axis=1) == block_clusters).mean())
        ids = np.arange(span.start, span.stop, dtype=np.int64)
        sims = queries.vectors @ vectors.T
        tenants, halves = corpus.passage_metadata(block)
        masks = {"all": None, "tenant": q_tenants[:, None] == tenants[None, :],
                 "half": q_halves[:, None] == halves[None, :]}
        for mode, mask in masks.items():
            scores = sims if mask is None else np.where(mask, sims, np.float32(-np.inf))
            old_scores, old_ids = best[mode]
            all_scores = np.concatenate([old_scores, scores], axis=1)
            all_ids = np.concatenate([old_ids, np.broadcast_to(ids, scores.shape)], axis=1)
            top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
            best[mode] = (np.take_along_axis(all_scores, top, 1), np.take_along_axis(all_ids, top, 1))
    neighbours = {}
    for mode, (scores, ids) in best.items():
        order = np.argsort(-scores, axis=1, kind="stable")
        scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        found = np.isfinite(scores)
        neighbours[mode] = Neighbours(np.where(found, ids, -1), np.where(found, scores, np.float32(np.nan)))
    top10 = neighbours["all"].ids[:, :10]
    own = clusters[queries.passages][:, None]
    valid = top10 >= 0
    foreign = float(((clusters[np.maximum(top10, 0)] != own) & valid).sum() / max(int(valid.sum()), 1))
    return GroundTruth(neighbours, foreign, own_centre)


def recall_at(found: list[list[int]], exact: Neighbours, k: int, tolerance: float = 1e-5) -> float:
    """Mean over queries of |found ∩ exact top-k| / k; a found passage tied (within
    ``tolerance``) with the k-th exact score also counts (float rounding differs between
    numpy and an index). Queries with fewer than k candidates divide by how many exist."""
    total = 0.0
    for row, hits in enumerate(found):
        ids = exact.ids[row]
        scores = exact.scores[row]
        wanted = int((ids[:k] >= 0).sum())
        if wanted == 0:
            total += 1.0
            continue
        kth = scores[wanted - 1]
        good = set(ids[:k][ids[:k] >= 0].tolist())
        good |= {int(i) for i, s in zip(ids[k:].tolist(), scores[k:].tolist(), strict=True)
                 if i >= 0 and s >= kth - tolerance}
        total += len({h for h in hits[:k] if h in good}) / wanted
    return total / max(len(found), 1)
