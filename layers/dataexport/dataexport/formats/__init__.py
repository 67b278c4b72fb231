"""Output formats: one FormatWriter subclass per format, found by name in FORMATS.

Adding a format is one new module with a FormatWriter subclass, registered here.
"""

from __future__ import annotations

from dataexport.errors import InvalidRequest
from dataexport.formats.csv_writer import CsvWriter
from dataexport.formats.json_writer import JsonWriter
from dataexport.formats.ndjson_writer import NdjsonWriter
from dataexport.formats.parquet_writer import ParquetWriter
from dataexport.formats.writer import FormatWriter
from dataexport.formats.xlsx_writer import XlsxWriter

FORMATS: dict[str, type[FormatWriter]] = {
    writer.name: writer
    for writer in (CsvWriter, JsonWriter, NdjsonWriter, XlsxWriter, ParquetWriter)
}


def get_format(name: str) -> type[FormatWriter]:
    """The writer class of format `name`; InvalidRequest(field="format") if there is none."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(FORMATS)
        raise InvalidRequest(
            "format", f"Unknown format {name!r}; allowed: {allowed}.", {"allowed": list(FORMATS)}
        ) from None
