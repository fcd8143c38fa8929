"""Tenant scopes: how a key's filter combines with a request's, and how scopes are configured."""

from __future__ import annotations

import pytest

from qa_system.errors import ConfigError
from qa_system.service.auth import Access, caller_of
from qa_system.service.settings import ServiceSettings, load_service_settings
from qa_system.storage.codec import intersect_filters

SCOPE = {"tenant": "acme"}


@pytest.mark.parametrize("request_filters, combined", [
    (None, {"tenant": "acme"}),
    ({}, {"tenant": "acme"}),
    ({"area": "billing"}, {"tenant": "acme", "area": "billing"}),
    ({"tenant": "globex"}, {"tenant": []}),  # matches nothing
    ({"tenant": ["globex", "acme"]}, {"tenant": ["acme"]}),
])
def test_a_request_can_narrow_the_scope_never_widen_it(request_filters: dict | None, combined: dict) -> None:
    assert intersect_filters(SCOPE, request_filters) == combined


def test_values_match_by_the_stores_rules() -> None:
    assert intersect_filters({"year": 2024}, {"year": [2024.0, "2024", 2023]}) == {"year": [2024.0]}
    assert intersect_filters({"flag": True}, {"flag": 1}) == {"flag": []}  # 1 is not True in the store
    assert intersect_filters({"tenant": ["a", "b"]}, {"tenant": "b"}) == {"tenant": ["b"]}
    assert intersect_filters(None, {"x": 1}) == {"x": 1} and intersect_filters(None, None) is None


def test_a_caller_with_several_keys_is_confined_by_each() -> None:
    settings = ServiceSettings(api_keys_read=("a-key", "b-key", "open"), api_key_scopes={
        "a-key": {"tenant": ["acme", "globex"]}, "b-key": {"tenant": "globex"}})
    assert caller_of(settings, ["a-key", "b-key"], Access.READ).scope == {"tenant": ["globex"]}
    assert caller_of(settings, ["open", "a-key"], Access.READ).scope == {"tenant": ["acme", "globex"]}
    assert caller_of(settings, ["open"], Access.READ).scope is None


@pytest.mark.parametrize("scopes, words", [
    ({"w-key": {"tenant": "acme"}}, "must be one of api_keys_read"),
    ({"nobody": {"tenant": "acme"}}, "must be one of api_keys_read"),
    ({"r-key": {}}, "non-empty JSON object"),
    ({"r-key": {"tenant": []}}, "non-empty list"),
    ({"r-key": {"tenant": {"nested": 1}}}, "must name a metadata key and a value"),
])
def test_bad_scopes_are_refused_with_the_reason(scopes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ServiceSettings(api_keys_read=("r-key",), api_keys_write=("w-key",)).with_overrides(api_key_scopes=scopes)


def test_scopes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SYSTEM_API_KEYS_READ", "r-key")
    monkeypatch.setenv("QA_SYSTEM_API_KEY_SCOPES", '{"r-key": {"tenant": "acme"}}')
    assert load_service_settings().api_key_scopes == {"r-key": {"tenant": "acme"}}
    monkeypatch.setenv("QA_SYSTEM_API_KEY_SCOPES", "{not json")
    with pytest.raises(ConfigError, match="API_KEY_SCOPES is not valid JSON"):
        load_service_settings()
