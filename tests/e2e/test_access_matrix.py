"""Every route x every kind of caller, with the status each must get.

Identities: no token, a bad token, the member who owns the export, another member of the same
tenant, a member of another tenant, an admin of the tenant, and a platform operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.http_client import ApiClient

IDENTITIES = ["none", "bad", "member", "other_member", "foreign_member", "admin", "operator"]
TENANT, OTHER_TENANT = "org_acme", "org_globex"


def body(tag: str) -> dict[str, Any]:
    return {
        "dataset": "usage_logs",
        "format": "csv",
        "fields": ["model", "endpoint"],
        "options": {"timezone": tag},
    }


# route -> expected status per identity, in IDENTITIES order
MATRIX: dict[str, list[int]] = {
    "POST /v1/exports": [401, 401, 202, 202, 202, 202, 403],
    "GET /v1/exports": [401, 401, 200, 200, 200, 200, 403],
    "GET /v1/exports/{id}": [401, 401, 200, 404, 404, 200, 403],
    "GET /v1/exports/{id}/download": [401, 401, 302, 404, 404, 302, 403],
    # The export has completed: those who may see it are told it cannot be cancelled any more.
    "POST /v1/exports/{id}/cancel": [401, 401, 409, 404, 404, 409, 403],
    "DELETE /v1/exports/{id}": [401, 401, 200, 404, 404, 200, 403],
    "GET /v1/datasets": [401, 401, 200, 200, 200, 200, 403],
    "GET /v1/datasets/usage_logs": [401, 401, 200, 200, 200, 200, 403],
    "GET /v1/datasets/audit_events": [401, 401, 404, 404, 404, 200, 403],
    f"GET /v1/audit-events?org={TENANT}": [401, 401, 403, 403, 403, 200, 200],
    f"GET /v1/audit-events/verify?org={TENANT}": [401, 401, 403, 403, 403, 200, 200],
    "GET /v1/retention-policies": [401, 401, 403, 403, 403, 200, 403],
    "GET /v1/openapi.json": [200, 200, 200, 200, 200, 200, 200],
    "GET /v1/docs": [200, 200, 200, 200, 200, 200, 200],
    "GET /v1/no-such-route": [404, 404, 404, 404, 404, 404, 404],
}
ZONES = {
    "member": "Europe/Paris",
    "other_member": "Europe/Rome",
    "foreign_member": "Asia/Tokyo",
    "admin": "America/Lima",
}


@pytest.fixture(scope="module")
def clients(runtime: Any) -> dict[str, ApiClient]:
    tokens = {
        "none": None,
        "bad": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad-signature",
        "member": runtime.token("mia", TENANT, "member"),
        "other_member": runtime.token("otto", TENANT, "member"),
        "foreign_member": runtime.token("mia", OTHER_TENANT, "member"),
        "admin": runtime.token("ada", TENANT, "admin"),
        "operator": runtime.token("ops", "platform", "operator"),
    }
    return {name: ApiClient(runtime.api_url, token) for name, token in tokens.items()}


@pytest.fixture(scope="module")
def completed_job(clients: dict[str, ApiClient]) -> Iterator[str]:
    member = clients["member"]
    job = member.create_export(body("UTC"))
    assert member.wait_for(job["id"], {"completed"})["status"] == "completed"
    yield job["id"]


def fresh_completed_job(clients: dict[str, ApiClient], tag: str) -> str:
    member = clients["member"]
    job = member.create_export(body(tag))
    member.wait_for(job["id"], {"completed"})
    return str(job["id"])


@pytest.mark.parametrize("route", list(MATRIX))
@pytest.mark.parametrize("identity", IDENTITIES)
def test_route_answers_each_identity_as_specified(
    clients: dict[str, ApiClient], completed_job: str, route: str, identity: str
) -> None:
    expected = MATRIX[route][IDENTITIES.index(identity)]
    method, path = route.split(" ", 1)
    job_id = completed_job
    if method == "DELETE" and expected == 200:
        # Deleting is final: the owner and the admin each delete an export of their own test.
        job_id = fresh_completed_job(
            clients, "Africa/Cairo" if identity == "admin" else "Asia/Dubai"
        )
    path = path.replace("{id}", job_id)
    payload = body(ZONES.get(identity, "UTC")) if route == "POST /v1/exports" else None

    answer = clients[identity].call(method, path, payload)

    assert answer.status == expected, (route, identity, answer.body[:300])
    if expected >= 400:
        assert answer.json().keys() == {"error_code", "message", "detail"}
