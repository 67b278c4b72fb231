"""The two layouts of a KPI summary (see summary.py), as seed 003 writes them.

A summary export is one row whose columns are the metrics, named `section.metric` and typed by
what they measure. JSON groups them by section after the metadata:

    {
      "metadata": {"export_date": ..., "time_range": "7d", ...},
      "usage_metrics": {"total_requests": 1523, "success_rate": 88.28}
    }

CSV has a `Metric,Value` header, then the metadata as `metadata.<key>` lines, then one line per
metric; values are rendered as the csv format renders their type (decimal places, time zone,
BOM, delimiter and line ending apply). Neither is ever split: the row is one small file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from dataexport.formats import value_text
from dataexport.formats.csv_writer import CsvWriter
from dataexport.formats.json_values import value_encoder
from dataexport.formats.writer import CopyPlan, FormatWriter, OutputColumn
from dataexport.sql_rendering import SourceType

_encode = value_text.JSON_TEXT_ENCODER.encode
_INDENT = "  "


def _sections(columns: Sequence[OutputColumn]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Each section, in order, with its metrics' names and the positions of their columns."""
    sections: dict[str, list[tuple[str, int]]] = {}
    for index, column in enumerate(columns):
        section, _, metric = column.name.partition(".")
        sections.setdefault(section, []).append((metric, index))
    return list(sections.items())


def _json_object(members: Sequence[tuple[str, str]], depth: int) -> str:
    if not members:
        return "{}"
    inner = _INDENT * (depth + 1)
    lines = ",\n".join(f"{inner}{_encode(key)}: {value}" for key, value in members)
    return "{\n" + lines + "\n" + _INDENT * depth + "}"


class SummaryJsonWriter(FormatWriter):
    name: ClassVar[str] = "json"
    extension: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"

    _values: Sequence[Any] = ()

    def _row(self, row: Sequence[Any]) -> str:
        # The document is written whole at the end: its one row is a handful of values.
        self._values = row
        return ""

    def _end(self) -> str:
        zone = self.options.timezone
        values = self._values or [None] * len(self.columns)
        header = [(key, _encode(value)) for key, value in (self.options.metadata or {}).items()]
        document = [("metadata", _json_object(header, 1))] if self.options.metadata else []
        for section, metrics in _sections(self.columns):
            members = []
            for metric, index in metrics:
                value = values[index]
                encode = value_encoder(self.columns[index].type, zone)
                members.append((metric, "null" if value is None else encode(value)))
            document.append((section, _json_object(members, 1)))
        return _json_object(document, 0) + "\n"


class SummaryCsvWriter(CsvWriter):
    def _file_opening(self) -> str:
        lines = [self._line(["Metric", "Value"])]
        for key, value in (self.options.metadata or {}).items():
            text = ",".join(value) if isinstance(value, list) else value
            lines.append(self._line([f"metadata.{key}", "" if text is None else str(text)]))
        return "".join(lines)

    def _row(self, row: Sequence[Any]) -> str:
        return "".join(
            self._line([column.name, render(value)])
            for column, render, value in zip(self.columns, self._renderers, row, strict=True)
        )

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        return None  # one row, turned into lines: Python's work


SUMMARY_FORMATS: dict[str, type[FormatWriter]] = {
    writer.name: writer for writer in (SummaryCsvWriter, SummaryJsonWriter)
}
