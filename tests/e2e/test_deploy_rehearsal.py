"""The local runtime catches what AWS would refuse: the project's own template, changed in one
place, fails locally the way the deployed stack would fail.

Each test copies template.yaml beside links to the code it names, makes one change, starts a
runtime on it and shows the failure a developer would see: a permission removed from one role
(moto enforces each role's policies), a variable removed from one function's entry (each function
runs with its own environment only), a placeholder the definition's substitutions lack.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dataexport_local.cfn_yaml import TemplateError
from dataexport_local.postgres import LocalDatabase
from dataexport_local.runtime import LocalRuntime
from dataexport_local.template import DEFAULT_TEMPLATE_PATH, REPOSITORY_ROOT
from tests.conftest import TEST_DATASETS
from tests.e2e.http_client import ApiClient

# What template.yaml refers to by relative path.
_LINKED = ("functions", "layers", "statemachines", "tasks")
EXPORT = {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}

FORMAT_STAGING_WRITES = (
    ("            # DeleteObject removes the part a step finished after its job was cancelled.\n")
    + """            - Effect: Allow
              Action:
                - s3:PutObject
                - s3:AbortMultipartUpload
                - s3:DeleteObject
              Resource: !Sub "${ExportsBucket.Arn}/staging/*"
"""
)
FORMAT_STAGING_WRITES_WITHOUT_PUT = FORMAT_STAGING_WRITES.replace(
    "                - s3:PutObject\n", ""
)
API_READS_EXPORTS = """              Action:
                - s3:GetObject
                - s3:DeleteObject
                - s3:AbortMultipartUpload
              Resource: !Sub "${ExportsBucket.Arn}/exports/*"
"""
API_READS_EXPORTS_WITHOUT_GET = API_READS_EXPORTS.replace("                - s3:GetObject\n", "")
API_STATE_MACHINE_VARIABLE = """          EXPORTS_BUCKET_NAME: !Ref ExportsBucket
          EXPORT_STATE_MACHINE_ARN: !Ref ExportStateMachine
"""


def mutated_template(directory: Path, replacements: Sequence[tuple[str, str]]) -> Path:
    """template.yaml with each (old, new) replaced once, in `directory` beside links to the code."""
    directory.mkdir()
    for name in _LINKED:
        (directory / name).symlink_to(REPOSITORY_ROOT / name)
    text = DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, f"template.yaml no longer holds exactly one {old!r}"
        text = text.replace(old, new)
    template = directory / DEFAULT_TEMPLATE_PATH.name
    template.write_text(text, encoding="utf-8")
    return template


@contextmanager
def runtime_on(template: Path, database: LocalDatabase) -> Iterator[LocalRuntime]:
    with LocalRuntime(
        database=database,
        template_path=template,
        environment={"DATASETS_DIR": str(TEST_DATASETS)},
        scheduler=False,
    ) as runtime:
        yield runtime


def client(runtime: LocalRuntime, user: str) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(user, "org_rehearsal", "admin"))


def finished_export(runtime: LocalRuntime, user: str) -> tuple[ApiClient, dict[str, Any]]:
    """An export of `user`'s, once it completed or failed."""
    api = client(runtime, user)
    return api, api.wait_for(api.create_export(EXPORT)["id"], {"completed", "failed"})


def failure_causes(runtime: LocalRuntime, job_id: str) -> str:
    """Every failure the execution's history records, as one text."""
    sfn = runtime.boto3_client("stepfunctions")
    arn = runtime.execution_arn(job_id)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    details: list[Any] = [
        value
        for event in events
        for key, value in event.items()
        if key.endswith("FailedEventDetails") or key == "executionFailedEventDetails"
    ]
    return "\n".join(f"{detail.get('error')}: {detail.get('cause')}" for detail in details)


def test_without_s3_put_object_on_staging_the_format_step_fails_with_access_denied(
    tmp_path: Path, database: LocalDatabase
) -> None:
    # Given the Format function's role without s3:PutObject on staging/
    template = mutated_template(
        tmp_path / "app", [(FORMAT_STAGING_WRITES, FORMAT_STAGING_WRITES_WITHOUT_PUT)]
    )
    with runtime_on(template, database) as runtime:
        # When an export runs
        _, job = finished_export(runtime, "u_rehearsal_s3")

        # Then it fails, and the execution records S3's AccessDenied from the Format step
        assert job["status"] == "failed", job
        assert runtime.wait_for_execution_end(job["id"]) == "FAILED"
        causes = failure_causes(runtime, job["id"])
        assert "AccessDenied" in causes, causes


def test_without_s3_get_object_the_download_links_the_api_signs_are_refused(
    tmp_path: Path, database: LocalDatabase
) -> None:
    # Given the API function's role without s3:GetObject on exports/ (it signs download links)
    template = mutated_template(
        tmp_path / "app", [(API_READS_EXPORTS, API_READS_EXPORTS_WITHOUT_GET)]
    )
    with runtime_on(template, database) as runtime:
        # When a completed export is downloaded through its link
        api, job = finished_export(runtime, "u_rehearsal_download")
        assert job["status"] == "completed", job
        _, answer = api.download(job["id"])

        # Then the API still signs a link, but S3 refuses it: its signer may not read the file
        assert answer.status == 403 and b"AccessDenied" in answer.body, answer.body


def test_without_its_state_machine_variable_the_api_cannot_start_an_export(
    tmp_path: Path, database: LocalDatabase
) -> None:
    # Given the API function's entry without EXPORT_STATE_MACHINE_ARN
    template = mutated_template(
        tmp_path / "app",
        [(API_STATE_MACHINE_VARIABLE, API_STATE_MACHINE_VARIABLE.splitlines(keepends=True)[0])],
    )
    with runtime_on(template, database) as runtime:
        # When a user creates an export
        api = client(runtime, "u_rehearsal_variable")
        answer = api.call("POST", "/v1/exports", EXPORT)

        # Then the API function fails (no other function's environment hides the gap): the
        # caller gets a 500 without the reason, which the function's log names
        assert "EXPORT_STATE_MACHINE_ARN" not in runtime.function_environment("ApiFunction")
        assert answer.status == 500, answer.body
        assert answer.json()["error_code"] == "INTERNAL"
        assert "EXPORT_STATE_MACHINE_ARN" not in answer.body.decode()


def test_a_placeholder_without_a_substitution_stops_the_runtime_naming_it(
    tmp_path: Path, database: LocalDatabase
) -> None:
    # Given the export definition names a function its DefinitionSubstitutions do not give
    template = mutated_template(
        tmp_path / "app",
        [("ExportUploadFunctionArn: !GetAtt", "ExportUploaderFunctionArn: !GetAtt")],
    )
    # Then the runtime does not start, and says which placeholder has no value
    with (
        pytest.raises(TemplateError, match=r"ExportUploadFunctionArn"),
        runtime_on(template, database),
    ):
        pass
