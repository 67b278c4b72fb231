"""Export files in S3: streamed multipart writes, server-side assembly, presigned downloads."""

from __future__ import annotations

import hashlib
import math
import queue
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from dataexport.adapters.aws_clients import s3_client
from dataexport.formats.compression import Compression, compressor

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = Logger(child=True)

MIB = 1024 * 1024
MIN_PART_SIZE = 8 * MIB
MAX_PARTS = 10_000
# Part sizes double every PARTS_PER_SIZE parts: 8 MiB parts for the first 8 GB, and the
# 10,000 parts S3 allows reach past its 5 TiB object limit.
PARTS_PER_SIZE = 1_000
# At most this much of finished parts waits for or is in upload at once.
MAX_BYTES_IN_FLIGHT = 16 * MIB
# Chunks handed from the writer to the upload thread; the bound keeps memory flat.
QUEUED_CHUNKS = 16
# S3 copies a single object of up to 5 GiB in one request; beyond that it must copy in parts.
MAX_SINGLE_COPY = 5 * 1024 * MIB
COPY_PART_SIZE = 512 * MIB
# S3's smallest part, except for an upload's last one.
MIN_COPY_PART_SIZE = 5 * MIB


def part_size_for(part_number: int) -> int:
    """The size of part `part_number` (1-based): doubles every PARTS_PER_SIZE parts."""
    return MIN_PART_SIZE << ((part_number - 1) // PARTS_PER_SIZE)


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str


# Threads shared by every sink of the process: a Lambda runs one export step at a time, and new
# threads per segment would each grow a malloc arena of their own.
_SINK_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3-sink")
_PART_UPLOADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3-part")


class MultipartSink:
    """A write-only stream into one S3 object: compressed, checksummed and uploaded in parts
    by a thread of its own while the writer goes on producing.

    `write` only queues the chunk (blocking while QUEUED_CHUNKS wait, so memory stays bounded).
    The upload thread compresses, hashes the stored bytes (sha256 and size of the object as
    S3 holds it), cuts parts (growing in size, see part_size_for) and uploads up to
    MAX_BYTES_IN_FLIGHT of them at once. Small outputs become a single PutObject. Leaving the
    `with` block by an exception aborts the upload, so no partial object ever becomes visible.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        content_type: str = "application/octet-stream",
        compression: Compression = Compression.NONE,
        *,
        content_disposition: str = "inline",
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._content_disposition = content_disposition
        self._compressor = compressor(compression)
        self._digest = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._in_flight: deque[tuple[int, Future[CompletedPartTypeDef]]] = deque()
        self._result: StoredObject | None = None
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._failure: BaseException | None = None
        self._worker = _SINK_THREADS.submit(self._run)

    @property
    def key(self) -> str:
        return self._key

    # ------------------------------------------------------------------ writer side
    def write(self, data: bytes) -> None:
        if not data:
            return
        self._raise_failure()
        self._chunks.put(data)

    def complete(self) -> StoredObject:
        if self._result is not None:
            return self._result
        self._finish_worker()
        self._raise_failure()
        tail = self._compressor.flush()
        self._take(tail)
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=self._buffer[:],  # type: ignore[arg-type]  # as in _upload_part
                ContentType=self._content_type,
                ContentDisposition=self._content_disposition,
            )
        else:
            if self._buffer:
                self._submit_part(self._buffer[:])
            self._wait_for_parts(0)
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self._result = StoredObject(self._key, self._size, self._digest.hexdigest())
        return self._result

    def abort(self) -> None:
        self._failure = self._failure or _Aborted()
        self._finish_worker()
        for _, pending in self._in_flight:
            pending.cancel()
        for _, pending in self._in_flight:
            with suppress(Exception):  # the abort below ends the upload whatever these did
                pending.result()
        if self._upload_id is not None and self._result is None:
            # Already aborted by someone else (a cancelled job's cleanup) is aborted all the same.
            with suppress(self._client.exceptions.NoSuchUpload):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            self._upload_id = None
        self._buffer.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()

    # ------------------------------------------------------------------ upload thread
    def _run(self) -> None:
        while True:
            chunk = self._chunks.get()
            if chunk is None:  # the end of the stream
                return
            if self._failure is not None:
                continue  # drain, so a blocked writer wakes up and sees the failure
            try:
                self._take(self._compressor.compress(chunk))
            except BaseException as exc:  # re-raised in the writer's thread
                self._failure = exc

    def _take(self, stored: bytes) -> None:
        """Account for bytes as stored in S3 and upload every part that is full."""
        if not stored:
            return
        self._digest.update(stored)
        self._size += len(stored)
        self._buffer += stored
        while len(self._buffer) >= part_size_for(len(self._parts) + 1):
            size = part_size_for(len(self._parts) + 1)
            part = self._buffer[:size]
            del self._buffer[:size]
            self._submit_part(part)

    # Bodies are bytearrays: botocore wraps bytes in a file object, which urllib3 then sends
    # 16 KiB at a time; a buffer goes to the socket in one call.
    def _submit_part(self, body: bytearray) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                ContentType=self._content_type,
                ContentDisposition=self._content_disposition,
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + len(self._in_flight) + 1
        if number > MAX_PARTS:
            raise ValueError("The export exceeds S3's limit of 10,000 parts per object.")
        self._wait_for_parts(max(1, MAX_BYTES_IN_FLIGHT // len(body)) - 1)
        upload_id = self._upload_id
        self._in_flight.append(
            (number, _PART_UPLOADS.submit(self._upload_part, upload_id, number, body))
        )

    def _upload_part(self, upload_id: str, number: int, body: bytearray) -> CompletedPartTypeDef:
        uploaded = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,  # type: ignore[arg-type]
        )
        return {"ETag": uploaded["ETag"], "PartNumber": number}

    def _wait_for_parts(self, allowed_in_flight: int) -> None:
        while len(self._in_flight) > allowed_in_flight:
            _, pending = self._in_flight.popleft()
            self._parts.append(pending.result())

    # ------------------------------------------------------------------ both
    def _finish_worker(self) -> None:
        if not self._worker.done():
            self._chunks.put(None)
        self._worker.result()

    def _raise_failure(self) -> None:
        if self._failure is not None and not isinstance(self._failure, _Aborted):
            raise self._failure


class _Aborted(Exception):
    """Marks a sink that was aborted: its worker drops what is still queued."""


@dataclass(frozen=True)
class StoredPiece:
    stored: StoredObject
    rows: int


class PieceSink:
    """A write-only stream into consecutive objects ("pieces") of at most about `piece_bytes`
    bytes each before compression, cut only where the writer allows (between two rows: it is
    a PieceCutter). `open_piece(n)` opens the sink of the n-th piece (from 0)."""

    def __init__(
        self, open_piece: Callable[[int], MultipartSink], piece_bytes: float = math.inf
    ) -> None:
        self._open_piece = open_piece
        self._piece_bytes = piece_bytes
        self._finished: list[StoredPiece] = []
        self._current = open_piece(0)
        self._written = 0
        self._rows_before_current = 0

    def write(self, data: bytes) -> None:
        self._current.write(data)
        self._written += len(data)

    def begins_piece(self, incoming: int, rows_before: int) -> bool:
        if self._written == 0 or self._written + incoming <= self._piece_bytes:
            return False
        self._finished.append(
            StoredPiece(self._current.complete(), rows_before - self._rows_before_current)
        )
        self._rows_before_current = rows_before
        self._current = self._open_piece(len(self._finished))
        self._written = 0
        return True

    def complete(self, rows: int) -> list[StoredPiece]:
        """Finish the last piece; `rows` is how many the writer wrote in all."""
        last = StoredPiece(self._current.complete(), rows - self._rows_before_current)
        return [*self._finished, last]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._current.abort()


class _PartList:
    """The parts of one multipart upload being assembled from existing objects."""

    def __init__(self, client: S3Client, bucket: str, key: str, upload_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._parts: list[CompletedPartTypeDef] = []
        self._gathered = bytearray()

    def add(self, piece: StoredObject | bytes) -> None:
        if isinstance(piece, bytes):
            self._gathered += piece
            if len(self._gathered) >= MIN_COPY_PART_SIZE:
                self._upload_gathered()
            return
        offset = 0
        if self._gathered:
            # Top up the gathered bytes to a valid part before copying anything.
            offset = min(MIN_COPY_PART_SIZE - len(self._gathered), piece.bytes)
            self._gathered += self._read(piece.key, 0, offset)
            if len(self._gathered) >= MIN_COPY_PART_SIZE:
                self._upload_gathered()
        remaining = piece.bytes - offset
        if remaining >= MIN_COPY_PART_SIZE:
            for start, end in _copy_ranges(offset, piece.bytes):
                self._copy(piece.key, start, end)
        elif remaining > 0:
            self._gathered += self._read(piece.key, offset, piece.bytes)

    def finish(self) -> None:
        if self._gathered:
            self._upload_gathered()  # the last part may be of any size
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def _number(self) -> int:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError("The export exceeds S3's limit of 10,000 parts per object.")
        return number

    def _read(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        body = self._client.get_object(
            Bucket=self._bucket, Key=key, Range=f"bytes={start}-{end - 1}"
        )["Body"]
        data: bytes = body.read()
        return data

    def _upload_gathered(self) -> None:
        number = self._number()
        uploaded = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=self._gathered[:],  # type: ignore[arg-type]  # a buffer, as in MultipartSink
        )
        self._parts.append({"ETag": uploaded["ETag"], "PartNumber": number})
        self._gathered.clear()

    def _copy(self, source_key: str, start: int, end: int) -> None:
        number = self._number()
        copied = self._client.upload_part_copy(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            CopySource={"Bucket": self._bucket, "Key": source_key},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        self._parts.append({"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": number})


def _copy_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) cut into copy parts of COPY_PART_SIZE, none but a whole range under 5 MiB."""
    ranges = [(at, min(at + COPY_PART_SIZE, end)) for at in range(start, end, COPY_PART_SIZE)]
    if len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] < MIN_COPY_PART_SIZE:
        tail = ranges.pop()
        ranges[-1] = (ranges[-1][0], tail[1])
    return ranges


class ObjectStore:
    """The exports bucket."""

    def __init__(self, bucket: str, region: str) -> None:
        self._bucket = bucket
        self._client = s3_client(region)

    def open_sink(
        self,
        key: str,
        content_type: str,
        compression: Compression = Compression.NONE,
        content_disposition: str = "inline",
    ) -> MultipartSink:
        return MultipartSink(
            self._client,
            self._bucket,
            key,
            content_type,
            compression,
            content_disposition=content_disposition,
        )

    def read(self, key: str) -> bytes:
        """A whole object (a staged piece of bounded size)."""
        data: bytes = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return data

    def open_pieces(
        self,
        key_of: Callable[[int], str],
        content_type: str,
        compression: Compression = Compression.NONE,
        piece_bytes: float = math.inf,
    ) -> PieceSink:
        """A sink cut into pieces of about `piece_bytes` (before compression), each its own
        object at `key_of(n)`: a compressed piece is a whole gzip member or zstd frame."""
        return PieceSink(
            lambda number: self.open_sink(key_of(number), content_type, compression), piece_bytes
        )

    def put(
        self, key: str, body: bytes, content_type: str, content_disposition: str = "inline"
    ) -> StoredObject:
        """A small object written at once (a manifest, a file's header)."""
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ContentDisposition=content_disposition,
        )
        return StoredObject(key, len(body), hashlib.sha256(body).hexdigest())

    def assemble(
        self,
        pieces: Sequence[StoredObject | bytes],
        target_key: str,
        content_type: str,
        content_disposition: str,
    ) -> StoredObject:
        """Join `pieces` in order into one object, server-side: pieces of 5 MiB or more are
        copied by S3 itself (UploadPartCopy); smaller ones, which S3 does not accept as parts,
        are read and gathered into parts of their own, as are pieces given as bytes. The sha256
        is the joined object's."""
        if not pieces:
            raise ValueError("nothing to assemble")
        total = sum(len(piece) if isinstance(piece, bytes) else piece.bytes for piece in pieces)
        only = pieces[0] if len(pieces) == 1 else None
        if isinstance(only, StoredObject) and total <= MAX_SINGLE_COPY:
            self._client.copy_object(
                Bucket=self._bucket,
                Key=target_key,
                CopySource={"Bucket": self._bucket, "Key": only.key},
                ContentType=content_type,
                ContentDisposition=content_disposition,
                MetadataDirective="REPLACE",
            )
            return StoredObject(target_key, total, only.sha256)
        upload_id = self._client.create_multipart_upload(
            Bucket=self._bucket,
            Key=target_key,
            ContentType=content_type,
            ContentDisposition=content_disposition,
        )["UploadId"]
        try:
            parts = _PartList(self._client, self._bucket, target_key, upload_id)
            for piece in pieces:
                parts.add(piece)
            parts.finish()
        except Exception:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=target_key, UploadId=upload_id
            )
            raise
        return StoredObject(target_key, total, self._sha256_of(pieces))

    def _sha256_of(self, pieces: Sequence[StoredObject | bytes]) -> str:
        digest = hashlib.sha256()
        for piece in pieces:
            if isinstance(piece, bytes):
                digest.update(piece)
                continue
            body = self._client.get_object(Bucket=self._bucket, Key=piece.key)["Body"]
            for block in body.iter_chunks(MIB):
                digest.update(block)
        return digest.hexdigest()

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def size_of(self, key: str) -> int | None:
        """The stored size of an object, or None if there is no such object."""
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many were deleted."""
        deleted = 0
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                self._client.delete_object(Bucket=self._bucket, Key=item["Key"])
                deleted += 1
        return deleted

    def abort_uploads(self, prefix: str) -> int:
        """Abort unfinished multipart uploads under `prefix` (a failed or cancelled job's)."""
        aborted = 0
        listed = self._client.list_multipart_uploads(Bucket=self._bucket, Prefix=prefix)
        for upload in listed.get("Uploads", []):
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            aborted += 1
        return aborted

    def copy_out(self, key: str, bucket: str, target_key: str) -> str | None:
        """Copy an object of this bucket into another one, server-side (boto3's managed copy
        copies in parts past S3's 5 GB single-copy limit; the copy gets the destination's
        default encryption). None once copied, else S3's error code: its message may name
        keys, so it is not kept."""
        try:
            self._client.copy({"Bucket": self._bucket, "Key": key}, bucket, target_key)
        except ClientError as exc:
            return str(exc.response.get("Error", {}).get("Code", "ClientError"))
        except BotoCoreError as exc:
            return type(exc).__name__
        return None

    def presigned_download_url(self, key: str, file_name: str, ttl_seconds: int) -> str:
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(file_name),
            },
            ExpiresIn=ttl_seconds,
        )


def content_disposition(file_name: str) -> str:
    """An attachment header that keeps the name intact in every browser (RFC 6266)."""
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"
