"""An admin exports the tenant's audit trail like any dataset, and the file verifies on its own."""

from __future__ import annotations

import json
from typing import Any

from dataexport.audit import AuditEvent, verify_chain
from dataexport.catalog.loader import load_catalog
from tests.e2e.http_client import ApiClient


def test_the_audit_trail_exports_as_a_verifiable_dataset(runtime: Any) -> None:
    # Given a tenant whose users exported, downloaded and were refused things
    org = "org_initech"
    member = ApiClient(runtime.api_url, runtime.token("ivy", org, "member"))
    admin = ApiClient(runtime.api_url, runtime.token("ian", org, "admin"))
    job = member.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})
    member.wait_for(job["id"], {"completed"})
    member.download(job["id"])
    assert member.call("POST", "/v1/exports", {"dataset": "audit_events"}).status == 404

    # When the admin exports the audit_events dataset as NDJSON
    columns = [column.name for column in load_catalog().get("audit_events").columns]
    export = admin.create_export({"dataset": "audit_events", "format": "ndjson", "fields": columns})
    done = admin.wait_for(export["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    _, download = admin.download(export["id"])

    # Then the file holds the chain in order, and the chain verifies from the file alone
    rows = [json.loads(line) for line in download.body.decode().splitlines()]
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    types = [row["type"] for row in rows]
    assert types[:3] == ["DATA_EXPORT", "DATA_EXPORTED", "PERMISSION_DENIED"]
    report = verify_chain([AuditEvent.model_validate({"org_id": org, **row}) for row in rows])
    assert report.ok, report
