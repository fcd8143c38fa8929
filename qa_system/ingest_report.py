"""What an ingest did, in numbers that add up.

Files: every entry the scan met is one of *read* (parsed; its documents counted below), *failed*
(not parsed, or not readable: a broken symbolic link, a folder that cannot be listed) or
*unsupported* (a type ``ingest`` does not read, found inside a folder; skipped). Documents:
every document read is one of *added*, *updated* (new text, or only a new title or metadata),
*unchanged* (already stored as given) or *failed* (nothing to index, or removed by another
writer meanwhile).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

FILE, DOCUMENT = "file", "document"


@dataclass(frozen=True)
class IngestFailure:
    source: str
    reason: str
    kind: str = FILE  # FILE: the file (or folder entry) was not read; DOCUMENT: one document was not stored


@dataclass(frozen=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0  # already stored with the same text, title and metadata
    failed: tuple[IngestFailure, ...] = ()
    files: int = 0  # entries found: files_read + files_failed + len(unsupported)
    files_read: int = 0
    unsupported: tuple[str, ...] = ()  # files skipped for their type, in scan order
    chunks_added: int = 0
    chunks_removed: int = 0
    commits: int = 0  # store writes that changed something
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        """Deprecated name of :attr:`unchanged`."""
        warnings.warn("IngestReport.skipped is deprecated; use IngestReport.unchanged", DeprecationWarning,
                      stacklevel=2)
        return self.unchanged

    @property
    def unsupported_files(self) -> int:
        return len(self.unsupported)

    @property
    def files_failed(self) -> int:
        return sum(f.kind == FILE for f in self.failed)

    @property
    def documents_failed(self) -> int:
        return sum(f.kind == DOCUMENT for f in self.failed)

    @property
    def documents(self) -> int:
        """Documents read from the files: added + updated + unchanged + documents_failed."""
        return self.added + self.updated + self.unchanged + self.documents_failed

    def unsupported_by_extension(self) -> dict[str, int]:
        """Skipped files per extension (``(none)`` without one), most first."""
        counts = Counter(PurePath(p).suffix.lower() or "(none)" for p in self.unsupported)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def problem(self) -> str | None:
        """Why nothing was ingested, when not one file could be read; else None."""
        if self.documents or self.files_read:
            return None
        if not self.files:
            return "no files found in the given paths"
        if not self.files_failed:
            return f"none of the {self.files} files found is of a supported type ({self._unsupported_counts()})"
        if not self.unsupported:
            return f"all {self.files} files found failed"
        return (f"of the {self.files} files found, {self.files_failed} failed and {len(self.unsupported)} are "
                f"of unsupported types ({self._unsupported_counts()})")

    def summary(self) -> str:
        documents = (
            f"{self.documents} documents: {self.added} added, {self.updated} updated, {self.unchanged} "
            f"unchanged, {self.documents_failed} failed; {self.chunks_added} chunks added, "
            f"{self.chunks_removed} removed; {self.commits} commit{'' if self.commits == 1 else 's'} in "
            f"{self.seconds:.1f}s"
        )
        if not self.files and self.documents:  # documents given directly, not files
            return documents
        files = f"{self.files} files: {self.files_read} read, {self.files_failed} failed"
        if self.unsupported:
            files += f", {len(self.unsupported)} skipped as unsupported ({self._unsupported_counts()})"
        return f"{files}\n{documents}"

    def _unsupported_counts(self) -> str:
        return ", ".join(f"{n} {ext}" for ext, n in self.unsupported_by_extension().items())

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus the derived counts, for JSON."""
        return {
            **asdict(self), "documents": self.documents, "files_failed": self.files_failed,
            "documents_failed": self.documents_failed,
            "unsupported_by_extension": self.unsupported_by_extension(), "problem": self.problem(),
        }
