"""The vector backend's settings: URL option, setting, command-line flags (no database needed)."""

from __future__ import annotations

import pytest

from qa_system.config import load_settings
from qa_system.errors import ConfigError, InputError
from qa_system.storage import Store
from qa_system.storage.engine import create_store_engine
from qa_system.storage.pgvector import split_backend_option


def test_the_url_option_is_read_and_removed() -> None:
    url, backend = split_backend_option("postgresql+psycopg://qa:pw@db:5432/qa?vector_backend=pgvector&sslmode=require")
    assert backend == "pgvector" and "vector_backend" not in url and "sslmode=require" in url and "qa:pw@" in url
    assert split_backend_option("sqlite:////tmp/x.sqlite3") == ("sqlite:////tmp/x.sqlite3", None)
    assert split_backend_option(None) == (None, None)
    # the engine never hands the option to the driver
    engine = create_store_engine("sqlite:////tmp/qa-backend-option.sqlite3?vector_backend=faiss")
    assert "vector_backend" not in str(engine.url)
    engine.dispose()


def test_bad_backends_are_clear_errors(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="vector_backend must be faiss or pgvector"):
        load_settings(vector_backend="annoy")
    monkeypatch.setenv("QA_SYSTEM_VECTOR_BACKEND", "pgvector")
    assert load_settings().vector_backend == "pgvector"
    with pytest.raises(ConfigError, match="needs a PostgreSQL database, not sqlite"):
        Store.open(tmp_path / "s", embedding_model="m", dimension=4, vector_backend="pgvector")
    with pytest.raises(ConfigError, match="unknown vector backend 'annoy'"):
        Store.open(tmp_path / "s", embedding_model="m", dimension=4,
                   db_url=f"sqlite:///{tmp_path / 'x.sqlite3'}?vector_backend=annoy")
    with pytest.raises(InputError, match="the database URL says 'faiss'"):
        Store.open(tmp_path / "s", embedding_model="m", dimension=4, vector_backend="pgvector",
                   db_url=f"sqlite:///{tmp_path / 'x.sqlite3'}?vector_backend=faiss")


def test_search_ef_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().search_ef == 100
    monkeypatch.setenv("QA_SYSTEM_SEARCH_EF", "250")
    assert load_settings().search_ef == 250
    for bad, message in ((0, "search_ef must be positive"), (1001, "at most 1000")):
        with pytest.raises(ConfigError, match=message):
            load_settings(search_ef=bad)


def test_a_sqlite_store_says_faiss(tmp_path) -> None:  # noqa: ANN001
    with Store.open(tmp_path / "s", embedding_model="m", dimension=4, vector_backend="faiss") as store:
        assert store.vector_backend == "faiss"


def test_ray_workers_need_ray(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from qa_system.cli import main

    (tmp_path / "a.txt").write_text("some text", encoding="utf-8")
    code = main(["ingest", str(tmp_path / "a.txt"), "--store", str(tmp_path / "s"), "--ray-workers", "2"])
    assert code != 0 and "--ray-workers needs --ray" in capsys.readouterr().err
