"""Text of a PDF file with pypdf."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import DependencyError

from ..errors import DocumentParseError
from .text import normalize_text

_MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class PdfText:
    text: str
    title: str | None
    page_count: int


def pdf_to_text(data: bytes, source: str) -> PdfText:
    """Page texts joined with a blank line (pages without text left out) and a title.

    The title is the metadata title, else the first non-empty line. Encrypted PDFs are read
    only when the empty user password opens them. Any failure, including one page whose text
    cannot be extracted, fails the whole file.
    """
    reader = _open(data, source)
    pages: list[str] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            extracted = page.extract_text() or ""
        except Exception as e:  # pypdf raises many exception types on damaged content
            raise DocumentParseError(
                source, f"page {number}: text extraction failed ({type(e).__name__}: {e})"
            ) from e
        page_text = normalize_text(extracted)
        if page_text.strip():
            pages.append(page_text)
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentParseError(source, "PDF has no extractable text (scanned or image-only?)")
    return PdfText(text, _metadata_title(reader) or _first_line(text), len(reader.pages))


def _open(data: bytes, source: str) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentParseError(source, "PDF is encrypted and needs a password")
        len(reader.pages)  # forces the page tree to be parsed, where damage usually shows
        return reader
    except DocumentParseError:
        raise
    except DependencyError as e:
        raise DocumentParseError(
            source, f"PDF is encrypted; decrypting it needs an extra package ({e})"
        ) from e
    except Exception as e:  # pypdf raises many exception types on damaged files
        raise DocumentParseError(
            source, f"not a readable PDF ({type(e).__name__}: {e})"
        ) from e


def _metadata_title(reader: PdfReader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # damaged metadata only costs the title
        return None
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())[:_MAX_TITLE_CHARS]
    return None


def _first_line(text: str) -> str | None:
    for line in text.split("\n"):
        if line.strip():
            return " ".join(line.split())[:_MAX_TITLE_CHARS]
    return None
