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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
)
from dataexport.export_request import ResolvedExport
from dataexport.formats.compression import compressed
from dataexport.formats.writer import BinarySink, BufferSink, StagedContent
from dataexport.formats.zip_container import Deflated
from dataexport.store_keys import staging_prefix

MANIFEST_MEDIA_TYPE = "application/json"
# Pieces are a quarter of the file limit: packed in order, every file but the last is then at
# least three quarters full.
PIECES_PER_FILE = 4


def piece_bytes_for(max_file_bytes: int | None) -> float:
    """How large a piece may grow before compression (no limit for an export in one file)."""
    return math.inf if max_file_bytes is None else max_file_bytes // PIECES_PER_FILE


def pack_pieces(
    pieces: list[StagedPiece], limit: float, *, opening: int, separator: int, closing: int
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


def written_in_pieces(resolved: ResolvedExport) -> bool:
    """Whether the Format step writes bare pieces: for split files, and for formats that join
    rows with a separator (a JSON array), which are then framed when joined. Only pieces that
    hold rows are joined, so a segment left empty (rows deleted after the export was planned)
    can never leave a stray comma."""
    return (
        resolved.max_file_bytes is not None
        or bool(resolved.writer.row_separator)
        or resolved.writer.assembles_pieces
    )


def assemble_files(
    job: ExportJob, resolved: ResolvedExport, pieces: list[StagedPiece], objects: ObjectStore
) -> list[ExportFile]:
    """Pack, frame and join the pieces into the export's numbered files."""
    assert resolved.max_file_bytes is not None
    framing = _Framing.store(job, resolved, objects)
    files: list[ExportFile] = []
    for number, file_pieces in enumerate(framing.pack(pieces, resolved.max_file_bytes), start=1):
        name = numbered_file_name(job.file_name, number)
        stored = framing.join(file_pieces, export_key(job, name), name)
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


def assemble_whole_file(
    job: ExportJob, resolved: ResolvedExport, pieces: list[StagedPiece], objects: ObjectStore
) -> StoredObject:
    """Frame and join all pieces into the export's one file (or let the format assemble
    them, when its file is a container)."""
    if resolved.writer.assembles_pieces:
        return resolved.writer.assemble(
            resolved.columns,
            resolved.options,
            [_content_of(piece) for piece in pieces],
            _FileTarget(objects, export_key(job), resolved.media_type, job.file_name),
        )
    framing = _Framing.store(job, resolved, objects)
    (every_piece,) = framing.pack(pieces, math.inf)
    return framing.join(every_piece, export_key(job), job.file_name)


def _content_of(piece: StagedPiece) -> StagedContent:
    deflated = None
    if piece.raw_bytes is not None and piece.crc32 is not None:
        deflated = Deflated(piece.bytes, piece.raw_bytes, piece.crc32)
    return StagedContent(piece.key, piece.rows, piece.bytes, piece.sha256, deflated)


@dataclass(frozen=True)
class _FileTarget:
    """The export's one file, for formats that assemble their pieces themselves."""

    objects: ObjectStore
    key: str
    media_type: str
    file_name: str

    def join(self, parts: Sequence[bytes | StagedContent]) -> StoredObject:
        return self.objects.assemble(
            [
                part if isinstance(part, bytes) else StoredObject(part.key, part.bytes, part.sha256)
                for part in parts
            ],
            self.key,
            self.media_type,
            content_disposition(self.file_name),
        )

    def read(self, piece: StagedContent) -> bytes:
        return self.objects.read(piece.key)

    def write(self, produce: Callable[[BinarySink], None]) -> StoredObject:
        with self.objects.open_sink(
            self.key, self.media_type, content_disposition=content_disposition(self.file_name)
        ) as sink:
            produce(sink)
            return sink.complete()


@dataclass(frozen=True)
class _Framing:
    """A format's opening, separator and closing, stored (compressed) beside the pieces."""

    objects: ObjectStore
    resolved: ResolvedExport
    opening: StoredObject | None
    separator: StoredObject | None
    closing: StoredObject | None

    @classmethod
    def store(cls, job: ExportJob, resolved: ResolvedExport, objects: ObjectStore) -> _Framing:
        framing = resolved.writer(resolved.columns, resolved.options, BufferSink()).file_framing()

        def stored(name: str, text: bytes) -> StoredObject | None:
            if not text:
                return None
            body = compressed(resolved.compression, text)
            return objects.put(f"{staging_prefix(job.id)}file-{name}", body, resolved.media_type)

        return cls(
            objects,
            resolved,
            stored("opening", framing.opening),
            stored("separator", framing.separator),
            stored("closing", framing.closing),
        )

    def pack(self, pieces: list[StagedPiece], limit: float) -> list[list[StagedPiece]]:
        return pack_pieces(
            pieces,
            limit,
            opening=_size(self.opening),
            separator=_size(self.separator),
            closing=_size(self.closing),
        )

    def join(self, pieces: list[StagedPiece], key: str, file_name: str) -> StoredObject:
        resolved = self.resolved
        if not pieces:  # an export without rows: the format's own empty file
            return self.objects.put(
                key,
                compressed(
                    resolved.compression,
                    resolved.writer.whole_file(resolved.columns, resolved.options, []),
                ),
                resolved.media_type,
                content_disposition(file_name),
            )
        parts: list[StoredObject] = []
        for position, piece in enumerate(pieces):
            if position and self.separator is not None:
                parts.append(self.separator)
            parts.append(StoredObject(piece.key, piece.bytes, piece.sha256))
        parts = [part for part in (self.opening, *parts, self.closing) if part is not None]
        return self.objects.assemble(
            parts, key, resolved.media_type, content_disposition(file_name)
        )


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
            {
                "name": column.name,
                "label": column.label,
                "type": column.type.value,
                **_privacy_of(resolved, column.name),
            }
            for column in resolved.columns
        ],
        "privacy": job.privacy,
        "filters": job.filters,
        "time_range": job.time_range,
        "timezone": resolved.options.timezone.key,
        "options": job.options,
        "created_at": job.created_at.isoformat(),
        "completed_at": completed_at.isoformat(),
    }


def _privacy_of(resolved: ResolvedExport, name: str) -> dict[str, str]:
    """A schema entry's note of the transform that rewrote its values, if one did."""
    rewrite = resolved.privacy.rewrites.get(name)
    return {} if rewrite is None else {"privacy": rewrite.value}


def record_manifest(
    job: ExportJob, resolved: ResolvedExport, files: list[ExportFile], completed_at: datetime
) -> dict[str, Any]:
    """The manifest the job record keeps: manifest.json's, without the list of files (the job
    lists them, or is its one file), with the one file's sha256 when there is one."""
    document = manifest_document(job, resolved, files, completed_at)
    listed = document.pop("files")
    document["file_count"] = len(listed)
    if len(listed) == 1:
        document["sha256"] = listed[0]["sha256"]
    return document


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


def _size(stored: StoredObject | None) -> int:
    return 0 if stored is None else stored.bytes
