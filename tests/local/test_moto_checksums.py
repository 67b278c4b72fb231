"""The local S3 computes a multipart upload's full-object checksum as the parts go by: the
same value moto computes over the joined object."""

from __future__ import annotations

import os

from moto.s3 import models

from dataexport_local.aws import _running_full_object_checksums


def full_object_checksum(parts: list[bytes], algorithm: str | None) -> object:
    builder = models.MultipartChecksumBuilder(algorithm, None)
    for part in parts:
        builder.addPart(part)
    return builder.build()


def test_the_running_checksum_is_moto_s_own() -> None:
    parts = [os.urandom(100_000 + index) for index in range(7)]
    for algorithm in (None, "CRC32", "CRC32C", "SHA256"):
        expected = full_object_checksum(parts, algorithm)
        with _running_full_object_checksums():
            assert full_object_checksum(parts, algorithm) == expected
