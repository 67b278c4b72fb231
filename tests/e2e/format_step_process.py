"""Runs the Format step for one partition in its own process and reports its peak memory.

    python -m tests.e2e.format_step_process JOB_ID [PARTITION_JSON [KILL_IN_SEGMENT]]

The local runtime keeps moto's S3 in the test process, so the step's own footprint is measured
where it runs in AWS: in a separate process, as a Lambda invocation would be. PARTITION_JSON is
a Map item (default: the whole export as one partition). KILL_IN_SEGMENT makes the process kill
itself (SIGKILL, like a Lambda that is shut down) while it writes that segment.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from dataexport import components
from dataexport.adapters.object_store import MultipartSink
from dataexport.config import FormatStepConfig, read_config
from dataexport.export_job import staging_key
from dataexport.services.export_steps import FormatOutcome, Partition, format_partition
from tests.process_memory import peak_rss_bytes


def run_format_step(job_id: str, partition: Partition | None = None) -> FormatOutcome:
    """The Format step of one partition, with the adapters built from the environment."""
    config = read_config(FormatStepConfig)
    return format_partition(
        partition or Partition(job_id, 0, 1),
        jobs=components.job_store(config),
        rows_for=components.row_sources(config),
        objects=components.object_store(config),
        catalog=components.catalog(config),
        checkpoints=components.checkpoint_store(config),
    )


def kill_while_writing(key: str) -> None:
    """Make this process die the moment a sink starts writing the object `key`."""
    write = MultipartSink.write

    def write_then_die(sink: MultipartSink, data: bytes) -> None:
        write(sink, data)
        if sink.key == key:
            os.kill(os.getpid(), signal.SIGKILL)

    MultipartSink.write = write_then_die  # type: ignore[method-assign, assignment]


def main(arguments: list[str]) -> None:
    job_id = arguments[0]
    partition = None
    if len(arguments) > 1:
        item: dict[str, Any] = json.loads(arguments[1])
        partition = Partition(job_id, item["index"], item["count"], item["bounds"])
    if len(arguments) > 2 and partition is not None:
        kill_while_writing(staging_key(job_id, partition.index, int(arguments[2])))
    part = run_format_step(job_id, partition)
    print(json.dumps({"rows": part.rows, "bytes": part.bytes, "peak_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main(sys.argv[1:])
