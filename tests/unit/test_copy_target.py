"""COPY's lines framed as each format needs them, across chunk boundaries."""

from __future__ import annotations

import pytest

from dataexport.formats.writer import COPY_CHUNK_BYTES, CopyTarget, LineFraming

PLAIN = [f"row {index},value\n".encode() for index in range(40_000)]
WITH_BREAKS = [b'1,"two\nlines"\n', b"2,plain\n", b'3,"ends with\n"\n']


def framed(framing: LineFraming, lines: list[bytes], first: bytes = b"\n") -> tuple[bytes, int]:
    chunks: list[bytes] = []
    progress: list[int] = []
    target = CopyTarget(framing, chunks.append, progress.append, first)
    for line in lines:
        target.write(line)
    target.flush()
    assert progress[-1] == target.rows
    return b"".join(chunks), target.rows


def test_lines_are_sent_as_they_are_and_in_chunks() -> None:
    data, rows = framed(LineFraming.AS_IS, PLAIN)
    assert (data, rows) == (b"".join(PLAIN), len(PLAIN))
    assert len(data) > 2 * COPY_CHUNK_BYTES


@pytest.mark.parametrize("lines", [PLAIN, WITH_BREAKS, PLAIN + WITH_BREAKS + PLAIN])
def test_crlf_replaces_only_the_row_ends(lines: list[bytes]) -> None:
    data, rows = framed(LineFraming.CRLF, lines)
    assert data == b"".join(line[:-1] + b"\r\n" for line in lines)
    assert rows == len(lines)


@pytest.mark.parametrize("first", [b"\n", b",\n"])
def test_json_array_elements_are_separated_across_chunks(first: bytes) -> None:
    lines = [b'{"n":%d}\n' % index for index in range(30_000)]
    data, _ = framed(LineFraming.JSON_ARRAY, lines, first)
    assert data == first + b",\n".join(line[:-1] for line in lines)
