"""How metadata values are stored in SQL and matched by filters (pure functions).

Each value is stored as text plus its type. Filters match on ``(value_type, value_lookup)``:
the lookup is the text itself when it is short and a SHA-256 digest otherwise, so the
``(key, value_lookup)`` index stays small on every database however long the values are.
Numbers match across int/float (``3`` matches ``3.0``); strings never match numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from ..errors import InputError
from ..types import MetadataValue
from .models import METADATA_KEY_LENGTH

DIGEST_PREFIX = "sha256:"
# Texts up to 64 characters are their own lookup; digest lookups are 71 characters long (at most
# METADATA_LOOKUP_LENGTH), so a literal lookup and a digest lookup can never be equal.
_LITERAL_MAX = 64


def lookup_key(text: str) -> str:
    if len(text) <= _LITERAL_MAX:
        return text
    return DIGEST_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_value(value: MetadataValue) -> tuple[str, str]:
    """``(value_type, text)`` of a metadata value."""
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, int):
        return "int", str(value)
    if isinstance(value, float):
        return "float", repr(value)
    if isinstance(value, str):
        return "str", value
    raise InputError(f"metadata values must be str, int, float or bool, got {type(value).__name__}")


def decode_value(value_type: str, text: str) -> MetadataValue:
    if value_type == "bool":
        return text == "true"
    if value_type == "int":
        return int(text)
    if value_type == "float":
        return float(text)
    return text


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > METADATA_KEY_LENGTH:
        raise InputError(f"metadata keys must be non-empty strings of at most "
                         f"{METADATA_KEY_LENGTH} characters, got {key!r}")
    return key


def filter_candidates(value: MetadataValue) -> list[tuple[str, str]]:
    """The ``(value_type, value_lookup)`` pairs a filter value matches."""
    value_type, text = encode_value(value)
    pairs = [(value_type, lookup_key(text))]
    if value_type == "int" and abs(int(value)) < 2**53:
        pairs.append(("float", repr(float(value))))
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        pairs.append(("int", str(int(value))))
    return pairs


#: Metadata filters: every key must match; a list value means any of its values.
Filters = Mapping[str, MetadataValue | Sequence[MetadataValue]]


def intersect_filters(first: Filters | None, second: Filters | None,
                      ) -> dict[str, MetadataValue | list[MetadataValue]] | None:
    """Filters that match exactly the documents both ``first`` and ``second`` match (None: no
    filter at all). A key in both keeps the values of ``second`` that match a value of ``first``
    by the store's rules (``3`` matches ``3.0``, ``"3"`` matches neither); none left is an empty
    list, which matches nothing."""
    if not first:
        return dict(second) if second else None
    combined: dict[str, MetadataValue | list[MetadataValue]] = dict(first)
    for key, wanted in (second or {}).items():
        if key not in combined:
            combined[key] = wanted
            continue
        allowed = {pair for value in filter_values(combined[key]) for pair in filter_candidates(value)}
        combined[key] = [v for v in filter_values(wanted) if allowed.intersection(filter_candidates(v))]
    return combined


def filter_values(wanted: MetadataValue | Sequence[MetadataValue]) -> list[MetadataValue]:
    """A filter's value as the list of values it accepts (a scalar: itself)."""
    return [wanted] if isinstance(wanted, (str, int, float, bool)) else list(wanted)
