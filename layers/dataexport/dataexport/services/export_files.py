"""What an export leaves in the bucket: one file, or numbered files and their manifest.

An export asked to split (`max_file_size_mb`) is formatted into bare pieces (rows only, cut
between rows, each a whole gzip member or zstd frame when compressed). The Upload step packs
consecutive pieces into files of at most the limit as stored, frames each file with the
format's opening, separators and closing (stored beside the pieces, compressed the same way),
joins them in S3 and writes `manifest.json` listing every file with its rows, bytes and sha256.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from dataexport.adapters.object_store import ObjectStore, StoredObject, content_disposition
from dataexport.export_job import (
    MANIFEST_NAME,
    ExportFile,
    ExportJob,
    StagedPiece,
    export_key,
    export_prefix,
    numbered_file_name,
    staging_prefix,
)
from dataexport.export_request import ResolvedExport
from dataexport.formats.compression import compressed

MANIFEST_MEDIA_TYPE = "application/json"
# Pieces are a quarter of the file limit: packed in order, every file but the last is then at
# least three quarters full.
PIECES_PER_FILE = 4


def piece_bytes_for(max_file_bytes: int | None) -> float:
    """How large a piece may grow before compression (no limit for an export in one file)."""
    return math.inf if max_file_bytes is None else max_file_bytes // PIECES_PER_FILE


def pack_pieces(
    pieces: list[StagedPiece], limit: int, *, opening: int, separator: int, closing: int
) -> list[list[StagedPiece]]:
    """Consecutive pieces grouped into files whose stored size (opening, pieces with a
    separator between two, closing) stays within `limit`; a file holds at least one piece, so
    a single piece larger than the limit (one huge row) makes a file of its own. Pieces
    without rows are left out; an export without rows still makes one (empty) file."""
    files: list[list[StagedPiece]] = []
    current: list[StagedPiece] = []
    size = opening + closing
    for piece in pieces:
        if piece.rows == 0:
            continue
        added = piece.bytes + (separator if current else 0)
        if current and size + added > limit:
            files.append(current)
            current, size = [], opening + closing
            added = piece.bytes
        current.append(piece)
        size += added
    if current or not files:
        files.append(current)
    return files


def assemble_files(
    job: ExportJob, resolved: ResolvedExport, pieces: list[StagedPiece], objects: ObjectStore
) -> list[ExportFile]:
    """Pack, frame and join the pieces into the export's numbered files."""
    assert resolved.max_file_bytes is not None
    writer = resolved.writer(resolved.columns, resolved.options, _Discard())
    framing = writer.file_framing()
    opening, separator, closing = (
        _framing_object(job, name, text, resolved, objects)
        for name, text in (
            ("opening", framing.opening),
            ("separator", framing.separator),
            ("closing", framing.closing),
        )
    )
    packed = pack_pieces(
        pieces,
        resolved.max_file_bytes,
        opening=_size(opening),
        separator=_size(separator),
        closing=_size(closing),
    )
    files: list[ExportFile] = []
    for number, file_pieces in enumerate(packed, start=1):
        parts: list[StoredObject] = []
        for position, piece in enumerate(file_pieces):
            if position and separator is not None:
                parts.append(separator)
            parts.append(StoredObject(piece.key, piece.bytes, piece.sha256))
        parts = [part for part in (opening, *parts, closing) if part is not None]
        name = numbered_file_name(job.file_name, number)
        key = export_key(job, name)
        if parts:
            stored = objects.assemble(parts, key, resolved.media_type, content_disposition(name))
        else:  # no rows and nothing around them (NDJSON): an empty file
            stored = objects.put(
                key,
                compressed(resolved.compression, b""),
                resolved.media_type,
                content_disposition(name),
            )
        files.append(
            ExportFile(
                number=number,
                file_name=name,
                s3_key=stored.key,
                rows=sum(piece.rows for piece in file_pieces),
                bytes=stored.bytes,
                sha256=stored.sha256,
            )
        )
    return files


def manifest_document(
    job: ExportJob, resolved: ResolvedExport, files: list[ExportFile], completed_at: datetime
) -> dict[str, Any]:
    """What `manifest.json` says about a split export."""
    return {
        "export_id": job.id,
        "dataset": job.dataset,
        "format": job.format,
        "compression": job.compression,
        "rows": sum(file.rows for file in files),
        "bytes": sum(file.bytes for file in files),
        "max_file_size_mb": job.max_file_size_mb,
        "files": [file.public_view() for file in files],
        "schema": [
            {"name": column.name, "label": column.label, "type": column.type.value}
            for column in resolved.columns
        ],
        "filters": job.filters,
        "time_range": job.time_range,
        "timezone": resolved.options.timezone.key,
        "options": job.options,
        "created_at": job.created_at.isoformat(),
        "completed_at": completed_at.isoformat(),
    }


def manifest_file_name(job: ExportJob) -> str:
    """The name a downloaded manifest gets: the export's own, so several do not collide."""
    return job.file_name.partition(".")[0] + "-" + MANIFEST_NAME


def put_manifest(
    job: ExportJob,
    resolved: ResolvedExport,
    files: list[ExportFile],
    objects: ObjectStore,
    completed_at: datetime,
) -> StoredObject:
    document = manifest_document(job, resolved, files, completed_at)
    body = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    return objects.put(
        export_key(job, MANIFEST_NAME),
        body,
        MANIFEST_MEDIA_TYPE,
        content_disposition(manifest_file_name(job)),
    )


def clear_staging(job_id: str, objects: ObjectStore) -> None:
    """Remove a job's staging objects; a killed Format invocation leaves its upload unfinished,
    so abort those too."""
    objects.abort_uploads(staging_prefix(job_id))
    objects.delete_prefix(staging_prefix(job_id))


def remove_files(job: ExportJob, objects: ObjectStore) -> None:
    """Remove the job's file or files and manifest, and any upload of them still open."""
    objects.abort_uploads(export_prefix(job))
    objects.delete_prefix(export_prefix(job))


def _framing_object(
    job: ExportJob, name: str, text: bytes, resolved: ResolvedExport, objects: ObjectStore
) -> StoredObject | None:
    if not text:
        return None
    body = compressed(resolved.compression, text)
    return objects.put(f"{staging_prefix(job.id)}file-{name}", body, resolved.media_type)


def _size(stored: StoredObject | None) -> int:
    return 0 if stored is None else stored.bytes


class _Discard:
    """A writer's sink where nothing is written: only its framing is asked for."""

    def write(self, data: bytes) -> None:
        return None
