"""Helpers shared by the loader tests (importable as ``tests.loader_support``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.errors import DocumentParseError
from qa_system.ingest import load_file, source_path

LIMIT = 10 * 1024 * 1024


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def load(path: Path, **kwargs: object) -> list:
    limit = kwargs.pop("max_file_bytes", LIMIT)
    return load_file(path, max_file_bytes=limit, **kwargs)  # type: ignore[arg-type]


def parse_error(path: Path, **kwargs: object) -> DocumentParseError:
    with pytest.raises(DocumentParseError) as info:
        load(path, **kwargs)
    assert info.value.source == source_path(path)
    return info.value


def make_pdf(pages: list[str], *, title: str | None = None, password: str | None = None) -> bytes:
    fpdf = pytest.importorskip("fpdf")
    from fpdf.enums import EncryptionMethod

    pdf = fpdf.FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for page in pages:
        pdf.add_page()
        if page:
            pdf.multi_cell(0, 10, page)
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password,
                           encryption_method=EncryptionMethod.RC4)
    return bytes(pdf.output())
