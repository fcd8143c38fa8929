"""The HTTP service: FastAPI app over `QASystem` (``qa-system serve``; needs the ``service`` extra).

    from qa_system.service import create_app
    app = create_app()            # settings from QA_SYSTEM_* variables

See app.py for the routes, settings.py for the service's own settings (API keys, limits).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "run_server", "ServiceSettings", "load_service_settings"]


def __getattr__(name: str) -> Any:  # imported lazily: fastapi/uvicorn load only when used
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "run_server":
        from .server import run_server

        return run_server
    if name in ("ServiceSettings", "load_service_settings"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError(name)
