"""Document metadata: what the file says (type, path, modification time) and what an upload adds.

Metadata is a flat JSON object of strings and numbers. Filters compare it by equality, with a
number and its text the same value (``--where year=2020`` matches ``{"year": 2020}``), since a
command line and a query string only carry text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from corpus.errors import CorpusError

Value = str | int | float
Metadata = dict[str, Value]

# keys citeqa sets itself; an upload may not set them
RESERVED = ("type", "title", "pages", "path", "modified")
MAX_KEYS = 64
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 1_000
MAX_INT = 2**53  # integers beyond this are not exact as JSON numbers in most clients

TYPES = {".htm": "html", ".markdown": "md"}  # file suffix -> type, where they differ


def file_type(suffix: str) -> str:
    """The ``type`` of a file with this suffix: ``pdf``, ``docx``, ``html``, ``md``, ``txt``, …"""
    suffix = suffix.lower()
    return TYPES.get(suffix, suffix.lstrip("."))


def modified(timestamp: float) -> dict[str, str]:
    """``{"modified": <ISO 8601 UTC, to the second>}`` for a file's modification time, or nothing
    for a time no calendar date can hold."""
    try:
        return {"modified": datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    except (ValueError, OverflowError, OSError):
        return {}


def check_unicode(value: str, what: str) -> str:
    """``value``, or ``CorpusError`` when it holds a lone surrogate (JSON allows them; UTF-8 does not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CorpusError(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def check_value(key: str, value: object) -> Value:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CorpusError(f"metadata {key!r}: values are strings or numbers, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CorpusError(f"metadata {key!r}: {value} is not a finite number")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise CorpusError(f"metadata {key!r}: integers are at most 2**53 in size; send a larger one as text")
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise CorpusError(f"metadata {key!r}: longer than {MAX_VALUE_CHARS} characters")
        check_unicode(value, f"metadata {key!r}")
    return value


def check_metadata(raw: object, allow_reserved: bool = False) -> Metadata:
    """``raw`` as metadata; raises ``CorpusError`` saying what is wrong with it.

    An upload may not set the keys citeqa sets itself (``RESERVED``), unless ``allow_reserved``.
    """
    if not isinstance(raw, Mapping):
        raise CorpusError(f"metadata must be a JSON object of strings and numbers, not {type(raw).__name__}")
    if len(raw) > MAX_KEYS:
        raise CorpusError(f"metadata has {len(raw)} keys; at most {MAX_KEYS}")
    out: Metadata = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.strip() or key != key.strip() or len(key) > MAX_KEY_CHARS:
            raise CorpusError(
                f"metadata keys are non-empty strings of at most {MAX_KEY_CHARS} characters, "
                "without spaces at either end"
            )
        check_unicode(key, "a metadata key")
        if key in RESERVED and not allow_reserved:
            raise CorpusError(f"metadata {key!r} is set by citeqa (reserved: {', '.join(RESERVED)})")
        out[key] = check_value(key, value)
    return out


def canonical(value: Value) -> str:
    """The form equality compares: numbers by value (2020 = 2020.0 = "2020"), strings as they are."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else repr(value)


def matches(metadata: Mapping[str, Value], where: Mapping[str, Value]) -> bool:
    """Whether ``metadata`` has every key of ``where`` with an equal value."""
    return all(k in metadata and canonical(metadata[k]) == canonical(v) for k, v in where.items())


def parse_where(pairs: list[str]) -> Metadata:
    """``["type=pdf", "year=2020"]`` (the CLI's ``--where``) as a ``where`` object of strings."""
    where: Metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CorpusError(f"--where {pair!r}: expected key=value")
        if key in where:
            raise CorpusError(f"--where {pair!r}: {key!r} is given twice (all conditions must hold)")
        where[key] = value
    return where
