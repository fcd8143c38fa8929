"""A real uvicorn server on loopback for the HTTP and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from qa_system import QASystem, load_settings
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from qa_system.types import Document
from tests.support import SAMPLE_CORPUS


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.qa: Any = None

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_ready(self.url, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def wait_ready(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url + "/readyz", timeout=5)
            if last.status_code == 200:
                return
        except httpx.TransportError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become ready: {getattr(last, 'text', last)}")


@contextmanager
def sample_service(folder: Path, embedder: Any, reader: Any, *extra: Document) -> Iterator[ServerThread]:
    """The sample corpus and ``extra`` documents in a new store in ``folder``, served with no keys
    (the QASystem is the server's ``qa`` attribute)."""
    system = QASystem(load_settings(store_dir=folder), embedder=embedder, reader=reader).load()
    try:
        assert system.ingest([SAMPLE_CORPUS]).failed == ()
        system.ingest_documents(list(extra))
        with ServerThread(create_app(system=system, service_settings=ServiceSettings())) as server:
            server.qa = system
            yield server
    finally:
        system.close()
