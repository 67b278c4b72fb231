"""NDJSON (JSON Lines): one JSON object per line, "\n"-terminated; parts simply concatenate."""

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


class NdjsonWriter(FormatWriter):
    name: ClassVar[str] = "ndjson"
    extension: ClassVar[str] = "ndjson"
    media_type: ClassVar[str] = "application/x-ndjson"

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self._encode = row_encoder(self.columns, self.options.timezone)

    def _row(self, row: Sequence[Any]) -> str:
        return self._encode(row) + "\n"
