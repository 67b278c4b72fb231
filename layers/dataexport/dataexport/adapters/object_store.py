"""Export files in S3: streamed multipart writes, server-side assembly, presigned downloads."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from aws_lambda_powertools import Logger

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


def part_size_for(part_number: int) -> int:
    """The size of part `part_number` (1-based): doubles every PARTS_PER_SIZE parts."""
    return MIN_PART_SIZE << ((part_number - 1) // PARTS_PER_SIZE)


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str


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
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
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
        self._uploads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3-part")
        self._worker = threading.Thread(target=self._run, name="s3-sink", daemon=True)
        self._worker.start()

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
                Body=bytes(self._buffer),
                ContentType=self._content_type,
            )
        else:
            if self._buffer:
                self._submit_part(bytes(self._buffer))
            self._wait_for_parts(0)
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self._uploads.shutdown()
        self._result = StoredObject(self._key, self._size, self._digest.hexdigest())
        return self._result

    def abort(self) -> None:
        self._failure = self._failure or _Aborted()
        self._finish_worker()
        for _, pending in self._in_flight:
            pending.cancel()
        self._uploads.shutdown(wait=True)
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
            with memoryview(self._buffer) as view:
                part = view[:size].tobytes()
            del self._buffer[:size]
            self._submit_part(part)

    def _submit_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + len(self._in_flight) + 1
        if number > MAX_PARTS:
            raise ValueError("The export exceeds S3's limit of 10,000 parts per object.")
        self._wait_for_parts(max(1, MAX_BYTES_IN_FLIGHT // len(body)) - 1)
        upload_id = self._upload_id
        self._in_flight.append(
            (number, self._uploads.submit(self._upload_part, upload_id, number, body))
        )

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> CompletedPartTypeDef:
        uploaded = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"ETag": uploaded["ETag"], "PartNumber": number}

    def _wait_for_parts(self, allowed_in_flight: int) -> None:
        while len(self._in_flight) > allowed_in_flight:
            _, pending = self._in_flight.popleft()
            self._parts.append(pending.result())

    # ------------------------------------------------------------------ both
    def _finish_worker(self) -> None:
        if self._worker.is_alive():
            self._chunks.put(None)
            self._worker.join()

    def _raise_failure(self) -> None:
        if self._failure is not None and not isinstance(self._failure, _Aborted):
            raise self._failure


class _Aborted(Exception):
    """Marks a sink that was aborted: its worker drops what is still queued."""


class ObjectStore:
    """The exports bucket."""

    def __init__(self, bucket: str, region: str) -> None:
        self._bucket = bucket
        self._client = s3_client(region)

    def open_sink(
        self, key: str, content_type: str, compression: Compression = Compression.NONE
    ) -> MultipartSink:
        return MultipartSink(self._client, self._bucket, key, content_type, compression)

    def copy(
        self, source_key: str, target_key: str, content_type: str, content_disposition: str
    ) -> None:
        """Copy one object server-side, in parts when it is larger than a single copy allows."""
        size = self._client.head_object(Bucket=self._bucket, Key=source_key)["ContentLength"]
        if size <= MAX_SINGLE_COPY:
            self._client.copy_object(
                Bucket=self._bucket,
                Key=target_key,
                CopySource={"Bucket": self._bucket, "Key": source_key},
                ContentType=content_type,
                ContentDisposition=content_disposition,
                MetadataDirective="REPLACE",
            )
            return
        upload_id = self._client.create_multipart_upload(
            Bucket=self._bucket,
            Key=target_key,
            ContentType=content_type,
            ContentDisposition=content_disposition,
        )["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                end = min(start + COPY_PART_SIZE, size) - 1
                copied = self._client.upload_part_copy(
                    Bucket=self._bucket,
                    Key=target_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self._bucket, "Key": source_key},
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=target_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=target_key, UploadId=upload_id
            )
            raise

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

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
