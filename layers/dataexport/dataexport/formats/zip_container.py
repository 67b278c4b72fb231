"""A ZIP archive laid out from entries compressed elsewhere (APPNOTE 6.3.x, with ZIP64).

An XLSX workbook is a ZIP archive whose sheets are compressed piece by piece, in parallel, by
the Format step. Raw deflate data whose pieces each end on a full flush (no final block)
concatenates into one deflate stream, so the Upload step only has to place local headers
around the pieces and write the central directory. Python's zipfile cannot take data that is
already compressed, hence the few headers written here. CRC-32 values of consecutive pieces
combine without reading the data again (crc32_combine, as zlib computes it).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

DEFLATE_LEVEL = 6
# The empty final block that ends a deflate stream made of full-flushed pieces.
DEFLATE_END = b"\x03\x00"

_ZIP32_LIMIT = 0xFFFFFFFF
_VERSION_ZIP64 = 45
_VERSION_DEFLATE = 20
_METHOD_DEFLATE = 8
_UTF8_NAMES = 0x0800
# 1980-01-01 00:00, the earliest time ZIP can say: the archive's entries carry no real time.
_DOS_TIME = 0
_DOS_DATE = (1 << 5) | 1


class DeflatePiece:
    """Raw deflate of text given in chunks, ending on a full flush: pieces made this way
    follow one another in one deflate stream. Tracks the CRC-32 and size of the text."""

    def __init__(self, level: int = DEFLATE_LEVEL) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.crc32 = 0
        self.raw_bytes = 0

    def compress(self, data: bytes) -> bytes:
        self.crc32 = zlib.crc32(data, self.crc32)
        self.raw_bytes += len(data)
        return self._compressor.compress(data)

    def flush(self) -> bytes:
        return self._compressor.flush(zlib.Z_FULL_FLUSH)


@dataclass(frozen=True)
class Deflated:
    """What the archive needs to know of deflated content: its stored size, text size and CRC."""

    stored_bytes: int
    raw_bytes: int
    crc32: int

    def then(self, other: Deflated) -> Deflated:
        """This content followed by `other`."""
        return Deflated(
            self.stored_bytes + other.stored_bytes,
            self.raw_bytes + other.raw_bytes,
            crc32_combine(self.crc32, other.crc32, other.raw_bytes),
        )


NOTHING = Deflated(0, 0, 0)


def deflated_whole(data: bytes) -> tuple[bytes, Deflated]:
    """`data` deflated as one complete stream (a small entry of the archive)."""
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    return body, Deflated(len(body), len(data), zlib.crc32(data))


def deflated_piece(data: bytes) -> tuple[bytes, Deflated]:
    """`data` deflated as a piece of a longer stream (full flush, no final block)."""
    piece = DeflatePiece()
    body = piece.compress(data) + piece.flush()
    return body, Deflated(len(body), piece.raw_bytes, piece.crc32)


@dataclass(frozen=True)
class _Entry:
    name: bytes
    content: Deflated
    offset: int


class ZipLayout:
    """Computes the headers of an archive whose entries' bytes are written in order by the
    caller: `local_header` before each entry's data, `central_directory` at the end."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._offset = 0

    def local_header(self, name: str, content: Deflated) -> bytes:
        """The header that precedes an entry of `content`; the entry's data follows it."""
        encoded = name.encode()
        entry = _Entry(encoded, content, self._offset)
        zip64 = _needs_zip64(content)
        extra = (
            struct.pack("<HHQQ", 0x0001, 16, content.raw_bytes, content.stored_bytes)
            if zip64
            else b""
        )
        header = struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            _VERSION_ZIP64 if zip64 else _VERSION_DEFLATE,
            _UTF8_NAMES,
            _METHOD_DEFLATE,
            _DOS_TIME,
            _DOS_DATE,
            content.crc32,
            _ZIP32_LIMIT if zip64 else content.stored_bytes,
            _ZIP32_LIMIT if zip64 else content.raw_bytes,
            len(encoded),
            len(extra),
        )
        self._entries.append(entry)
        header += encoded + extra
        self._offset += len(header) + content.stored_bytes
        return header

    def central_directory(self) -> bytes:
        """The central directory and its end records, after the last entry's data."""
        start = self._offset
        records = b"".join(_central_record(entry) for entry in self._entries)
        count = len(self._entries)
        end = b""
        if start + len(records) > _ZIP32_LIMIT or count > 0xFFFF or start > _ZIP32_LIMIT:
            zip64_end_at = start + len(records)
            end += struct.pack(
                "<IQHHIIQQQQ",
                0x06064B50,
                44,
                _VERSION_ZIP64,
                _VERSION_ZIP64,
                0,
                0,
                count,
                count,
                len(records),
                start,
            )
            end += struct.pack("<IIQI", 0x07064B50, 0, zip64_end_at, 1)
        end += struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            min(count, 0xFFFF),
            min(count, 0xFFFF),
            min(len(records), _ZIP32_LIMIT),
            min(start, _ZIP32_LIMIT),
            0,
        )
        return records + end


def _needs_zip64(content: Deflated) -> bool:
    return content.raw_bytes >= _ZIP32_LIMIT or content.stored_bytes >= _ZIP32_LIMIT


def _central_record(entry: _Entry) -> bytes:
    content = entry.content
    zip64_sizes = _needs_zip64(content)
    zip64_offset = entry.offset >= _ZIP32_LIMIT
    extra_values: list[int] = []
    if zip64_sizes:
        extra_values += [content.raw_bytes, content.stored_bytes]
    if zip64_offset:
        extra_values.append(entry.offset)
    extra = (
        struct.pack(f"<HH{len(extra_values)}Q", 0x0001, 8 * len(extra_values), *extra_values)
        if extra_values
        else b""
    )
    version = _VERSION_ZIP64 if extra_values else _VERSION_DEFLATE
    return (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            version,
            version,
            _UTF8_NAMES,
            _METHOD_DEFLATE,
            _DOS_TIME,
            _DOS_DATE,
            content.crc32,
            _ZIP32_LIMIT if zip64_sizes else content.stored_bytes,
            _ZIP32_LIMIT if zip64_sizes else content.raw_bytes,
            len(entry.name),
            len(extra),
            0,
            0,
            0,
            0,
            _ZIP32_LIMIT if zip64_offset else entry.offset,
        )
        + entry.name
        + extra
    )


# ----------------------------------------------------------------------------- CRC-32 combine
_CRC32_POLYNOMIAL = 0xEDB88320


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[row]) for row in range(32)]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of A + B from the CRC-32s of A and B and B's length (zlib's method:
    apply `second_length` zero bytes to `first` by repeated squaring of the shift operator)."""
    if second_length <= 0:
        return first
    odd = [_CRC32_POLYNOMIAL] + [1 << row for row in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # the first square gives one zero byte
        if second_length & 1:
            first = _gf2_times(even, first)
        second_length >>= 1
        if not second_length:
            break
        odd = _gf2_square(even)
        if second_length & 1:
            first = _gf2_times(odd, first)
        second_length >>= 1
        if not second_length:
            break
    return first ^ second
