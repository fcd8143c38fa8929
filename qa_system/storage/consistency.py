"""Comparing the SQL chunk ids with the live vectors of the segment files.

:func:`read_segments` opens each live segment file named by SQL and (for a full check) compares
its SHA-256 with the recorded one; :func:`build_report` compares ids. Pure apart from reading
the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .durable import file_sha256
from .records import ConsistencyReport
from .segment_set import segment_path
from .segments import Segment, SegmentFileError, SegmentInfo


def duplicate_ids(ids: np.ndarray) -> np.ndarray:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1]


@dataclass(frozen=True)
class SegmentReading:
    """The segments that could be read and trusted, and what was wrong with the others."""

    segments: tuple[Segment, ...]
    problems: tuple[str, ...]


def read_segments(directory: Path, infos: list[SegmentInfo], dimension: int, *,
                  verify_hashes: bool) -> SegmentReading:
    good: list[Segment] = []
    problems: list[str] = []
    for info in infos:
        path = segment_path(directory, info.id)
        try:
            segment = Segment.open(path, info, dimension)
            if verify_hashes and file_sha256(path) != info.sha256:
                raise SegmentFileError(f"{path.name} does not match the store's record (sha256 differs)")
        except SegmentFileError as e:
            problems.append(f"segment {info.id}: {e}")
            continue
        except OSError as e:
            problems.append(f"segment {info.id}: cannot read {path.name}: {e.strerror or e}")
            continue
        good.append(segment)
    return SegmentReading(tuple(good), tuple(problems))


def build_report(*, sql_ids: np.ndarray, sql_generation: int, state_chunk_count: int,
                 reading: SegmentReading, tombstones: np.ndarray) -> ConsistencyReport:
    parts = [s.ids() for s in reading.segments]
    stored = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    problems = list(reading.problems)
    duplicates = duplicate_ids(stored)
    if len(duplicates):
        problems.append(f"{len(duplicates)} vector ids occur more than once in the segments "
                        f"(e.g. {duplicates[:10].tolist()})")
    if not reading.problems:
        unheld = np.setdiff1d(tombstones, stored)
        if len(unheld):
            problems.append(f"{len(unheld)} tombstones name vectors no segment holds "
                            f"(e.g. {unheld[:10].tolist()})")
    if state_chunk_count != len(sql_ids):
        problems.append(f"store_state.chunk_count is {state_chunk_count}, "
                        f"but there are {len(sql_ids)} chunk rows")
    live = np.setdiff1d(stored, tombstones)
    return ConsistencyReport(
        sql_chunks=len(sql_ids),
        index_vectors=len(live),
        missing_vectors=tuple(int(i) for i in np.setdiff1d(sql_ids, live)),
        orphan_vectors=tuple(int(i) for i in np.setdiff1d(live, sql_ids)),
        manifest_problems=tuple(problems),
        sql_generation=sql_generation,
        index_generation=None if reading.problems else sql_generation,
    )
