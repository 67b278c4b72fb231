"""Exports split into files: writers cut their output into bare pieces between rows, the
format's framing joins any run of pieces into a whole file, and pieces pack into files within
the size limit."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from dataexport.export_job import StagedPiece, numbered_file_name
from dataexport.formats.csv_writer import CsvWriter
from dataexport.formats.json_writer import JsonWriter
from dataexport.formats.ndjson_writer import NdjsonWriter
from dataexport.formats.writer import (
    PIECE,
    CopyTarget,
    FormatOptions,
    FormatWriter,
    LineFraming,
    PieceCutter,
)
from dataexport.services.export_files import pack_pieces, piece_bytes_for
from tests.unit.format_samples import COLUMNS, ROWS, render

MANY_ROWS = ROWS * 20


class CuttingSink:
    """A PieceCutter that starts a new piece once the current one would pass `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytearray] = [bytearray()]
        self.rows_before: list[int] = [0]

    def write(self, data: bytes) -> None:
        self.pieces[-1] += data

    def begins_piece(self, incoming: int, rows_before: int) -> bool:
        if not self.pieces[-1] or len(self.pieces[-1]) + incoming <= self.limit:
            return False
        self.pieces.append(bytearray())
        self.rows_before.append(rows_before)
        return True


def one_row_chunks(writer: type[FormatWriter]) -> type[FormatWriter]:
    """The writer, flushing after every row: many chunks, so many places to cut."""

    class EveryRow(writer):  # type: ignore[valid-type, misc]
        chunk_bytes: ClassVar[int] = 1

    return EveryRow


@pytest.mark.parametrize("writer", [CsvWriter, JsonWriter, NdjsonWriter])
def test_pieces_framed_as_a_file_are_the_whole_file(writer: type[FormatWriter]) -> None:
    # Given a writer whose sink cuts its output every few hundred bytes
    sink = CuttingSink(limit=400)
    instance = one_row_chunks(writer)(COLUMNS, FormatOptions(), sink, PIECE)
    assert isinstance(sink, PieceCutter)

    # When it writes many rows as bare pieces
    instance.open()
    instance.write_rows(iter(MANY_ROWS))
    summary = instance.close()

    # Then there are several pieces, and framed they are exactly the file written whole
    assert len(sink.pieces) > 5
    framing = instance.file_framing()
    joined = framing.opening + framing.separator.join(sink.pieces) + framing.closing
    whole, _ = render(writer, MANY_ROWS)
    assert joined == whole
    assert summary.rows == len(MANY_ROWS)

    # And any run of consecutive pieces framed the same way is a whole file of its rows
    rows_after = [*sink.rows_before[1:], summary.rows]
    first, last = 2, 4
    run = framing.opening + framing.separator.join(sink.pieces[first : last + 1])
    expected, _ = render(writer, MANY_ROWS[sink.rows_before[first] : rows_after[last]])
    assert run + framing.closing == expected


def test_a_piece_never_starts_with_a_json_separator_from_copy() -> None:
    # Given COPY's lines of a JSON array, cut into pieces by the sink
    sink = CuttingSink(limit=300_000)
    target = CopyTarget(
        LineFraming.JSON_ARRAY, sink.write, lambda rows: None, b"", sink.begins_piece
    )
    lines = [b'{"n":%d}\n' % index for index in range(100_000)]
    for line in lines:
        target.write(line)
    target.flush()

    # Then every piece holds whole elements and the pieces joined by "," are the array body
    assert len(sink.pieces) > 2
    assert all(piece.startswith(b'{"n":') for piece in sink.pieces)
    assert b",\n".join(sink.pieces) == b",\n".join(line[:-1] for line in lines)
    assert sink.rows_before[1] == sink.pieces[0].count(b"\n") + 1


def test_csv_files_open_with_the_bom_and_header() -> None:
    framing = CsvWriter(COLUMNS, FormatOptions(bom=True), CuttingSink(1)).file_framing()
    assert framing.opening.startswith("\ufeff".encode() + b"Time,User,")
    assert (framing.separator, framing.closing) == (b"", b"")


def piece(index: int, size: int, rows: int = 10) -> StagedPiece:
    return StagedPiece(key=f"p{index}", rows=rows, bytes=size, sha256="0" * 64)


def sizes(files: list[list[StagedPiece]]) -> list[list[int]]:
    return [[item.bytes for item in file] for file in files]


def test_pieces_pack_in_order_within_the_limit() -> None:
    pieces = [piece(index, size) for index, size in enumerate([40, 30, 20, 50, 10, 85, 5])]
    files = pack_pieces(pieces, 100, opening=8, separator=2, closing=3)
    assert sizes(files) == [[40, 30], [20, 50, 10], [85], [5]]
    for file in files:
        stored = 8 + sum(item.bytes for item in file) + 2 * (len(file) - 1) + 3
        assert stored <= 100


def test_a_piece_larger_than_the_limit_is_a_file_of_its_own() -> None:
    files = pack_pieces([piece(0, 10), piece(1, 500), piece(2, 10)], 100, **NO_FRAMING)
    assert sizes(files) == [[10], [500], [10]]


def test_pieces_without_rows_are_left_out_but_an_empty_export_is_one_file() -> None:
    empty = [piece(0, 20, rows=0), piece(1, 0, rows=0)]
    assert pack_pieces(empty, 100, **NO_FRAMING) == [[]]
    assert sizes(pack_pieces([*empty, piece(2, 30)], 100, **NO_FRAMING)) == [[30]]


NO_FRAMING: dict[str, Any] = {"opening": 0, "separator": 0, "closing": 0}


def test_pieces_are_a_quarter_of_the_file_limit() -> None:
    assert piece_bytes_for(None) == float("inf")
    assert piece_bytes_for(100_000_000) == 25_000_000


def test_numbered_file_names_keep_every_extension() -> None:
    name = "usage_logs-20260101-20260201-exp_1.csv.gz"
    assert numbered_file_name(name, 3) == "usage_logs-20260101-20260201-exp_1-part-00003.csv.gz"


def test_json_with_a_metadata_header_frames_pieces_and_empty_files_alike() -> None:
    options = FormatOptions(metadata={"dataset": "usage_logs", "time_range": "7d"})
    sink = CuttingSink(limit=400)
    instance = one_row_chunks(JsonWriter)(COLUMNS, options, sink, PIECE)
    instance.open()
    instance.write_rows(iter(MANY_ROWS))
    instance.close()
    framing = instance.file_framing()
    joined = framing.opening + framing.separator.join(sink.pieces) + framing.closing
    whole, _ = render(JsonWriter, MANY_ROWS, options)
    assert joined == whole
    document = json.loads(whole)
    assert document["metadata"] == {"dataset": "usage_logs", "time_range": "7d"}
    assert len(document["data"]) == len(MANY_ROWS)
    empty, _ = render(JsonWriter, [], options)
    assert json.loads(empty) == {"metadata": options.metadata, "data": []}
