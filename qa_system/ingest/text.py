"""Reading bytes and decoding text, with the checks every loader shares."""

from __future__ import annotations

from pathlib import Path

from ..errors import DocumentParseError


def format_size(n_bytes: int) -> str:
    """``"12.3 MB"`` (MiB) for sizes from 0.1 MB, else ``"123 bytes"``."""
    megabytes = n_bytes / (1024 * 1024)
    return f"{megabytes:.1f} MB" if megabytes >= 0.1 else f"{n_bytes} bytes"


def read_bytes(path: Path, source: str, max_file_bytes: int) -> bytes:
    """The file's bytes; DocumentParseError if unreadable, empty or over ``max_file_bytes``."""
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            raise _too_large(source, size, max_file_bytes)
        with path.open("rb") as f:
            data = f.read(max_file_bytes + 1)
    except PermissionError as e:
        raise DocumentParseError(source, "cannot read file: permission denied") from e
    except IsADirectoryError as e:
        raise DocumentParseError(source, "is a folder, not a file") from e
    except OSError as e:
        raise DocumentParseError(source, f"cannot read file: {e.strerror or e}") from e
    if len(data) > max_file_bytes:  # the file grew after stat()
        raise _too_large(source, len(data), max_file_bytes)
    if not data:
        raise DocumentParseError(source, "file is empty")
    return data


def _too_large(source: str, size: int, limit: int) -> DocumentParseError:
    return DocumentParseError(source, f"file is {format_size(size)}, limit is {format_size(limit)}")


def decode_utf8(data: bytes, source: str) -> str:
    """UTF-8 text (a leading BOM is dropped); DocumentParseError for binary or other encodings."""
    if b"\x00" in data:
        raise DocumentParseError(source, "binary or not UTF-8 (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start]
        raise DocumentParseError(
            source, f"binary or not UTF-8 (invalid byte 0x{bad:02x} at offset {e.start})"
        ) from e


def normalize_text(text: str) -> str:
    """Newlines to ``\\n`` and NUL characters removed; nothing else changes."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "")


def require_text(text: str, source: str, what: str = "file") -> str:
    """``text`` unchanged; DocumentParseError when it is only whitespace."""
    if not text.strip():
        raise DocumentParseError(source, f"no text found in {what}")
    return text
