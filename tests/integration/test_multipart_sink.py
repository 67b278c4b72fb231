"""The S3 sink against moto's S3 (the bucket from template.yaml): parts, compression, aborts."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from dataexport.adapters.object_store import (
    MAX_PARTS,
    MIN_PART_SIZE,
    ObjectStore,
    StoredObject,
    part_size_for,
)
from dataexport.formats.compression import Compression
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as started:
        yield started


@pytest.fixture(scope="module")
def bucket(aws: LocalAws) -> str:
    return aws.template.buckets[0].name


@pytest.fixture(scope="module")
def store(bucket: str) -> ObjectStore:
    return ObjectStore(bucket, REGION)


@pytest.fixture(scope="module")
def s3(aws: LocalAws) -> Any:
    return aws.client("s3")


def stored(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def decompressed(body: bytes, compression: Compression) -> bytes:
    """`body` read back as users would: gzip's reader, zstd's reader across frames."""
    if compression is Compression.GZIP:
        return gzip.decompress(body)
    if compression is Compression.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
        data: bytes = reader.read()
        return data
    return body


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """Compressible but not trivial bytes, in writer-sized chunks."""
    line = b"2026-01-01T00:00:00.000000+00:00,some user,some key,200,0.0001\r\n"
    block = (line * (size // len(line) + 1))[:size]
    for index in range(0, total, size):
        yield block[: min(size, total - index)] + os.urandom(8)


def test_part_sizes_grow_so_one_object_can_reach_s3s_limit() -> None:
    assert part_size_for(1) == MIN_PART_SIZE >= 5 * MIB
    assert part_size_for(1_000) == MIN_PART_SIZE
    assert part_size_for(1_001) == 2 * MIN_PART_SIZE
    assert sum(part_size_for(number) for number in range(1, MAX_PARTS + 1)) > 5 * 1024**4


@pytest.mark.parametrize("compression", list(Compression))
def test_a_multi_part_object_holds_every_byte_and_its_checksum(
    store: ObjectStore, s3: Any, bucket: str, compression: Compression
) -> None:
    # Given 20 MiB written in chunks, as a writer does
    written = list(chunks(20 * MIB))
    key = f"staging/test/{compression.value}"

    # When they go through the sink
    with store.open_sink(key, "text/csv", compression) as sink:
        for chunk in written:
            sink.write(chunk)
        result = sink.complete()

    # Then S3 holds them (decompressed with the usual readers), with the reported size and sha256
    body = stored(s3, bucket, key)
    assert (result.bytes, result.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    plain = decompressed(body, compression)
    assert plain == b"".join(written)
    if compression is Compression.NONE:
        assert s3.head_object(Bucket=bucket, Key=key, PartNumber=1)["PartsCount"] == 3


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_separately_compressed_parts_join_into_one_file(
    store: ObjectStore, s3: Any, bucket: str, compression: Compression
) -> None:
    pieces = [b"first part\n" * 1000, b"second part\n" * 1000]
    joined = b""
    for index, piece in enumerate(pieces):
        key = f"staging/join/{compression.value}-{index}"
        with store.open_sink(key, "text/csv", compression) as sink:
            sink.write(piece)
            sink.complete()
        joined += stored(s3, bucket, key)
    assert decompressed(joined, compression) == b"".join(pieces)


def test_a_failure_while_writing_leaves_no_object_and_no_upload(
    store: ObjectStore, s3: Any, bucket: str
) -> None:
    key = "staging/failed/part-00000"
    with (
        pytest.raises(RuntimeError, match="database went away"),
        store.open_sink(key, "text/csv") as sink,
    ):
        for chunk in chunks(12 * MIB):
            sink.write(chunk)
        raise RuntimeError("database went away")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="staging/failed/")
    assert listed.get("KeyCount", 0) == 0
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="staging/failed/")
    assert uploads.get("Uploads", []) == []


@pytest.mark.parametrize(
    "sizes_mib",
    [[1], [7], [1, 2, 3], [6, 1, 6], [0.5, 9, 0.25, 0.25, 12, 3], [5, 5, 5]],
    ids=str,
)
def test_pieces_join_in_order_whatever_their_sizes(
    store: ObjectStore, s3: Any, bucket: str, sizes_mib: list[float]
) -> None:
    # Given staged pieces, some under S3's 5 MiB part minimum and some above it
    pieces = []
    for index, size in enumerate(sizes_mib):
        body = os.urandom(int(size * MIB))
        key = f"staging/assemble/{len(sizes_mib)}-{sizes_mib[0]}-{index}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        pieces.append((key, body))
    stored_pieces = [
        StoredObject(key, len(body), hashlib.sha256(body).hexdigest()) for key, body in pieces
    ]

    # When they are assembled into one object
    target = f"exports/assembled-{'-'.join(map(str, sizes_mib))}"
    result = store.assemble(stored_pieces, target, "text/csv", 'attachment; filename="x.csv"')

    # Then it holds every piece in order, with the size and checksum of the whole
    joined = b"".join(body for _, body in pieces)
    assert stored(s3, bucket, target) == joined
    assert (result.bytes, result.sha256) == (len(joined), hashlib.sha256(joined).hexdigest())
    head = s3.head_object(Bucket=bucket, Key=target)
    assert head["ContentType"] == "text/csv"
