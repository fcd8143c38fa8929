"""The service's pure parts: settings, keys, upload names, queueing, the CLI and server wiring."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("fastapi")

from qa_system.cli import build_parser
from qa_system.cli import main as cli_main
from qa_system.config import Settings
from qa_system.errors import ConfigError
from qa_system.service.auth import Access, authorize_request, grant, presented_keys
from qa_system.service.errors import ApiError
from qa_system.service.metrics import Metrics
from qa_system.service.settings import ServiceSettings, load_service_settings
from qa_system.service.state import ServiceState
from qa_system.service.uploads import Upload, check_upload, parse_uploads, safe_name


# ----------------------------------------------------------------------------- settings

def test_service_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SYSTEM_API_KEYS_READ", " r1, r2 ,,")
    monkeypatch.setenv("QA_SYSTEM_API_KEYS_WRITE", "w1")
    monkeypatch.setenv("QA_SYSTEM_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("QA_SYSTEM_UPLOAD_EXTENSIONS", "md, .PDF")
    monkeypatch.setenv("QA_SYSTEM_READY_CHECK_INTERVAL_S", "2.5")
    s = load_service_settings(ask_concurrency=3)
    assert s.api_keys_read == ("r1", "r2") and s.api_keys_write == ("w1",)
    assert s.max_body_bytes == 1234 and s.upload_extensions == (".md", ".pdf")
    assert s.ready_check_interval_s == 2.5 and s.ask_concurrency == 3 and s.auth_enabled


@pytest.mark.parametrize("env", [
    {"QA_SYSTEM_MAX_BODY_BYTES": "lots"},
    {"QA_SYSTEM_MAX_BODY_BYTES": "0"},
    {"QA_SYSTEM_UPLOAD_EXTENSIONS": ".exe"},
    {"QA_SYSTEM_ASK_CONCURRENCY": "-1"},
])
def test_bad_service_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError):
        load_service_settings()


def test_defaults_are_open_and_unknown_overrides_refused() -> None:
    assert not ServiceSettings().auth_enabled
    with pytest.raises(ConfigError):
        ServiceSettings().with_overrides(nonsense=1)


# --------------------------------------------------------------------------------- auth

KEYED = ServiceSettings(api_keys_read=("r",), api_keys_write=("w",))


def test_grant() -> None:
    assert grant(KEYED, "w") is Access.WRITE and grant(KEYED, "r") is Access.READ
    assert grant(KEYED, "x") is None and grant(KEYED, None) is None and grant(KEYED, "") is None


def test_presented_keys() -> None:
    assert presented_keys("Bearer abc", None) == ["abc"]
    assert presented_keys("bearer  abc ", "k") == ["abc", "k"]
    assert presented_keys("Basic abc", None) == [None]
    assert presented_keys(None, None) == []


@pytest.mark.parametrize("keys,needed,status", [
    ([], Access.READ, 401), ([None], Access.READ, 401), (["x"], Access.READ, 401),
    (["r"], Access.READ, None), (["w"], Access.READ, None), (["r"], Access.WRITE, 403),
    (["w"], Access.WRITE, None), (["w", "x"], Access.WRITE, 401), (["w", "r"], Access.WRITE, 403),
])
def test_authorize_request(keys: list[str | None], needed: Access, status: int | None) -> None:
    if status is None:
        authorize_request(KEYED, keys, needed)
    else:
        with pytest.raises(ApiError) as e:
            authorize_request(KEYED, keys, needed)
        assert e.value.status_code == status
    authorize_request(ServiceSettings(), keys, needed)  # no keys configured: always open


# ------------------------------------------------------------------------------ uploads

@pytest.mark.parametrize("name,expected", [
    ("notes.md", "notes.md"), ("../../etc/passwd.md", "passwd.md"), ("C:\\Users\\x\\a b.txt", "a_b.txt"),
    ("/abs/path/r\u00e9sum\u00e9.pdf", "r_sum_.pdf"), ("..", "upload"), ("", "upload"), (None, "upload"),
    ("x" * 500 + ".md", "x" * 200),
])
def test_safe_name(name: str | None, expected: str) -> None:
    assert safe_name(name) == expected


def test_check_upload() -> None:
    assert check_upload("../a/Guide.MD", (".md",)) == (".md", "upload:Guide.MD")
    with pytest.raises(ApiError) as e:
        check_upload("a.exe", (".md",))
    assert e.value.status_code == 415


def test_parse_uploads_relabels_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uploads = [Upload(io.BytesIO(b"# T\n\nBody text."), ".md", "upload:a.md"),
               Upload(io.BytesIO(b'{"id": 7, "text": "Rec."}\n'), ".jsonl", "upload:r.jsonl"),
               Upload(io.BytesIO(b""), ".txt", "upload:empty.txt")]
    parsed = parse_uploads(uploads, max_file_bytes=10_000)
    assert [d.source for d in parsed.documents] == ["upload:a.md", "upload:r.jsonl#7"]
    assert all(v == d.source.split("#")[0] for d in parsed.documents for k, v in d.metadata.items()
               if k == "source_path")
    assert [f.source for f in parsed.failed] == ["upload:empty.txt"]
    assert list(tmp_path.iterdir()) == []  # the private folder is gone
    with pytest.raises(ApiError) as e:
        parse_uploads([Upload(io.BytesIO(b"x" * 101), ".txt", "upload:big.txt")], max_file_bytes=100)
    assert e.value.status_code == 413
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ queueing

def test_questions_beyond_the_queue_get_503() -> None:
    release = threading.Event()
    state = ServiceState(Settings(), ServiceSettings(ask_concurrency=1, ask_queue=1), Metrics())
    outcomes: list[Any] = []

    async def main() -> None:
        state.start(background=False)  # no system: the load fails, but the limiters exist

        async def one() -> None:
            try:
                outcomes.append(await state.run_ask(lambda: release.wait(10)))
            except ApiError as e:
                outcomes.append(e.status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
            await anyio.sleep(0.2)
            release.set()

    anyio.run(main)
    assert sorted(outcomes, key=str) == [503, True, True]
    assert state.metrics.ask_rejected._value.get() == 1


# --------------------------------------------------------------------------- CLI, server

def test_serve_parser_defaults_and_options() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.store, args.db_url) == ("127.0.0.1", 8000, 1, None, None)
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "3",
                                      "--store", "/s", "--db-url", "sqlite:///x"])
    assert (args.host, args.port, args.workers, str(args.store), args.db_url) == (
        "0.0.0.0", 9000, 3, "/s", "sqlite:///x")


def test_cmd_serve_calls_run_server(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("qa_system.service.server.run_server", lambda **kw: calls.append(kw))
    assert cli_main(["serve", "--port", "8123", "--workers", "2", "--store", "st"]) == 0
    assert calls[0]["port"] == 8123 and calls[0]["workers"] == 2 and str(calls[0]["store_dir"]) == "st"


def test_run_server_one_worker_passes_the_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from qa_system.service import server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    server.run_server(port=8001, store_dir=tmp_path)
    assert not isinstance(seen["app"], str) and seen["port"] == 8001 and seen["host"] == "127.0.0.1"
    assert seen["app"].state.qa.settings.store_dir == tmp_path


def test_run_server_workers_use_the_factory_and_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    import uvicorn

    from qa_system.service import server

    # run_server exports the settings into os.environ: give it a copy that the test throws away
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        seen.update(app=app, env=dict(os.environ), metrics_dir_exists=Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir(), **kw)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    settings = Settings(store_dir=tmp_path / "s", db_url="sqlite:////tmp/x.sqlite3", top_k_reader=7)
    server.run_server(workers=3, settings=settings)
    assert seen["app"] == "qa_system.service.app:app_from_env" and seen["factory"] is True and seen["workers"] == 3
    env = seen["env"]
    assert env["QA_SYSTEM_STORE_DIR"] == str((tmp_path / "s").resolve())
    assert env["QA_SYSTEM_DB_URL"] == "sqlite:////tmp/x.sqlite3" and env["QA_SYSTEM_TOP_K_READER"] == "7"
    assert seen["metrics_dir_exists"] and not Path(env["PROMETHEUS_MULTIPROC_DIR"]).exists()  # removed after


def test_run_server_refuses_bad_arguments() -> None:
    from qa_system.service.server import run_server

    with pytest.raises(ConfigError):
        run_server(workers=0)
    with pytest.raises(ConfigError):
        run_server(port=70000)
