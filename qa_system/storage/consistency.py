"""Comparing the SQL chunk ids with the vector ids of an index file (pure functions)."""

from __future__ import annotations

import numpy as np

from .index_files import LoadedGeneration
from .records import ConsistencyReport


def duplicate_ids(ids: np.ndarray) -> np.ndarray:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1]


def build_report(
    *, sql_ids: np.ndarray, sql_generation: int, state_chunk_count: int, loaded: LoadedGeneration
) -> ConsistencyReport:
    index_ids = loaded.index.ids()
    problems = list(loaded.problems)
    duplicates = duplicate_ids(index_ids)
    if len(duplicates):
        problems.append(f"{len(duplicates)} vector ids occur more than once in the index "
                        f"(e.g. {duplicates[:10].tolist()})")
    if state_chunk_count != len(sql_ids):
        problems.append(f"store_state.chunk_count is {state_chunk_count}, "
                        f"but there are {len(sql_ids)} chunk rows")
    return ConsistencyReport(
        sql_chunks=len(sql_ids),
        index_vectors=len(index_ids),
        missing_vectors=tuple(int(i) for i in np.setdiff1d(sql_ids, index_ids)),
        orphan_vectors=tuple(int(i) for i in np.setdiff1d(index_ids, sql_ids)),
        manifest_problems=tuple(problems),
        sql_generation=sql_generation,
        index_generation=loaded.manifest.generation if loaded.manifest is not None else (
            0 if sql_generation == 0 and not loaded.problems else None),
    )
