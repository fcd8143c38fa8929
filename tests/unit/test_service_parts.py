"""The service's pure parts: settings, keys, upload names, queueing, the CLI and server wiring."""

from __future__ import annotations

import hashlib
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
from qa_system.service.batching import AskBatcher, QueueFull
from qa_system.service.errors import ApiError
from qa_system.service.metrics import Metrics
from qa_system.service.settings import ServiceSettings, load_service_settings
from qa_system.service.state import AskJob, ServiceState
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
    assert check_upload("../a/Guide.MD", (".md",)) == (".md", "Guide.MD")
    with pytest.raises(ApiError) as e:
        check_upload("a.exe", (".md",))
    assert e.value.status_code == 415


def test_parse_uploads_relabels_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uploads = [Upload(io.BytesIO(b"# T\n\nBody text."), ".md", "a.md"),
               Upload(io.BytesIO(b'{"id": 7, "text": "Rec."}\n'), ".jsonl", "r.jsonl", document_id="notes"),
               Upload(io.BytesIO(b""), ".txt", "empty.txt")]
    parsed = parse_uploads(uploads, max_file_bytes=10_000)
    md = hashlib.sha256(b"# T\n\nBody text.").hexdigest()[:16]
    assert [d.source for d in parsed.documents] == [f"upload:{md}/a.md", "api:notes#7"]
    assert all(v == d.source.split("#")[0] for d in parsed.documents for k, v in d.metadata.items()
               if k == "source_path")
    assert [f.source for f in parsed.failed] == [f"upload:{hashlib.sha256(b'').hexdigest()[:16]}/empty.txt"]
    assert list(tmp_path.iterdir()) == []  # the private folder is gone
    with pytest.raises(ApiError) as e:
        parse_uploads([Upload(io.BytesIO(b"x" * 101), ".txt", "big.txt")], max_file_bytes=100)
    assert e.value.status_code == 413
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ queueing

def test_questions_beyond_the_queue_get_503() -> None:
    release = threading.Event()
    state = ServiceState(Settings(), ServiceSettings(ask_concurrency=1, ask_queue=1, ask_batch_size=1), Metrics())
    outcomes: list[Any] = []

    async def main() -> None:
        state.start(background=False)  # no system: the load fails, but the batcher exists
        state._asks._run_batch = lambda jobs: [release.wait(10) for _ in jobs]  # type: ignore[union-attr]

        async def one() -> None:
            try:
                outcomes.append(await state.ask(AskJob("q")))
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


class _Recorder:
    """run_batch for AskBatcher: records each batch, blocks until released, answers payload * 10."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, payloads: list[int]) -> list[int]:
        self.batches.append(list(payloads))
        self.release.wait(10)
        if self.fail_on in payloads:
            raise ValueError(f"bad payload {self.fail_on}")
        return [p * 10 for p in payloads]


def _submit_all(batcher: AskBatcher, recorder: _Recorder, jobs: list[tuple[str, int]]) -> dict[int, Any]:
    """Submit jobs in order (the first gets the slot), then release the worker."""
    out: dict[int, Any] = {}

    async def one(key: str, payload: int) -> None:
        try:
            out[payload] = await batcher.submit(key, payload)
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            out[payload] = e

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for key, payload in jobs:
                tg.start_soon(one, key, payload)
                await anyio.sleep(0.02)  # arrival order
            await anyio.sleep(0.1)
            recorder.release.set()

    anyio.run(main)
    return out


def test_batcher_answers_waiting_questions_together_by_key_and_in_order() -> None:
    rec = _Recorder()
    batcher = AskBatcher(rec, slots=1, max_batch=3, queue=10)
    jobs = [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("a", 5), ("a", 6), ("b", 7)]
    out = _submit_all(batcher, rec, jobs)
    assert out == {p: p * 10 for _, p in jobs}  # every question gets its own answer
    # 1 ran alone (a free slot: no waiting); then the oldest waiting question leads each batch
    # and takes up to 2 more of its key.
    assert rec.batches == [[1], [2, 4, 5], [3, 7], [6]]
    assert batcher.waiting == 0 and batcher._running == 0


def test_batcher_gives_every_question_of_a_failed_batch_the_error() -> None:
    rec = _Recorder(fail_on=3)
    batcher = AskBatcher(rec, slots=1, max_batch=8, queue=10)
    out = _submit_all(batcher, rec, [("a", 1), ("a", 2), ("a", 3), ("b", 4)])
    assert rec.batches == [[1], [2, 3], [4]]
    assert out[1] == 10 and out[4] == 40
    assert isinstance(out[2], ValueError) and isinstance(out[3], ValueError)
    assert batcher._running == 0


def test_batcher_refuses_beyond_the_queue_and_survives_a_cancelled_waiter() -> None:
    rec = _Recorder()
    batcher = AskBatcher(rec, slots=1, max_batch=1, queue=2)
    out: dict[int, Any] = {}

    async def one(payload: int) -> None:
        try:
            out[payload] = await batcher.submit("k", payload)
        except QueueFull as e:
            out[payload] = e

    scopes: list[anyio.CancelScope] = []

    async def leaves(payload: int) -> None:  # a client that disconnects while waiting
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            out[payload] = await batcher.submit("k", payload)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 1)
            await anyio.sleep(0.02)
            tg.start_soon(leaves, 2)
            await anyio.sleep(0.02)
            tg.start_soon(one, 3)
            await anyio.sleep(0.02)
            tg.start_soon(one, 4)  # queue (2) full: refused
            await anyio.sleep(0.02)
            scopes[0].cancel()
            await anyio.sleep(0.02)
            rec.release.set()

    anyio.run(main)
    assert isinstance(out[4], QueueFull) and 2 not in out
    assert out[1] == 10 and out[3] == 30
    assert rec.batches == [[1], [3]]
    assert batcher._running == 0 and batcher.waiting == 0


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
        metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        seen.update(app=app, env=dict(os.environ), metrics_dir_exists=metrics_dir.is_dir(), **kw)

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


def test_questions_share_a_batch_only_with_the_same_retrieval_settings() -> None:
    base = AskJob("a", 5, 3, {"area": "billing"}, 0.3)
    assert AskJob("b", 5, 3, {"area": "billing"}, 0.3).key == base.key
    for other in (AskJob("a", 5, 3, {"area": "billing"}, 0.0), AskJob("a", 5, 3, {"area": "billing"}),
                  AskJob("a", 6, 3, {"area": "billing"}, 0.3), AskJob("a", 5, 3, None, 0.3)):
        assert other.key != base.key
