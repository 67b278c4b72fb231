"""The sample API event, as `sam local invoke` would send it, creates a real export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_the_sample_create_event_starts_an_export(runtime: Any) -> None:
    event = json.loads((EVENTS / "api_create_export.json").read_text())

    answer = runtime.invoke("ApiFunction", event).json()

    assert answer["statusCode"] == 202, answer["body"]
    job = json.loads(answer["body"])
    assert job["status"] == "queued" and job["dataset"] == "usage_logs"
    get_event = json.loads((EVENTS / "api_get_export.json").read_text())
    get_event["path"] = f"/v1/exports/{job['id']}"
    get_event["pathParameters"] = {"id": job["id"]}
    got = runtime.invoke("ApiFunction", get_event).json()
    assert got["statusCode"] == 200 and json.loads(got["body"])["id"] == job["id"]
