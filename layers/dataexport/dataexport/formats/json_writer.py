"""JSON: one array of objects, one object per line.

Parts concatenate into one valid array: the first part opens it with "[", the last closes it
with "]", and every row except the very first of the first part is preceded by ",". Known
limitation: if the first part had no rows while a later one had, the later part's first row
would start with a stray comma; the partition planner never creates an empty first part of a
non-empty export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from dataexport.formats.json_values import row_encoder
from dataexport.formats.writer import (
    WHOLE_FILE,
    BinarySink,
    FormatOptions,
    FormatWriter,
    OutputColumn,
    PartPosition,
)


class JsonWriter(FormatWriter):
    name: ClassVar[str] = "json"
    extension: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self._encode = row_encoder(self.columns, self.options.timezone)
        self._separator = "\n" if position.first else ",\n"

    def _begin(self) -> str:
        return "[" if self.position.first else ""

    def _row(self, row: Sequence[Any]) -> str:
        text = self._separator + self._encode(row)
        self._separator = ",\n"
        return text

    def _end(self) -> str:
        return "\n]\n" if self.position.last else ""
