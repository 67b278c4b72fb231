"""JSON sent by clients, parsed with limits so no document can crash the parser or what follows.

Python's own parser recurses once per nesting level (thousands of `[` exhaust its stack), turns
an integer of more than 4300 digits into a ValueError, and accepts `NaN`, `Infinity` and lone
UTF-16 surrogates (`"\\ud800"`) that no database or encoder accepts later. Each of these is
refused here with an InvalidRequest naming the field, before any model sees the document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from dataexport.errors import InvalidRequest
from dataexport.field_path import field_path

MAX_DEPTH = 32
# Longer than any number a request needs (a 64-bit integer has 20 characters).
MAX_NUMBER_CHARS = 100

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NESTING_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


@dataclass(frozen=True)
class _Refused:
    """A number or constant the parser met and the walk refuses, where it stands."""

    reason: str


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, counted without parsing it."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(_NESTING_STEP[bracket] for bracket in brackets), default=0)


def load_client_json(text: str, field: str = "") -> Any:
    """`text` parsed; InvalidRequest naming the field (under `field`) that breaks a limit."""
    name = field or "body"
    if nesting_depth(text) > MAX_DEPTH:
        raise InvalidRequest(name, f"{name} nests arrays and objects deeper than {MAX_DEPTH}.")
    try:
        document = json.loads(
            text,
            parse_int=_integer,
            parse_float=_number,
            parse_constant=lambda constant: _Refused(f"{constant} is not a JSON number"),
        )
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            name, f"{name} is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})."
        ) from None
    _check(document, [field] if field else [])
    return document


def _integer(text: str) -> int | _Refused:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else _too_long(text)


def _number(text: str) -> float | _Refused:
    return float(text) if len(text) <= MAX_NUMBER_CHARS else _too_long(text)


def _too_long(text: str) -> _Refused:
    return _Refused(f"a number of {len(text)} characters is longer than {MAX_NUMBER_CHARS}")


def _check(value: Any, location: list[int | str]) -> None:
    # Depth is bounded above, so this recursion is too.
    if isinstance(value, _Refused):
        _refuse(location, value.reason)
    elif isinstance(value, str):
        if not _is_unicode(value):
            _refuse(location, "a lone UTF-16 surrogate is not a character")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, [*location, index])
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _is_unicode(key):
                _refuse(location, "a key holds a lone UTF-16 surrogate")
            _check(item, [*location, key])


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse(location: list[int | str], reason: str) -> None:
    name = field_path(location) or "body"
    raise InvalidRequest(name, f"{name}: {reason}.")
