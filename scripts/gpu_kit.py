#!/usr/bin/env python3
"""Move training data to a lent GPU machine and a trained model back, within its transfer limits.

The lent machine (docs/training.md, "On a lent GPU") receives the working tree plus carried paths,
64 MiB in all per call (the tree itself is about 48 MiB, most of it the shipped reader), sees no
``../shared`` and no package index, and returns at most 8 files of 16 MiB from ``$OUT``. So:

    # here: the datasets the reader recipes read, as one xz tar (about 12 MiB), in an ignored folder
    python3 scripts/gpu_kit.py pack-data --datasets ../shared/datasets --out .gpu_kit
    # there (carry .gpu_kit): unpack, checked against the manifest
    python3 scripts/gpu_kit.py unpack-data .gpu_kit /tmp/datasets
    # there: a trained model folder as fp16 pieces of at most 15 MiB under $OUT
    python3 scripts/gpu_kit.py export-model RUN/model "$OUT" --name student
    # here: the pieces back into a model folder, checked against their manifest
    python3 scripts/gpu_kit.py import-model FILES_AT --name student --out runs/v5/student

Every piece is listed with its size and SHA-256 in a manifest; unpacking or importing refuses a
missing, short or altered piece and writes nothing then (the destination appears only when whole).
Standard library only, except that export-model needs torch and safetensors (there, as here).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: What the reader recipes (qa_system/training/recipe.py) read under --datasets.
RECIPE_DATASETS = ("squad", "squadshifts", "policyqa", "subjqa")
PIECE_MIB = 15
MANIFEST = "manifest.json"


class KitError(Exception):
    """A kit that cannot be packed, unpacked or imported as asked."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_xz(root: Path, members: Iterable[str]) -> bytes:
    """``members`` (paths under ``root``) as an xz-compressed tar, entries in a fixed order and
    without owners or times, so the same files give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            top = root / member
            for path in sorted([top, *(top.rglob("*") if top.is_dir() else ())]):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return lzma.compress(raw.getvalue(), preset=6)


def write_pieces(data: bytes, out: Path, name: str, piece_mib: int, extra: dict | None = None) -> dict:
    """``data`` cut into ``NAME.partNN`` files of at most ``piece_mib`` MiB in ``out``, with
    ``NAME.manifest.json`` (each piece's size and SHA-256, and the whole's)."""
    if piece_mib <= 0:
        raise KitError(f"piece size must be positive, got {piece_mib} MiB")
    out.mkdir(parents=True, exist_ok=True)
    size = piece_mib * 1024 * 1024
    pieces = []
    for i, lo in enumerate(range(0, max(len(data), 1), size)):
        piece = data[lo: lo + size]
        file = f"{name}.part{i:02d}"
        (out / file).write_bytes(piece)
        pieces.append({"file": file, "bytes": len(piece), "sha256": sha256(piece)})
    manifest = {"name": name, "bytes": len(data), "sha256": sha256(data), "pieces": pieces, **(extra or {})}
    (out / f"{name}.{MANIFEST}").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_pieces(folder: Path, name: str) -> tuple[bytes, dict]:
    """The whole that `write_pieces` cut, after checking every piece and the whole against the
    manifest (KitError names the first piece that is missing, short or altered)."""
    manifest_path = folder / f"{name}.{MANIFEST}"
    if not manifest_path.is_file():
        raise KitError(f"{manifest_path}: no manifest (is {folder} the folder the pieces came to?)")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = [(p["file"], p["bytes"], p["sha256"]) for p in manifest["pieces"]]
    except (ValueError, KeyError, TypeError) as e:
        raise KitError(f"{manifest_path}: not a manifest of gpu_kit.py ({e})") from e
    parts = []
    for file, size, digest in listed:
        path = folder / file
        if not path.is_file():
            raise KitError(f"{path}: missing (expected {len(listed)} pieces)")
        data = path.read_bytes()
        if len(data) != size or sha256(data) != digest:
            raise KitError(f"{path}: {len(data)} bytes that do not match the manifest "
                           f"({size} bytes, sha256 {digest[:12]}...)")
        parts.append(data)
    whole = b"".join(parts)
    if sha256(whole) != manifest["sha256"]:
        raise KitError(f"{folder}: the pieces of {name} join into other bytes than were packed")
    return whole, manifest


def extract_into(data: bytes, dest: Path) -> None:
    """Extract an xz tar into ``dest``, which appears only once everything is there."""
    if dest.exists():
        raise KitError(f"{dest} exists: give a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data)), mode="r") as tar:
            tar.extractall(work, filter="data")
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def pack_data(datasets: Path, out: Path, piece_mib: int) -> dict:
    missing = [d for d in RECIPE_DATASETS if not (datasets / d).is_dir()]
    if missing:
        raise KitError(f"{datasets}: no {', '.join(missing)} (give the shared datasets folder)")
    return write_pieces(tar_xz(datasets, RECIPE_DATASETS), out, "datasets", piece_mib)


def export_model(model: Path, out: Path, name: str, piece_mib: int) -> dict:
    """The model folder with its floating-point weights in fp16, as an xz tar in pieces."""
    import torch
    from safetensors.torch import load_file, save_file

    if not (model / "config.json").is_file():
        raise KitError(f"{model}: not a model folder (no config.json)")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(model, staged, ignore=shutil.ignore_patterns("*.bin", "optimizer*", "checkpoint*"))
        for weights in staged.glob("*.safetensors"):
            tensors = load_file(str(weights))
            half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
            save_file(half, str(weights), metadata={"format": "pt"})
            del tensors, half
        names = sorted(p.name for p in staged.iterdir())
        return write_pieces(tar_xz(staged, names), out, name, piece_mib,
                            extra={"files": names, "dtype": "float16", "torch": torch.__version__})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack-data", help="the recipes' datasets as pieces in an ignored folder")
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--out", type=Path, default=Path(".gpu_kit"))
    p.add_argument("--piece-mib", type=int, default=PIECE_MIB)
    p = sub.add_parser("unpack-data", help="pieces back into a datasets folder (checked)")
    p.add_argument("kit", type=Path)
    p.add_argument("dest", type=Path)
    p = sub.add_parser("export-model", help="a model folder as fp16 pieces (e.g. under $OUT)")
    p.add_argument("model", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--name", default="model")
    p.add_argument("--piece-mib", type=int, default=PIECE_MIB)
    p = sub.add_parser("import-model", help="pieces back into a model folder (checked)")
    p.add_argument("pieces", type=Path)
    p.add_argument("--name", default="model")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack-data":
            m = pack_data(args.datasets, args.out, args.piece_mib)
        elif args.command == "unpack-data":
            data, m = read_pieces(args.kit, "datasets")
            extract_into(data, args.dest)
        elif args.command == "export-model":
            m = export_model(args.model, args.out, args.name, args.piece_mib)
        else:
            data, m = read_pieces(args.pieces, args.name)
            extract_into(data, args.out)
    except KitError as e:
        print(f"gpu_kit: {e}", file=sys.stderr)
        return 1
    print(f"{args.command}: {m['name']}, {m['bytes'] / 2**20:.1f} MiB in {len(m['pieces'])} pieces, "
          f"sha256 {m['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
