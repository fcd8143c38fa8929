"""`Store.repair`: rebuild the current index file so that it matches the SQL chunk rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from ..embedding import Embedder
from ..errors import IndexMismatchError
from . import index_files as files
from . import lexical
from . import repository as repo
from .consistency import build_report, duplicate_ids
from .writes import Change

#: Chunks re-embedded per encode call group (the embedder batches further inside).
REPAIR_CHUNK_BATCH = 1024


def repair_step(session: Session, directory: Path, embedder: Embedder, *, model: str,
                dimension: int, batch_size: int) -> Change[None]:
    """Inside the locked write transaction: fix the index file of the committed generation.

    Starts from the file on disk (not the in-memory index), removes orphan and duplicated
    vectors, re-embeds every chunk without a vector, and returns the index to publish as the
    next generation -- or no change when the file is already consistent. A full-text index
    that does not match the chunks (SQLite) is rebuilt from them.
    """
    text_index_broken = lexical.check(session) is not None
    if text_index_broken:
        lexical.rebuild(session)  # committed with a new generation (the same vectors if they were fine)
    state = repo.state(session)
    loaded = files.load_generation(directory, state.generation, embedding_model=model, dimension=dimension)
    sql_ids = repo.all_chunk_ids(session)
    report = build_report(sql_ids=sql_ids, sql_generation=state.generation,
                          state_chunk_count=state.chunk_count, loaded=loaded)
    if report.ok:
        return Change(loaded.index if text_index_broken else None, len(sql_ids), None)
    index = loaded.index  # freshly loaded: nobody else holds it
    index.remove(np.asarray(report.orphan_vectors, dtype=np.int64))
    index.remove(duplicate_ids(index.ids()))
    missing = np.setdiff1d(sql_ids, index.ids())
    for start in range(0, len(missing), REPAIR_CHUNK_BATCH):
        batch = [int(i) for i in missing[start:start + REPAIR_CHUNK_BATCH]]
        texts = repo.chunk_texts(session, batch)
        vectors = np.asarray(embedder.encode([texts[i] for i in batch], batch_size=batch_size))
        if vectors.shape != (len(batch), dimension):
            raise IndexMismatchError(f"the embedder returned vectors of shape {vectors.shape}, "
                                     f"expected ({len(batch)}, {dimension})")
        index.add(vectors, batch)
    return Change(index, len(sql_ids), None)
