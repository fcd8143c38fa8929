"""`Store.repair`: rebuild the vector side so that it matches the SQL chunk rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from ..embedding import Embedder
from ..errors import IndexMismatchError
from . import lexical
from . import repository as repo
from .consistency import build_report, read_segments
from .writes import Change

#: Chunks re-embedded per encode call group (the embedder batches further inside).
REPAIR_CHUNK_BATCH = 1024


def repair_step(session: Session, directory: Path, embedder: Embedder, *, dimension: int,
                batch_size: int) -> Change[None]:
    """Inside the locked write transaction: the change that makes the vectors match SQL.

    Reads every segment file whose content still matches its recorded digest, keeps the vectors
    of chunks that exist (once each, tombstoned ones dropped), re-embeds every chunk left
    without a vector, and returns them all as a rebuild (one new segment set, no tombstones) --
    or no change when the store is consistent. A full-text index that does not match the chunks
    (SQLite) is rebuilt from them.
    """
    text_index_broken = lexical.check(session) is not None
    if text_index_broken:
        lexical.rebuild(session)
    state = repo.state(session)
    sql_ids = repo.all_chunk_ids(session)
    tombstones = repo.tombstone_ids(session)
    reading = read_segments(directory, repo.segment_infos(session), dimension, verify_hashes=True)
    report = build_report(sql_ids=sql_ids, sql_generation=state.generation,
                          state_chunk_count=state.chunk_count, reading=reading, tombstones=tombstones)
    if report.ok:
        return Change(len(sql_ids), None, rows_changed=text_index_broken)
    id_parts, vector_parts = [], []
    for segment in reading.segments:
        ids, vectors = segment.contents()
        keep = np.isin(ids, sql_ids) & ~np.isin(ids, tombstones)
        id_parts.append(ids[keep])
        vector_parts.append(vectors[keep])
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
    vectors = np.vstack(vector_parts) if vector_parts else np.zeros((0, dimension), dtype=np.float32)
    ids, first = np.unique(ids, return_index=True)
    vectors = vectors[first]
    missing = np.setdiff1d(sql_ids, ids)
    for start in range(0, len(missing), REPAIR_CHUNK_BATCH):
        batch = [int(i) for i in missing[start:start + REPAIR_CHUNK_BATCH]]
        texts = repo.chunk_texts(session, batch)
        embedded = np.asarray(embedder.encode([texts[i] for i in batch], batch_size=batch_size))
        if embedded.shape != (len(batch), dimension):
            raise IndexMismatchError(f"the embedder returned vectors of shape {embedded.shape}, "
                                     f"expected ({len(batch)}, {dimension})")
        ids = np.concatenate([ids, np.asarray(batch, dtype=np.int64)])
        vectors = np.vstack([vectors, embedded.astype(np.float32)])
    order = np.argsort(ids)
    return Change(len(sql_ids), None, added_ids=ids[order], added_vectors=vectors[order], rebuild=True)
