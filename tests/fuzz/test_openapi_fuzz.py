"""Schemathesis against the app's own OpenAPI spec, in-process (ASGI), on the fake system.

Every operation gets generated valid and invalid requests (bounded: MAX_EXAMPLES each, well
under a minute in all). Schemathesis's default checks apply: no 5xx, documented status codes,
content types, headers and response schemas, valid data accepted, invalid data and invalid API
keys rejected. One app runs with API keys (the requests carry the write key), one without.
No model is loaded.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from qa_system.config import Settings
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from qa_system.types import Document
from tests.unit.test_service_fakes import FakeSystem

MAX_EXAMPLES = int(os.environ.get("QA_SYSTEM_FUZZ_EXAMPLES", "25"))  # more: a longer hunt
WRITE_KEY = "fuzz-write-key"


def make_app(**service: object):  # type: ignore[no-untyped-def]
    fake = FakeSystem(Settings(max_question_chars=200))
    fake.ingest_documents([Document(source="api:seed", text="The Plus plan costs 8 dollars per month.")])
    limits = ServiceSettings(max_body_bytes=64 * 1024, max_upload_bytes=64 * 1024)
    return create_app(system=fake, service_settings=limits.with_overrides(**service), background_load=False)


with_keys = schemathesis.openapi.from_asgi(
    "/openapi.json", make_app(api_keys_read=("fuzz-read-key",), api_keys_write=(WRITE_KEY,)))
open_app = schemathesis.openapi.from_asgi("/openapi.json", make_app())
fuzz_settings = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def call_and_validate(case: schemathesis.Case, headers: dict[str, str] | None = None) -> None:
    """``case.call_and_validate`` with allowances the spec cannot express: a schema-valid upload
    may be of a type the service refuses (415); a multipart form field is a string on the wire
    whatever type the generator meant, so "invalid" form data cannot be told from valid; and a
    413 (body over the size limit) is a rejection too; feedback's span must lie in its document
    (a 400 otherwise), which no schema can say."""
    response = case.call(headers=headers)
    assert response.status_code < 500, response.text
    excluded = []
    if case.media_type == "multipart/form-data":
        excluded += [positive_data_acceptance, negative_data_rejection]
    elif case.path == "/v1/feedback" and response.status_code == 400:
        excluded.append(positive_data_acceptance)
    elif response.status_code == 413:
        excluded.append(negative_data_rejection)
    case.validate_response(response, headers=headers, excluded_checks=excluded)


@with_keys.parametrize()
@fuzz_settings
def test_api_with_keys(case: schemathesis.Case) -> None:
    call_and_validate(case, {"Authorization": f"Bearer {WRITE_KEY}", "X-API-Key": WRITE_KEY})


@open_app.parametrize()
@fuzz_settings
def test_api_without_keys(case: schemathesis.Case) -> None:
    call_and_validate(case)
