"""Client JSON: parsed as Python would, except what would crash the parser or what follows."""

from __future__ import annotations

import json

import pytest

from dataexport.client_json import MAX_DEPTH, load_client_json, nesting_depth
from dataexport.errors import InvalidRequest
from dataexport.field_path import field_path


def refused_field(text: str, field: str = "") -> str:
    with pytest.raises(InvalidRequest) as refused:
        load_client_json(text, field)
    return refused.value.field


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "]]"]', 1),  # brackets inside strings do not nest
        ('["\\"[[[", {}]', 2),  # nor after an escaped quote
    ],
)
def test_nesting_depth_counts_only_structure(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_nesting_beyond_the_limit_is_refused_before_parsing() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_client_json(at_limit) == json.loads(at_limit)
    assert refused_field("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) == "body"
    # Thousands deep would exhaust Python's recursion limit in json.loads.
    assert refused_field("[" * 100_000, "filters") == "filters"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"a": ' + "9" * 5000 + "}", "a"),
        ('{"a": [1, {"b": -' + "1" * 200 + "}]}", "a[1].b"),
        ('{"a": 1.' + "5" * 200 + "}", "a"),
        ('{"filters": [{"value": NaN}]}', "filters[0].value"),
        ('{"x": Infinity}', "x"),
        ('{"filters": [{"value": "\\ud800"}]}', "filters[0].value"),
        ('{"list": ["ok", "\\udfff x"]}', "list[1]"),
        ('{"\\ud800": 1}', "body"),
    ],
)
def test_numbers_constants_and_surrogates_are_refused_naming_the_field(
    text: str, field: str
) -> None:
    assert refused_field(text) == field


def test_a_query_parameter_names_its_fields_under_its_own_name() -> None:
    text = '[{"field": "model", "op": "eq", "value": "\\ud800"}]'
    assert refused_field(text, "filters") == "filters[0].value"


def test_text_that_is_not_json_is_refused_naming_the_parameter() -> None:
    assert refused_field("{not json", "options") == "options"
    assert refused_field("") == "body"


def test_ordinary_documents_parse_as_json_loads_does() -> None:
    text = '{"a": [1, -2.5, 1e3, true, null, "é \\ud83d\\ude00"], "b": {"c": 12345678901234567890}}'
    assert load_client_json(text) == json.loads(text)


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ((), ""),
        (("filters", 0, "op"), "filters[0].op"),
        (("aggregate", "measures", 0, "function"), "aggregate.measures[0].function"),
        (("options", "delimiter"), "options.delimiter"),
        ((0, 1), "[0][1]"),
    ],
)
def test_one_field_path_style(location: tuple[int | str, ...], name: str) -> None:
    assert field_path(location) == name
