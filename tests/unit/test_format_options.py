"""Options a format does not use are refused by name when a request is made, never stored."""

from __future__ import annotations

from typing import Any

import pytest

from dataexport.catalog.loader import load_catalog
from dataexport.errors import InvalidRequest
from dataexport.export_request import ExportOptionsInput, ExportRequest, resolve_export
from dataexport.formats import FORMATS
from dataexport.identity import Caller, Role

CATALOG = load_catalog()
MEMBER = Caller(user_id="u1", org_id="org_a", role=Role.MEMBER)
DEFAULTS = ExportOptionsInput().model_dump()


def request(format_name: str, options: dict[str, Any]) -> ExportRequest:
    return ExportRequest.model_validate(
        {"dataset": "usage_logs", "format": format_name, "options": options}
    )


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_each_format_refuses_every_option_it_does_not_list(format_name: str) -> None:
    writer = FORMATS[format_name]
    for option in sorted(set(DEFAULTS) - set(writer.request_options())):
        # Even the default value, when the client names it: it would be stored and ignored.
        with pytest.raises(InvalidRequest) as refused:
            resolve_export(request(format_name, {option: DEFAULTS[option]}), CATALOG, MEMBER)
        assert refused.value.field == f"options.{option}"


def test_options_a_format_lists_are_accepted() -> None:
    csv = request("csv", {"delimiter": ";", "bom": False, "decimal_places": 2})
    assert resolve_export(csv, CATALOG, MEMBER).options.delimiter == ";"


def test_a_stored_request_holding_every_default_still_resolves_in_the_steps() -> None:
    stored = request("json", DEFAULTS)
    assert resolve_export(stored, CATALOG).writer.name == "json"
