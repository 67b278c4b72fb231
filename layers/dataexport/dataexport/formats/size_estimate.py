"""How big an export's file will be, from a sample of its rows rendered by the real writer.

The sample is the same for every preview of a request (its first SAMPLE_ROWS rows, whatever
number of rows the preview shows), so the estimate does not move with the preview's `limit`.
Rendering the sample whole and its first half gives both what one more row costs (compressed,
as the file will be) and the file's fixed part (header, metadata, a container's directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dataexport.formats.compression import Compression, compressed
from dataexport.formats.writer import FormatOptions, FormatWriter, OutputColumn

# Enough rows for a stable per-row size and compression ratio; few enough to render quickly.
SAMPLE_ROWS: Final = 1_000


def estimated_file_bytes(
    writer: type[FormatWriter],
    columns: Sequence[OutputColumn],
    options: FormatOptions,
    *,
    compression: Compression,
    sample: Sequence[Sequence[Any]],
    total_rows: int,
) -> int:
    """The size of a file of `total_rows` rows like those of `sample` (the export's first
    rows): exact when the sample holds them all."""

    def size(rows: Sequence[Sequence[Any]]) -> int:
        return len(compressed(compression, writer.whole_file(columns, options, rows)))

    if total_rows <= len(sample) or len(sample) < 2:
        return size(sample[:total_rows])
    half = len(sample) // 2
    whole = size(sample)
    per_row = (whole - size(sample[:half])) / (len(sample) - half)
    return round(whole + max(per_row, 0.0) * (total_rows - len(sample)))
