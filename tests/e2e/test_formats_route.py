"""GET /v1/formats: what a client needs to build a request for each format."""

from __future__ import annotations

from typing import Any

from tests.e2e.http_client import ApiClient, http


def test_formats_list_their_media_types_options_and_compression(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_member", "org_acme", "member"))
    answer = client.call("GET", "/v1/formats")
    assert answer.status == 200, answer.body
    formats = {item["name"]: item for item in answer.json()["items"]}

    assert set(formats) == {"csv", "json", "ndjson", "xlsx", "parquet"}
    csv = formats["csv"]
    assert (csv["media_type"], csv["extension"]) == ("text/csv; charset=utf-8", "csv")
    assert set(csv["options"]) == {
        "timezone",
        "bom",
        "delimiter",
        "line_ending",
        "decimal_places",
        "flatten",
    }
    assert csv["options"]["delimiter"]["enum"] == [",", ";", "\t", "|"]
    assert csv["options"]["bom"]["default"] is True
    assert set(formats["ndjson"]["options"]) == {"timezone", "nested", "flatten"}
    codecs = {codec["name"]: codec for codec in formats["json"]["compression"]}
    assert codecs["zstd"] == {"name": "zstd", "suffix": ".zst", "media_type": "application/zstd"}
    assert codecs["none"]["media_type"] == "application/json"
    assert formats["json"]["splittable"] is True
    for container in ("xlsx", "parquet"):
        assert [codec["name"] for codec in formats[container]["compression"]] == ["none"]
        assert formats[container]["splittable"] is False
    assert formats["parquet"]["media_type"] == "application/vnd.apache.parquet"


def test_formats_need_a_token(runtime: Any) -> None:
    assert http("GET", runtime.api_url + "/v1/formats").status == 401
