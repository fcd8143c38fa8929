"""Settings of the HTTP layer (API keys, limits, concurrency), from ``QA_SYSTEM_*`` variables.

They sit beside the package's `Settings` (store, models, question limit) and are built the same
way: by a function, never at import time. Variables:

==================================  =============================================  ==============
variable                            meaning                                        default
==================================  =============================================  ==============
``QA_SYSTEM_API_KEYS_READ``         comma-separated keys for the read endpoints    (none: open)
``QA_SYSTEM_API_KEYS_WRITE``        comma-separated keys for every endpoint        (none: open)
``QA_SYSTEM_API_KEY_SCOPES``        JSON: read key -> the metadata filter it is    (none)
                                    confined to, e.g. ``{"k1": {"tenant": "acme"}}``
``QA_SYSTEM_MAX_BODY_BYTES``        largest JSON request body                      2 MiB
``QA_SYSTEM_MAX_UPLOAD_BYTES``      largest multipart upload (all files together)  20 MiB
``QA_SYSTEM_MAX_UPLOAD_FILES``      most files in one upload                       20
``QA_SYSTEM_MAX_DOCUMENTS``         most documents in one JSON ingest request      500
``QA_SYSTEM_UPLOAD_EXTENSIONS``     comma-separated upload types, e.g. ``.md,.pdf``  every type
                                                                                   ``ingest`` reads
``QA_SYSTEM_ASK_CONCURRENCY``       batches of questions answered at the same time 2
``QA_SYSTEM_ASK_BATCH_SIZE``        most waiting questions answered in one batch   8
``QA_SYSTEM_ASK_QUEUE``             questions allowed to wait for a slot           64
``QA_SYSTEM_READY_CHECK_INTERVAL_S``  how long /readyz reuses a store check        30
==================================  =============================================  ==============

When any key is configured, the ``/v1`` read endpoints need a read or a write key and the write
endpoints a write key; ``/healthz``, ``/readyz`` and ``/metrics`` stay open.

A scoped key (``QA_SYSTEM_API_KEY_SCOPES``) sees only the documents its filter matches: every
search made with it (the page, /v1/ask, document reads, feedback) is confined to them, ANDed with
the filters the request sends. Only read keys can be scoped; write keys administer the whole store.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import ENV_PREFIX
from ..errors import ConfigError
from ..ingest import SUPPORTED_EXTENSIONS

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    api_keys_read: tuple[str, ...] = ()
    api_keys_write: tuple[str, ...] = ()
    max_body_bytes: int = 2 * MiB
    max_upload_bytes: int = 20 * MiB
    max_upload_files: int = 20
    max_documents: int = 500
    upload_extensions: tuple[str, ...] = tuple(sorted(SUPPORTED_EXTENSIONS))
    ask_concurrency: int = 2
    ask_batch_size: int = 8
    ask_queue: int = 64
    ready_check_interval_s: float = 30.0
    #: read key -> the metadata filter every request made with it obeys (tenancy)
    api_key_scopes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys_read or self.api_keys_write)

    def with_overrides(self, **overrides: Any) -> ServiceSettings:
        """A copy with every override that is not None applied, validated."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown service settings: {sorted(unknown)}")
        return _validated(replace(self, **changes))


def _keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _extensions(raw: str) -> tuple[str, ...]:
    exts = []
    for item in _keys(raw):
        ext = item.lower() if item.startswith(".") else "." + item.lower()
        exts.append(ext)
    return tuple(sorted(set(exts)))


def _coerce(name: str, raw: str, template: Any) -> Any:
    if name.startswith("api_keys_"):
        return _keys(raw)
    if name == "api_key_scopes":
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ConfigError(f"{ENV_PREFIX}API_KEY_SCOPES is not valid JSON: {e}") from e
    if name == "upload_extensions":
        return _extensions(raw)
    try:
        if isinstance(template, float):
            return float(raw)
        return int(raw)
    except ValueError as e:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid value") from e


def _validated(settings: ServiceSettings) -> ServiceSettings:
    for name in ("max_body_bytes", "max_upload_bytes", "max_upload_files", "max_documents",
                 "ask_concurrency", "ask_batch_size", "ask_queue"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(settings, name)}")
    if settings.ready_check_interval_s < 0:
        raise ConfigError("ready_check_interval_s must not be negative")
    unknown = set(settings.upload_extensions) - SUPPORTED_EXTENSIONS
    if unknown:
        raise ConfigError(f"upload_extensions: {sorted(unknown)} cannot be ingested "
                          f"(supported: {' '.join(sorted(SUPPORTED_EXTENSIONS))})")
    for key in settings.api_keys_read + settings.api_keys_write:
        if any(c.isspace() for c in key) or not key.isprintable():
            raise ConfigError("API keys must be printable and contain no spaces")
    _check_scopes(settings)
    return settings


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))


def _check_scopes(settings: ServiceSettings) -> None:
    """Each scope: a read key (not also a write key) -> a non-empty filter of metadata keys to a
    value or a non-empty list of values."""
    if not isinstance(settings.api_key_scopes, Mapping):
        raise ConfigError("api_key_scopes must map API keys to metadata filters")
    for key, scope in settings.api_key_scopes.items():
        shown = f"{key[:4]}..." if isinstance(key, str) else repr(key)
        if key not in settings.api_keys_read or key in settings.api_keys_write:
            raise ConfigError(f"api_key_scopes: the key {shown} must be one of api_keys_read (and not a write key: "
                              "write keys administer the whole store)")
        if not isinstance(scope, Mapping) or not scope:
            raise ConfigError(f"api_key_scopes: the scope of {shown} must be a non-empty JSON object, "
                              'e.g. {"tenant": "acme"}')
        for name, wanted in scope.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if not name or not values or not all(_is_scalar(v) for v in values):
                raise ConfigError(f"api_key_scopes: {shown}: {name!r} must name a metadata key and a value "
                                  "(text, number or boolean) or a non-empty list of them")


def load_service_settings(**overrides: Any) -> ServiceSettings:
    """Defaults, then ``QA_SYSTEM_*`` environment variables, then ``overrides``."""
    base = ServiceSettings()
    from_env: dict[str, Any] = {}
    for f in fields(ServiceSettings):
        raw = os.environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw.strip() != "":
            from_env[f.name] = _coerce(f.name, raw, getattr(base, f.name))
    return base.with_overrides(**from_env).with_overrides(**overrides)
