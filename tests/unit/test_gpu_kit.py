"""scripts/gpu_kit.py: datasets to a lent GPU machine and a trained model back, in checked pieces."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import gpu_kit  # noqa: E402


def _datasets(root: Path) -> Path:
    for i, name in enumerate(gpu_kit.RECIPE_DATASETS):
        (root / name / "deeper").mkdir(parents=True)
        (root / name / "deeper" / "data.json").write_text(json.dumps({"n": i, "text": "ab" * 5000 * (i + 1)}))
    (root / "qed").mkdir()
    (root / "qed" / "not-needed.json").write_text("{}")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_datasets_travel_in_pieces_and_come_back_equal(tmp_path: Path) -> None:
    source = _datasets(tmp_path / "shared")
    manifest = gpu_kit.pack_data(source, tmp_path / "kit", piece_mib=1)
    assert [p["file"] for p in manifest["pieces"]] == ["datasets.part00"]
    data, _ = gpu_kit.read_pieces(tmp_path / "kit", "datasets")
    gpu_kit.extract_into(data, tmp_path / "there")
    expected = {k: v for k, v in _files(source).items() if not k.startswith("qed/")}
    assert _files(tmp_path / "there") == expected  # the recipes' folders only, byte for byte


def test_the_same_files_pack_to_the_same_bytes(tmp_path: Path) -> None:
    source = _datasets(tmp_path / "shared")
    first = gpu_kit.pack_data(source, tmp_path / "a", piece_mib=1)
    second = gpu_kit.pack_data(source, tmp_path / "b", piece_mib=1)
    assert first["sha256"] == second["sha256"]


@pytest.mark.parametrize("damage", ["missing", "altered", "short"])
def test_a_damaged_piece_is_refused_and_nothing_is_written(tmp_path: Path, damage: str) -> None:
    data = bytes(range(256)) * 12000  # about 3 MiB: three pieces of 1 MiB
    gpu_kit.write_pieces(data, tmp_path / "kit", "blob", piece_mib=1)
    piece = tmp_path / "kit" / "blob.part01"
    if damage == "missing":
        piece.unlink()
    elif damage == "altered":
        piece.write_bytes(b"x" + piece.read_bytes()[1:])
    else:
        piece.write_bytes(piece.read_bytes()[:-1])
    with pytest.raises(gpu_kit.KitError, match="blob.part01"):
        gpu_kit.read_pieces(tmp_path / "kit", "blob")
    assert gpu_kit.main(["import-model", str(tmp_path / "kit"), "--name", "blob", "--out", str(tmp_path / "m")]) == 1
    assert not (tmp_path / "m").exists()


def test_a_manifest_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blob.manifest.json").write_text("{not json")
    with pytest.raises(gpu_kit.KitError, match="not a manifest"):
        gpu_kit.read_pieces(tmp_path, "blob")


def test_pack_data_names_what_the_folder_lacks(tmp_path: Path) -> None:
    (tmp_path / "squad").mkdir()
    with pytest.raises(gpu_kit.KitError, match="squadshifts, policyqa, subjqa"):
        gpu_kit.pack_data(tmp_path, tmp_path / "kit", piece_mib=1)


def test_a_model_comes_back_in_fp16_with_its_files(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForQuestionAnswering

    config = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForQuestionAnswering(config).save_pretrained(tmp_path / "run" / "model")
    (tmp_path / "run" / "model" / "qa_system_reader.json").write_text('{"no_answer_threshold": 2.5}')
    original = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))

    manifest = gpu_kit.export_model(tmp_path / "run" / "model", tmp_path / "OUT", "student", piece_mib=1)
    assert manifest["dtype"] == "float16" and "qa_system_reader.json" in manifest["files"]
    assert gpu_kit.main(["import-model", str(tmp_path / "OUT"), "--name", "student",
                         "--out", str(tmp_path / "back")]) == 0
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    assert set(back) == set(original)
    for name, tensor in original.items():
        assert back[name].dtype == torch.float16
        assert torch.equal(back[name], tensor.half())
    assert json.loads((tmp_path / "back" / "qa_system_reader.json").read_text()) == {"no_answer_threshold": 2.5}
    assert BertForQuestionAnswering.from_pretrained(tmp_path / "back").config.hidden_size == 32
