"""Find the input files named by the user: files as given, folders walked recursively."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentParseError, InputError

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".docx", ".jsonl", ".json", ".csv"}
)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class FileScan:
    """What a scan found.

    ``files``: absolute, symlink-resolved paths in a deterministic order, each once. A file named
    explicitly is listed even when its type is unsupported, so that ``load_file`` reports it as a
    failure like any other bad file. ``skipped_unsupported``: files with an unsupported extension
    found inside folders (not loaded). ``errors``: folders that could not be listed and broken
    symbolic links met while walking.
    """

    files: tuple[Path, ...]
    skipped_unsupported: tuple[Path, ...] = ()
    errors: tuple[DocumentParseError, ...] = ()

    def __iter__(self) -> Iterator[Path]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def scan_input_files(paths: Sequence[str | os.PathLike[str]]) -> FileScan:
    """Collect input files from ``paths``; raises InputError for a path that does not exist.

    Folders are walked depth-first with entries sorted by name; hidden entries (name starting
    with ``.``, e.g. ``.git``) inside folders are skipped; symbolic links are followed, each
    folder visited once (loops are safe).
    """
    walker = _Walker()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            kind = "broken symbolic link" if path.is_symlink() else "no such file or folder"
            raise InputError(f"{raw}: {kind}")
        if path.is_dir():
            walker.walk(path.resolve())
        elif path.is_file():
            walker.add(path.resolve())
        else:
            walker.errors.append(DocumentParseError(str(raw), "not a regular file or folder"))
    return FileScan(tuple(walker.files), tuple(walker.skipped), tuple(walker.errors))


def iter_input_files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files of :func:`scan_input_files`, without the skip/error report."""
    yield from scan_input_files(paths).files


class _Walker:
    def __init__(self) -> None:
        self.files: list[Path] = []
        self.skipped: list[Path] = []
        self.errors: list[DocumentParseError] = []
        self._seen_files: set[Path] = set()
        self._seen_dirs: set[tuple[int, int]] = set()

    def add(self, path: Path) -> None:
        if path not in self._seen_files:
            self._seen_files.add(path)
            self.files.append(path)

    def walk(self, root: Path) -> None:
        """Depth-first, entries in name order (a sub-folder's files come at its name's place)."""
        stack = [iter(self._list(root))]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
            elif not entry.name.startswith("."):
                subdir = self._visit(Path(entry.path), entry)
                if subdir is not None:
                    stack.append(iter(self._list(subdir)))

    def _list(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            info = folder.stat()
            key = (info.st_dev, info.st_ino)
            if key in self._seen_dirs:
                return []
            self._seen_dirs.add(key)
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.errors.append(DocumentParseError(folder.as_posix(),
                                                  f"cannot read folder: {e.strerror or e}"))
            return []

    def _visit(self, path: Path, entry: os.DirEntry[str]) -> Path | None:
        """Record a file entry; return the path of a folder entry to walk into."""
        try:
            is_dir = entry.is_dir()
            is_file = entry.is_file()
        except OSError as e:
            self.errors.append(DocumentParseError(path.as_posix(), f"cannot read: {e.strerror}"))
            return None
        if is_dir:
            return path
        if is_file:
            if is_supported(path):
                self.add(path.resolve())
            else:
                self.skipped.append(path)
        elif entry.is_symlink():
            self.errors.append(DocumentParseError(path.as_posix(), "broken symbolic link"))
        return None
