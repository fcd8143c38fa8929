"""Input files to documents: find files, parse each format, report what failed or was skipped."""

from __future__ import annotations

from .files import SUPPORTED_EXTENSIONS, FileScan, is_supported, iter_input_files, scan_input_files
from .loaders import FileDocuments, iter_file_documents, load_file, load_file_result, source_path
from .records import LoadResult

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "FileDocuments",
    "FileScan",
    "LoadResult",
    "is_supported",
    "iter_file_documents",
    "iter_input_files",
    "load_file",
    "load_file_result",
    "scan_input_files",
    "source_path",
]
