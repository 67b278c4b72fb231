"""NDJSON (JSON Lines): one JSON object per line, "\n"-terminated; parts simply concatenate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from dataexport.formats.json_values import JsonObjectsWriter


class NdjsonWriter(JsonObjectsWriter):
    name: ClassVar[str] = "ndjson"
    extension: ClassVar[str] = "ndjson"
    media_type: ClassVar[str] = "application/x-ndjson"

    def _row(self, row: Sequence[Any]) -> str:
        return self._encode(row) + "\n"
