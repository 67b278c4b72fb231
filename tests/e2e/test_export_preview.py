"""GET /v1/exports/preview: the first rows exactly as the file will hold them, and how big the
whole export will be, without creating a job."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.e2e.http_client import ApiClient

START, END = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"


def preview(client: ApiClient, **params: Any) -> Any:
    return client.call("GET", "/v1/exports/preview?" + urlencode(params))


def test_a_preview_is_the_beginning_of_the_file_and_estimates_the_whole(runtime: Any) -> None:
    # Given an admin's request with fields, a filter, a range and CSV options
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    fields = ["created_at", "user_name", "model", "status_code", "cost_usd"]
    filters = [{"field": "status_code", "op": "in", "value": [200, 429]}]
    options = {"timezone": "Europe/Berlin", "delimiter": ";", "line_ending": "lf"}

    # When it is previewed and, separately, exported
    answer = preview(
        admin,
        dataset="usage_logs",
        fields=",".join(fields),
        filters=json.dumps(filters),
        start=START,
        end=END,
        options=json.dumps(options),
        limit=5,
    )
    assert answer.status == 200, answer.body
    shown = answer.json()
    job = admin.create_export(
        {
            "dataset": "usage_logs",
            "fields": fields,
            "filters": filters,
            "time_range": {"start": START, "end": END},
            "options": options,
        }
    )
    done = admin.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    _, download = admin.download(job["id"])

    # Then the preview is the file's first five rows, byte for byte, after its header
    assert shown["rows"] == 5
    assert download.body.decode("utf-8").startswith(shown["content"])
    assert shown["content"].count("\n") == 6

    # And it counted the export's rows exactly and estimated its size closely
    assert shown["estimated_rows_exact"] is True
    assert shown["estimated_rows"] == done["rows_exported"]
    assert 0.5 * done["bytes"] <= shown["estimated_bytes"] <= 2 * done["bytes"]


def test_a_member_previews_only_their_own_rows(runtime: Any) -> None:
    member = ApiClient(runtime.api_url, runtime.token("usr_acme_02", "org_acme", "member"))
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    own = preview(member, dataset="usage_logs", format="ndjson", fields="user_id", limit=100)
    everyone = preview(admin, dataset="usage_logs", format="ndjson", fields="user_id", limit=100)
    assert own.status == everyone.status == 200, own.body
    owners = {json.loads(line)["user_id"] for line in own.json()["content"].splitlines()}
    assert owners == {"usr_acme_02"}
    assert own.json()["estimated_rows"] < everyone.json()["estimated_rows"]


def test_bad_preview_parameters_are_named(runtime: Any) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    cases = [
        ({"dataset": "usage_logs", "fields": "nope"}, "fields"),
        ({"dataset": "usage_logs", "filters": "[not json"}, "filters"),
        ({"dataset": "usage_logs", "preset": "someday"}, "preset"),
    ]
    for params, field in cases:
        answer = preview(admin, **params)
        assert answer.status == 400, (params, answer.body)
        assert answer.json()["detail"]["field"] == field, answer.body
        assert "time_range" not in answer.json()["message"]
    missing = preview(admin, dataset="nothing")
    assert missing.status == 404 and missing.json()["error_code"] == "DATASET_NOT_FOUND"
    assert missing.json()["detail"] == {"dataset": "nothing", "field": "dataset"}
