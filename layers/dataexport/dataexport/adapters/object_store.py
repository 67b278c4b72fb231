"""Export files in S3: streamed multipart writes, server-side assembly, presigned downloads."""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from aws_lambda_powertools import Logger

from dataexport.adapters.aws_clients import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = Logger(child=True)

MIB = 1024 * 1024
MIN_PART_SIZE = 8 * MIB
MAX_PARTS = 10_000
# S3 copies a single object of up to 5 GiB in one request; beyond that it must copy in parts.
MAX_SINGLE_COPY = 5 * 1024 * MIB
COPY_PART_SIZE = 512 * MIB


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str


class MultipartSink:
    """A write-only stream into one S3 object, uploaded in parts as it fills.

    Holds at most one part in memory. Small outputs become a single PutObject. Leaving the
    `with` block by an exception aborts the upload, so no partial object ever becomes visible.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        content_type: str = "application/octet-stream",
        part_size: int = MIN_PART_SIZE,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_size = max(part_size, 5 * MIB)
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._result: StoredObject | None = None

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            # One copy out of the buffer, then shift it in place: no second part-sized copy.
            with memoryview(self._buffer) as view:
                part = view[: self._part_size].tobytes()
            del self._buffer[: self._part_size]
            self._upload_part(part)

    def complete(self) -> StoredObject:
        if self._result is not None:
            return self._result
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
            )
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
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

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError("The export exceeds S3's limit of 10,000 parts per object.")
        uploaded = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"ETag": uploaded["ETag"], "PartNumber": number})


class ObjectStore:
    """The exports bucket."""

    def __init__(self, bucket: str, region: str) -> None:
        self._bucket = bucket
        self._client = s3_client(region)

    def open_sink(self, key: str, content_type: str) -> MultipartSink:
        return MultipartSink(self._client, self._bucket, key, content_type)

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
