"""GET /v1/openapi.json and /v1/docs as a client and a browser get them from the local runtime."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from dataexport.api.openapi_document import API_DESCRIPTION, BEARER_SCHEME
from dataexport.formats import FORMATS
from tests.e2e.http_client import ApiClient, http

PUBLIC_ROUTES = {"/v1/openapi.json", "/v1/docs"}


@pytest.fixture(scope="module")
def document(runtime: Any) -> dict[str, Any]:
    answer = http("GET", f"{runtime.stage_url}/v1/openapi.json")
    assert answer.status == 200
    body: dict[str, Any] = answer.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_every_operation_asks_for_a_bearer_token(document: dict[str, Any]) -> None:
    # Given the served document, then one bearer JWT scheme is required everywhere
    scheme = document["components"]["securitySchemes"][BEARER_SCHEME]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": scheme["description"],
    }
    assert document["security"] == [{BEARER_SCHEME: []}]
    # And the public routes (the document and the docs page) are not operations of it
    assert PUBLIC_ROUTES.isdisjoint(document["paths"])


def test_every_operation_documents_its_answers_in_our_shapes(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        # Every operation: success with a model, 401/403/429 in the one error shape
        assert {"401", "403", "429"} <= set(responses), (method, path)
        successes = [status for status in responses if status.startswith(("2", "3"))]
        assert successes, (method, path)
        for status, response in responses.items():
            if status == "414":  # the gateway's own answer to a URL too long
                assert (method, path) == ("GET", "/v1/exports/preview")
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema.get("$ref", "").startswith("#/components/schemas/"), (path, status)
            if status.startswith(("4", "5")):
                assert schema["$ref"].endswith("/ErrorBody"), (method, path, status)
        # A body can be too large or not JSON wherever one is sent
        if method in ("POST", "PUT"):
            assert {"413", "415"} <= set(responses), (method, path)
        # 422 only where an Idempotency-Key is honoured
        assert ("422" in responses) == ((method, path) == ("POST", "/v1/exports"))
    # FastAPI's validation shape is not ours and is gone
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {
        "error_code",
        "message",
        "detail",
    }


def test_the_description_names_every_format() -> None:
    names = {"csv": "CSV", "json": "JSON", "ndjson": "NDJSON", "xlsx": "xlsx", "parquet": "Parquet"}
    assert set(FORMATS) == set(names)
    for shown in names.values():
        assert shown in API_DESCRIPTION


def test_the_document_points_at_the_deployment_that_served_it(runtime: Any) -> None:
    # Whether asked under the stage or without it, the routes are under the stage
    stage_path = urlsplit(runtime.stage_url).path  # e.g. /dev
    for base in (runtime.stage_url, runtime.api_url):
        served = http("GET", f"{base}/v1/openapi.json").json()
        assert served["servers"] == [{"url": stage_path, "description": "This deployment"}]
    # And that relative URL reaches the API from the document's host
    token = runtime.token("docs_reader", "org_docs", "member")
    answer = ApiClient(runtime.api_url + stage_path, token).call("GET", "/v1/formats")
    assert answer.status == 200


def test_every_request_example_is_accepted(runtime: Any, document: dict[str, Any]) -> None:
    # Given the examples of POST /v1/exports and POST /v1/schedules
    admin = ApiClient(runtime.api_url, runtime.token("docs_admin", "org_docs", "admin"))
    for path, created in (("/v1/exports", 202), ("/v1/schedules", 201)):
        content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert content["examples"], path
        for name, example in content["examples"].items():
            # When each is sent as it stands, then it is accepted
            answer = admin.call("POST", path, example["value"])
            assert answer.status == created, (path, name, answer.json())


def test_the_docs_page_is_served_whole_by_the_api(runtime: Any) -> None:
    # Given the docs page, without a token
    page = http("GET", f"{runtime.stage_url}/v1/docs")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    # Then everything it loads is relative: served by this API, no CDN
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded and all(not re.match(r"^[a-z]+:|^//", url) for url in loaded), loaded
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for url in loaded:
        asset = http("GET", f"{runtime.stage_url}/v1/{url}")
        assert asset.status == 200, url
        assert len(asset.body) > 0
    # And Swagger UI sends the document to no outside validator
    initializer = http("GET", f"{runtime.stage_url}/v1/docs/swagger-initializer.js").body.decode()
    assert "validatorUrl: null" in initializer
    assert 'url: "openapi.json"' in initializer
    # And an unknown asset is a 404 in the error shape
    missing = http("GET", f"{runtime.stage_url}/v1/docs/secrets.txt")
    assert missing.status == 404 and missing.json()["error_code"] == "ROUTE_NOT_FOUND"


def test_a_created_resource_s_location_is_followable_under_the_stage(runtime: Any) -> None:
    # Given a member who creates an export and a schedule, under the stage and without it
    stage_path = urlsplit(runtime.stage_url).path
    token = runtime.token("docs_locator", "org_docs", "member")
    for base, field in ((runtime.stage_url, "model"), (runtime.api_url, "user_id")):
        client = ApiClient(base, token)
        created = client.call(
            "POST", "/v1/exports", {"dataset": "usage_logs", "format": "csv", "fields": [field]}
        )
        schedule = client.call(
            "POST",
            "/v1/schedules",
            {
                "name": "locator",
                "schedule_expression": "cron(0 6 * * ? *)",
                "timezone": "UTC",
                "export": {"dataset": "usage_logs", "format": "csv", "fields": ["model"]},
            },
        )
        # Then each Location is under the stage, and following it from the host finds the resource
        for answer, status in ((created, 202), (schedule, 201)):
            assert answer.status == status, answer.body
            location = answer.headers["Location"]
            assert location.startswith(f"{stage_path}/v1/")
            found = ApiClient(runtime.api_url, token).call("GET", location)
            assert found.status == 200 and found.json()["id"] == answer.json()["id"]
