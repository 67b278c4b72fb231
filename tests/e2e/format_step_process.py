"""Runs the Format step for one job in its own process and reports its peak memory.

The local runtime keeps moto's S3 in the test process, so the step's own footprint is measured
where it runs in AWS: in a separate process, as a Lambda invocation would be.
"""

from __future__ import annotations

import json
import sys

from dataexport import components
from dataexport.config import FormatStepConfig, read_config
from dataexport.export_job import PartSummary
from dataexport.services.export_steps import Partition, format_partition
from tests.process_memory import peak_rss_bytes


def run_format_step(job_id: str) -> PartSummary:
    """The Format step of a one-partition job, with the adapters built from the environment."""
    config = read_config(FormatStepConfig)
    return format_partition(
        Partition(job_id, 0, 1),
        jobs=components.job_store(config),
        rows_for=components.row_sources(config),
        objects=components.object_store(config),
        catalog=components.catalog(config),
    )


def main(job_id: str) -> None:
    part = run_format_step(job_id)
    print(json.dumps({"rows": part.rows, "bytes": part.bytes, "peak_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main(sys.argv[1])
