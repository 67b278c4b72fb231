"""JSON: one array of objects, one object per line.

Parts concatenate into one valid array: the first part opens it with "[", the last closes it
with "]", and every row except the very first of the first part is preceded by ",". The Format
step writes JSON as bare pieces (PIECE) instead and frames them when it joins them (see
services.export_files), so a part that turns out empty never leaves a stray comma.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from dataexport.formats import value_text
from dataexport.formats.json_values import JsonObjectsWriter
from dataexport.formats.writer import LineFraming


class JsonWriter(JsonObjectsWriter):
    name: ClassVar[str] = "json"
    extension: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"
    copy_framing: ClassVar[LineFraming] = LineFraming.JSON_ARRAY
    row_separator: ClassVar[str] = ",\n"
    option_names: ClassVar[tuple[str, ...]] = ("timezone", "metadata")

    def _begin(self) -> str:
        # Rows of a later part continue the array the first part opened.
        self._separator = self._first_separator()
        return self._array_opening() if self.position.first else ""

    def _end(self) -> str:
        return self._file_closing() if self.position.last else ""

    def _file_opening(self) -> str:
        return self._array_opening() + "\n"

    def _file_closing(self) -> str:
        return "\n]\n" if self.options.metadata is None else "\n]}\n"

    def _array_opening(self) -> str:
        # The seeds' shape: {"metadata": {...}, "data": [rows]} when asked for.
        if self.options.metadata is None:
            return "["
        return (
            '{"metadata":'
            + value_text.JSON_TEXT_ENCODER.encode(self.options.metadata)
            + ',"data":['
        )

    def _row(self, row: Sequence[Any]) -> str:
        text = self._separator + self._encode(row)
        self._separator = ",\n"
        return text
