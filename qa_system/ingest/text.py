"""Reading bytes and decoding text, with the checks every loader shares."""

from __future__ import annotations

import codecs
import stat
from pathlib import Path
from typing import BinaryIO

from ..errors import DocumentParseError

_BLOCK_BYTES = 1024 * 1024


def format_size(n_bytes: int) -> str:
    """``"12.3 MB"`` (MiB) for sizes from 0.1 MB, else ``"123 bytes"``."""
    megabytes = n_bytes / (1024 * 1024)
    return f"{megabytes:.1f} MB" if megabytes >= 0.1 else f"{n_bytes} bytes"


def file_size(path: Path, source: str, max_file_bytes: int) -> int:
    """The size of a regular file; DocumentParseError if unreadable, empty or over ``max_file_bytes``."""
    try:
        info = path.stat()
    except OSError as e:
        raise read_error(source, e) from e
    if stat.S_ISDIR(info.st_mode):
        raise DocumentParseError(source, "is a folder, not a file")
    if info.st_size > max_file_bytes:
        raise _too_large(source, info.st_size, max_file_bytes)
    if info.st_size == 0:
        raise DocumentParseError(source, "file is empty")
    return info.st_size


def open_binary(path: Path, source: str) -> BinaryIO:
    """``path`` opened for reading bytes; DocumentParseError naming the reason if it cannot be."""
    try:
        return path.open("rb")
    except PermissionError as e:
        raise DocumentParseError(source, "cannot read file: permission denied") from e
    except IsADirectoryError as e:
        raise DocumentParseError(source, "is a folder, not a file") from e
    except OSError as e:
        raise read_error(source, e) from e


def read_bytes(path: Path, source: str, max_file_bytes: int) -> bytes:
    """The file's bytes; DocumentParseError if unreadable, empty or over ``max_file_bytes``."""
    file_size(path, source, max_file_bytes)
    with open_binary(path, source) as f:
        try:
            data = f.read(max_file_bytes + 1)
        except OSError as e:
            raise read_error(source, e) from e
    if len(data) > max_file_bytes:  # the file grew after stat()
        raise _too_large(source, len(data), max_file_bytes)
    if not data:
        raise DocumentParseError(source, "file is empty")
    return data


def check_utf8_file(path: Path, source: str, max_file_bytes: int) -> None:
    """Read the whole file in blocks, failing it as :func:`decode_utf8` and :func:`require_text` would.

    Lets record files be parsed incrementally afterwards while keeping the encoding policy
    whole-file: a file with one bad byte fails before any of its records is used.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    has_text = False
    with open_binary(path, source) as f:
        while True:
            try:
                block = f.read(_BLOCK_BYTES)
            except OSError as e:
                raise read_error(source, e) from e
            if b"\x00" in block:
                raise DocumentParseError(source, "binary or not UTF-8 (contains NUL bytes)")
            pending = len(decoder.getstate()[0])
            try:
                decoded = decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                at = offset - pending + e.start
                raise DocumentParseError(
                    source, f"binary or not UTF-8 (invalid byte 0x{e.object[e.start]:02x} at offset {at})"
                ) from e
            has_text = has_text or bool(decoded.replace("\ufeff", "").strip())
            offset += len(block)
            if offset > max_file_bytes:
                raise _too_large(source, offset, max_file_bytes)
            if not block:
                break
    if not has_text:
        raise DocumentParseError(source, "no text found in file")


def read_error(source: str, error: OSError) -> DocumentParseError:
    """The failure of a file that could not be read (stat, open or read)."""
    return DocumentParseError(source, f"cannot read file: {error.strerror or error}")


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
