"""Training and the reader run without the store's SQL and FAISS stack.

A lent GPU machine has torch and transformers but neither SQLAlchemy, Alembic nor FAISS (and
carrying them costs part of its 64 MiB), so `train-reader`, `eval-reader` and the reader itself
must import without them; qa_system/__init__.py and qa_system/retrieval/__init__.py load the store
side lazily for that. Each check runs in a fresh interpreter, so what other tests imported does not
count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STORE_STACK = ("sqlalchemy", "alembic", "faiss")


def _loaded_after(module: str) -> list[str]:
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(STORE_STACK)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["qa_system.training.run", "qa_system.training.commands", "qa_system.reader",
                                    "qa_system.confidence", "qa_system.retrieval.fusion"])
def test_training_and_the_reader_import_without_the_store_stack(module: str) -> None:
    assert _loaded_after(module) == []


def test_the_store_retriever_still_loads_on_first_use() -> None:
    loaded = _loaded_after("qa_system.retrieval; qa_system.retrieval.StoreRetriever")
    assert loaded == sorted(STORE_STACK)
