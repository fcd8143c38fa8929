"""Documents from an HTTP request: JSON documents, or uploaded files of the types `ingest` reads.

Uploaded files are written to a private temporary folder under generated names
(``upload-000.md``: only the extension of the client's file name is kept) and parsed by the same
loaders as ``qa-system ingest``. The client's file name is never used as a path. A file's
documents get the source label ``upload:<digest>/<name>``: the first 16 hex digits of the SHA-256
of its bytes, and a sanitised copy of its name (``...#<record-id>`` for the records of a JSON
lines/JSON/CSV file). So two different files of the same name are two documents, and uploading the
same file again changes nothing. A client that wants to replace a document gives the file an
``id`` (form field ``id``, one per file, in the order of the files): its source is then
``api:<id>``, as for a JSON document with that id, and uploading another file with that id
replaces it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import BinaryIO

from ..errors import DocumentParseError
from ..ingest import load_file_result, source_path
from ..ingestion import IngestFailure
from ..types import Document, content_hash
from .errors import ApiError
from .schemas import ID_PATTERN, MAX_ID_CHARS, DocumentIn

COPY_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LABEL_CHARS = 200
DIGEST_CHARS = 16


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its stream, the extension kept, its sanitised name, and the client's
    ``id`` for it (None: the source is derived from its content and name)."""

    stream: BinaryIO
    extension: str
    name: str
    document_id: str | None = None


@dataclass(frozen=True)
class ParsedUploads:
    documents: tuple[Document, ...]
    failed: tuple[IngestFailure, ...]


def safe_name(client_name: str | None) -> str:
    """The last path component of a client file name, reduced to ``[A-Za-z0-9._-]``."""
    raw = client_name or ""
    base = PureWindowsPath(PurePosixPath(raw).name).name  # drop any folder part, / or \
    cleaned = _UNSAFE.sub("_", base).strip("._")[:MAX_LABEL_CHARS]
    return cleaned or "upload"


def extension_of(client_name: str | None) -> str:
    return PurePosixPath(safe_name(client_name)).suffix.lower()


def check_upload(client_name: str | None, allowed: Sequence[str]) -> tuple[str, str]:
    """``(extension, sanitised name)`` of an upload, or a 415 when its type is not allowed."""
    ext = extension_of(client_name)
    if ext not in allowed:
        raise ApiError(415, f"unsupported upload type {ext or '(no extension)'!r}; allowed: "
                            f"{' '.join(sorted(allowed))}")
    return ext, safe_name(client_name)


def check_upload_ids(ids: Sequence[str], n_files: int) -> list[str | None]:
    """The client's ``id`` for each of ``n_files`` files (form fields ``id``, in order; an empty
    one: none). None given: none for every file. Other counts, bad or repeated ids are refused."""
    if not ids:
        return [None] * n_files
    if len(ids) != n_files:
        raise ApiError(400, f"give one form field `id` per file (an empty one for none), or none: "
                            f"got {len(ids)} for {n_files} files")
    checked: list[str | None] = []
    for number, value in enumerate(ids, 1):
        if value == "":
            checked.append(None)
        elif len(value) > MAX_ID_CHARS or not re.fullmatch(ID_PATTERN, value):
            raise ApiError(422, f"id {number} must be at most {MAX_ID_CHARS} characters, not blank, "
                                "without control characters")
        elif value in checked:
            raise ApiError(409, f"two uploaded files have the id {value!r}", type="Conflict")
        else:
            checked.append(value)
    return checked


def parse_uploads(uploads: Sequence[Upload], *, max_file_bytes: int, csv_text_column: str = "text",
                  csv_title_column: str | None = None) -> ParsedUploads:
    """Save the uploads to a private folder and parse them (blocking: run it in a thread).

    Raises a 413 if a file is larger than ``max_file_bytes``; parse failures are reported per file.
    """
    folder = Path(tempfile.mkdtemp(prefix="qa-upload-"))  # mode 0700: only this user can read it
    try:
        documents: list[Document] = []
        failed: list[IngestFailure] = []
        for i, upload in enumerate(uploads):
            path = folder / f"upload-{i:03d}{upload.extension}"
            digest = _save(upload.stream, path, max_file_bytes, upload.name)
            label = (f"api:{upload.document_id}" if upload.document_id is not None
                     else f"upload:{digest[:DIGEST_CHARS]}/{upload.name}")
            try:
                loaded = load_file_result(path, max_file_bytes=max_file_bytes, csv_text_column=csv_text_column,
                                          csv_title_column=csv_title_column)
            except DocumentParseError as e:
                failed.append(IngestFailure(label, _relabel(e.reason, source_path(path), label)))
                continue
            documents.extend(_relabelled(d, source_path(path), label) for d in loaded.documents)
        return ParsedUploads(tuple(documents), tuple(failed))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _save(stream: BinaryIO, path: Path, max_file_bytes: int, name: str) -> str:
    """Copy the upload to ``path``; the SHA-256 of its bytes (hex)."""
    written = 0
    digest = hashlib.sha256()
    with path.open("xb") as out:
        while chunk := stream.read(COPY_CHUNK):
            written += len(chunk)
            if written > max_file_bytes:
                raise ApiError(413, f"{name}: the file is larger than the limit of {max_file_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _relabel(text: str, path: str, label: str) -> str:
    return text.replace(path, label)


def _relabelled(doc: Document, path: str, label: str) -> Document:
    metadata = {k: (_relabel(v, path, label) if isinstance(v, str) else v) for k, v in doc.metadata.items()}
    return replace(doc, source=_relabel(doc.source, path, label), metadata=MappingProxyType(metadata))


def documents_from_json(items: Sequence[DocumentIn]) -> tuple[list[Document], int]:
    """Documents of a JSON ingest request, and how many exact repeats were dropped.

    The source is ``api:<id>``, or ``api:sha256:<hash of the text>`` without an id. Two documents
    with one source but different text, title or metadata are a 409.
    """
    by_source: dict[str, Document] = {}
    repeats = 0
    for item in items:
        source = f"api:{item.id}" if item.id is not None else f"api:sha256:{content_hash(item.text)[:32]}"
        doc = Document(source=source, text=item.text, title=item.title,
                       metadata=MappingProxyType(dict(item.metadata or {})))
        previous = by_source.get(source)
        if previous is not None:
            if previous != doc:
                raise ApiError(409, f"two different documents of the request have the source {source!r}",
                               type="Conflict")
            repeats += 1
            continue
        by_source[source] = doc
    return list(by_source.values()), repeats
