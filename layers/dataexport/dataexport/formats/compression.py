"""Compression of export files: none, gzip or zstd, applied to the bytes as they stream.

Separately compressed parts of one export concatenate into one valid file (gzip members, zstd
frames), so partitions are compressed independently and joined in S3.
"""

from __future__ import annotations

import zlib
from enum import StrEnum
from typing import Protocol

import zstandard

GZIP_LEVEL = 6
ZSTD_LEVEL = 3


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def suffix(self) -> str:
        """What the file name gains: `.gz`, `.zst` or nothing."""
        return _SUFFIXES[self]

    def media_type(self, uncompressed: str) -> str:
        """The object's Content-Type: the format's own, or the compressed file's."""
        return _MEDIA_TYPES.get(self, uncompressed)


_SUFFIXES = {Compression.NONE: "", Compression.GZIP: ".gz", Compression.ZSTD: ".zst"}
_MEDIA_TYPES = {Compression.GZIP: "application/gzip", Compression.ZSTD: "application/zstd"}


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Uncompressed:
    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def compressor(compression: Compression) -> _Compressor:
    """A streaming compressor; concatenated outputs are valid files (gzip members, zstd
    frames), so separately compressed parts of an export join into one file."""
    if compression is Compression.GZIP:
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip header and trailer
    if compression is Compression.ZSTD:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    return _Uncompressed()


def compressed(compression: Compression, data: bytes) -> bytes:
    """`data` compressed whole: one gzip member or zstd frame (or itself)."""
    stream = compressor(compression)
    return stream.compress(data) + stream.flush()
