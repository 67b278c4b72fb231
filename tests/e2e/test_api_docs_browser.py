"""/v1/docs in a real headless Chromium: authorize with a token, create an export with "Try it
out", see 202, then download it from the same page.

Runs with `make test-browser` (marker `browser`, outside `make test`): it needs Chromium
(Debian: `apt-get install chromium`; CHROMIUM names another binary) and the `playwright`
package, and skips without them. SCREENSHOT=path saves what the page showed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.http_client import ApiClient

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CREATE_OPERATION = "#operations-Exports-create_export_v1_exports_post"
DOWNLOAD_OPERATION = "#operations-Exports-download_export_v1_exports__export_id__download_get"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def wait_until_completed(client: ApiClient, export_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.call("GET", f"/v1/exports/{export_id}").json()["status"] == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"export {export_id} did not complete in {timeout}s")


def save_screenshot(page: Any, operation: Any, path: str) -> None:
    """The operation's answer: the request sent (with its token) and the server's response."""
    scrolled = page.evaluate("window.scrollY")  # boxes are in the viewport, clips in the page
    top = operation.locator(".responses-wrapper").bounding_box()
    answer = operation.locator(".live-responses-table").bounding_box()
    page.screenshot(
        path=path,
        full_page=True,
        animations="disabled",
        clip={
            "x": top["x"],
            "y": top["y"] + scrolled,
            "width": top["width"],
            "height": answer["y"] + answer["height"] - top["y"],
        },
    )


def test_docs_create_and_download_an_export(browser: Any, runtime: Any) -> None:
    token = runtime.token("docs_browser", "org_acme", "member")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    outside: list[str] = []
    to_storage: list[Any] = []

    def watch(request: Any) -> None:
        if request.url.startswith(runtime.aws_endpoint):
            to_storage.append(request)
        elif not request.url.startswith(("http://127.0.0.1", "data:")):
            outside.append(request.url)

    page.on("request", watch)

    # Given the docs page, authorized with a pasted token
    page.goto(f"{runtime.stage_url}/v1/docs")
    page.click("button.authorize")
    page.fill(".auth-container input", token)
    page.click(".auth-btn-wrapper button.authorize")
    page.click(".auth-btn-wrapper button.btn-done")

    # When POST /v1/exports is tried with its first example (CSV with filters)
    create = page.locator(CREATE_OPERATION)
    create.locator(".opblock-summary").click()
    create.locator("button.try-out__btn").click()
    create.locator("button.execute").click()

    # Then the page shows 202 and the new job
    status = create.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    assert status.first.inner_text().strip() == "202"
    shown = create.locator(".live-responses-table .microlight").first.inner_text()
    export_id = shown.split('"id": "')[1].split('"')[0]
    if os.environ.get("SCREENSHOT"):
        save_screenshot(page, create, os.environ["SCREENSHOT"])

    # And once it completes, the download operation fetches the file through its link
    wait_until_completed(ApiClient(runtime.stage_url, token), export_id)
    download = page.locator(DOWNLOAD_OPERATION)
    download.locator(".opblock-summary").click()
    download.locator("button.try-out__btn").click()
    download.locator("input[placeholder='export_id']").fill(export_id)
    download.locator("button.execute").click()
    status = download.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    # The browser follows the 302 to the file: Swagger UI shows the file's 200 ("Undocumented":
    # the document describes the API's answer, the redirect)
    assert status.first.inner_text().split()[0] == "200"
    body = download.locator(".live-responses-table .response .response-col_description").first
    assert "Time;Model;Total Tokens;Cost (USD)" in body.inner_text()  # the CSV's header row

    # And the browser fetched the file with the presigned URL alone: S3 refuses a request that
    # also carries the API's Authorization header, and one without it needs no preflight
    assert [request.method for request in to_storage] == ["GET"]
    assert "authorization" not in to_storage[0].headers

    # And nothing left this machine
    assert outside == []
