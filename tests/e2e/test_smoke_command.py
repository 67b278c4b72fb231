"""`make smoke` (dataexport-local smoke): one export end to end through a stack's public API,
its file checked against the job; here against the local runtime's URL, as a deployer would
against their stack's."""

from __future__ import annotations

from typing import Any

import pytest

from dataexport_local import cli


def test_smoke_exports_a_dataset_and_checks_the_file_against_the_job(
    runtime: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token = runtime.token("u_smoke", "org_acme", "member")
    status = cli.main(
        [
            "smoke",
            "--api-url",
            f"{runtime.stage_url}/v1",
            "--token",
            token,
            "--dataset",
            "usage_logs",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "exporting usage_logs as CSV" in out
    assert "OK: export exp_" in out and "its file matches the job" in out


def test_smoke_fails_clearly_with_a_token_the_stack_refuses(
    runtime: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["smoke", "--api-url", runtime.api_url, "--token", "not-a-token"])
    assert status == 1
    assert "smoke FAILED: GET /v1/datasets answered 401" in capsys.readouterr().err


def test_smoke_names_the_datasets_when_asked_for_one_it_cannot_use(
    runtime: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token = runtime.token("u_smoke", "org_acme", "member")
    status = cli.main(
        ["smoke", "--api-url", runtime.api_url, "--token", token, "--dataset", "nope"]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "smoke FAILED: dataset 'nope' is not one of " in err and "usage_logs" in err
