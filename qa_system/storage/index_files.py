"""Generation-named index files: ``<store>/index/vectors-<generation>.faiss`` + ``.json``.

The SQL ``store_state.generation`` names the one index file that matches the SQL rows. Files of
other generations are left-overs of an interrupted write (newer) or of a crash right after a
commit (older); they are deleted while the database write lock is held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..vector_index import IndexFileError, IndexManifest, VectorIndex, manifest_path

INDEX_DIR = "index"
_NAME = re.compile(r"^vectors-(\d+)\.(faiss|json)$")


def index_directory(store_directory: Path) -> Path:
    return Path(store_directory) / INDEX_DIR


def generation_path(store_directory: Path, generation: int) -> Path:
    return index_directory(store_directory) / f"vectors-{generation:08d}.faiss"


def generations_on_disk(store_directory: Path) -> set[int]:
    directory = index_directory(store_directory)
    if not directory.is_dir():
        return set()
    found: set[int] = set()
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.add(int(match.group(1)))
    return found


def remove_generation(store_directory: Path, generation: int) -> None:
    path = generation_path(store_directory, generation)
    manifest_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def remove_other_generations(store_directory: Path, keep: int) -> list[int]:
    """Delete index files of every generation but ``keep`` (and stale temp files)."""
    removed = sorted(generations_on_disk(store_directory) - {keep})
    for generation in removed:
        remove_generation(store_directory, generation)
    directory = index_directory(store_directory)
    if directory.is_dir():
        for temp in directory.glob(".vectors-*.tmp"):
            temp.unlink(missing_ok=True)
    return removed


def index_bytes(store_directory: Path, generation: int) -> int:
    path = generation_path(store_directory, generation)
    return path.stat().st_size if path.exists() else 0


@dataclass(frozen=True)
class LoadedGeneration:
    """An index read from disk, with every problem found on the way (empty index if unreadable)."""

    index: VectorIndex
    manifest: IndexManifest | None
    problems: tuple[str, ...]


def load_generation(
    store_directory: Path, generation: int, *, embedding_model: str, dimension: int
) -> LoadedGeneration:
    """Read the index of ``generation``; generation 0 (nothing ever written) is an empty index."""
    path = generation_path(store_directory, generation)
    if generation == 0 and not path.exists() and not manifest_path(path).exists():
        return LoadedGeneration(VectorIndex(dimension), None, ())
    try:
        index, manifest = VectorIndex.load(path)
    except IndexFileError as e:
        return LoadedGeneration(VectorIndex(dimension), None, (f"index generation {generation}: {e}",))
    problems: list[str] = []
    if manifest.embedding_model != embedding_model:
        problems.append(f"{path.name} was built with {manifest.embedding_model!r}, the store uses "
                        f"{embedding_model!r}")
    if index.dimension != dimension:
        problems.append(f"{path.name} has dimension {index.dimension}, the store uses {dimension}")
        index = VectorIndex(dimension)
    return LoadedGeneration(index, manifest, tuple(problems))


def remove_older_generations(store_directory: Path, *, below: int) -> list[int]:
    """Delete index files of generations older than ``below`` (safe without the write lock:
    no writer ever writes a generation older than the committed one)."""
    removed = sorted(g for g in generations_on_disk(store_directory) if g < below)
    for generation in removed:
        remove_generation(store_directory, generation)
    return removed
