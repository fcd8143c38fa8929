"""Stores made before segments (migration 0003) hold one ``index/vectors-<generation>.faiss``
(an ``IndexIDMap2`` over ``IndexFlatIP``). The first open turns it into a segment, under the
write lock and in one transaction; the old file goes only after that commits."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy.orm import Session

from . import repository as repo
from .models import StoreStateRow
from .segment_set import legacy_files, segment_path, write_segment_file
from .segments import FLAT


def convert(session: Session, directory: Path, state: StoreStateRow, *, now: datetime) -> Path | None:
    """Write the legacy index of the committed generation as a segment (not yet committed);
    returns the new segment file, or None when there is nothing to convert. A legacy file that
    cannot be read is left for ``check`` to report and ``check --repair`` to rebuild."""
    if repo.segment_infos(session):
        return None
    path = legacy_files(directory).get(int(state.generation))
    if path is None:
        return None
    try:
        index = faiss.read_index(str(path))
        id_map = faiss.downcast_index(index)
        ids = faiss.vector_to_array(id_map.id_map).astype(np.int64)
        vectors = id_map.index.reconstruct_n(0, index.ntotal) if index.ntotal else None
    except (RuntimeError, AttributeError):
        return None
    if vectors is None or not len(ids) or len(np.unique(ids)) != len(ids):
        return None
    order = np.argsort(ids)
    ids, vectors = ids[order], np.ascontiguousarray(vectors[order], dtype=np.float32)
    row = repo.insert_segment(session, kind=FLAT, ids=ids, now=now)
    target = segment_path(directory, row.id)
    row.bytes, row.sha256 = write_segment_file(target, ids, vectors, FLAT)
    session.flush()
    return target
