"""`run_server`: the service under uvicorn (what ``qa-system serve`` runs).

One worker serves an app built here from the settings. Several workers are separate processes
that uvicorn starts from the import string of a factory (``qa_system.service.app:app_from_env``),
so the settings travel as ``QA_SYSTEM_*`` environment variables; the workers share one store
(SQLite file or PostgreSQL) and each picks up the others' writes within a few seconds.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import ENV_PREFIX, Settings, load_settings
from ..errors import ConfigError
from .settings import load_service_settings

FACTORY = "qa_system.service.app:app_from_env"


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging setup, plus the package's own loggers on the same handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["qa_system"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def export_settings(settings: Settings) -> None:
    """Put every setting into ``QA_SYSTEM_*`` variables, for worker processes to read."""
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        if f.name == "store_dir":
            value = Path(value).resolve()
        os.environ[ENV_PREFIX + f.name.upper()] = str(value)


def run_server(*, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               store_dir: str | Path | None = None, db_url: str | None = None,
               settings: Settings | None = None, log_level: str = "info",
               vector_backend: str | None = None) -> None:
    """Serve until interrupted. ``store_dir``/``db_url``/``vector_backend`` override the
    environment's settings."""
    import uvicorn

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {port}")
    service = load_service_settings()  # fail early on bad QA_SYSTEM_* service variables
    if settings is None:
        settings = load_settings(store_dir=Path(store_dir) if store_dir is not None else None, db_url=db_url,
                                 vector_backend=vector_backend)
    if workers == 1:
        from .app import create_app

        app = create_app(settings, service_settings=service)
        uvicorn.run(app, host=host, port=port, log_config=log_config(log_level), log_level=log_level)
        return

    export_settings(settings)
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="qa-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                    log_config=log_config(log_level), log_level=log_level)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
