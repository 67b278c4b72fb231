"""A small HTTP client for the end-to-end tests: real sockets, no redirects followed."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    request_headers = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request_headers.setdefault("Content-Type", "application/json")
    if token is not None:
        request_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=request_headers)
    try:
        with _opener.open(request, timeout=60) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers), error.read())


class ApiClient:
    """The API as one user sees it."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> HttpAnswer:
        return http(method, self.base_url + path, self.token, body, headers)

    def create_export(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.call("POST", "/v1/exports", body)
        assert answer.status == 202, answer.body
        created: dict[str, Any] = answer.json()
        return created

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
        """Poll the job until it reaches one of `statuses` (no sleeps-as-synchronisation)."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.call("GET", f"/v1/exports/{job_id}").json()
            if job.get("status") in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"export {job_id} still {job.get('status')} after {timeout}s")
            time.sleep(0.2)

    def export(self, body: dict[str, Any], timeout: float = 90) -> tuple[dict[str, Any], bytes]:
        """Create an export, wait for it to complete, and download its file through the
        presigned URL: the finished job and the file's bytes."""
        job = self.create_export(body)
        done = self.wait_for(job["id"], {"completed", "failed"}, timeout=timeout)
        assert done["status"] == "completed", done["error"]
        _, download = self.download(job["id"])
        assert download.status == 200
        return done, download.body

    def download(self, job_id: str, file: int | None = None) -> tuple[HttpAnswer, HttpAnswer]:
        """The API's redirect, then the presigned URL it points to, fetched over HTTP (a split
        export's manifest, or its file number `file`)."""
        query = "" if file is None else f"?file={file}"
        redirect = self.call("GET", f"/v1/exports/{job_id}/download{query}")
        assert redirect.status == 302, redirect.body
        return redirect, http("GET", redirect.headers["Location"])
