"""Runs the Format step for one job in its own process and reports its peak memory.

The local runtime keeps moto's S3 in the test process, so the step's own footprint is measured
where it runs in AWS: in a separate process, as a Lambda invocation would be.
"""

from __future__ import annotations

import json
import sys

from dataexport import components
from dataexport.config import FormatStepConfig, read_config
from dataexport.services.export_steps import Partition, format_partition


def main(job_id: str) -> None:
    config = read_config(FormatStepConfig)
    part = format_partition(
        Partition(job_id, 0, 1),
        jobs=components.job_store(config),
        rows_for=components.row_sources(config),
        objects=components.object_store(config),
        catalog=components.catalog(config),
    )
    print(json.dumps({"rows": part.rows, "bytes": part.bytes, "peak_bytes": peak_rss_bytes()}))


def peak_rss_bytes() -> int:
    """This process's high-water resident set (VmHWM; ru_maxrss would include the parent's)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM is not reported on this system")


if __name__ == "__main__":
    main(sys.argv[1])
