"""The dataexport-local command line: tokens for another process, and the demo's row count."""

from __future__ import annotations

import jwt
import pytest

from dataexport_local.aws import free_port
from dataexport_local.cli import count_csv_rows, describe_chain_report, main
from dataexport_local.tokens import DEVELOPMENT_SIGNING_KEY


def test_the_token_command_prints_only_a_token_the_local_key_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_TOKEN_SECRET", raising=False)
    status = main(
        ["token", "--sub", "usr_1", "--org", "org_1", "--role", "operator", "--permissions", ""]
    )
    printed = capsys.readouterr().out.strip()
    assert status == 0 and "\n" not in printed
    claims = jwt.decode(printed, DEVELOPMENT_SIGNING_KEY, algorithms=["HS256"])
    assert (claims["sub"], claims["org"], claims["role"], claims["permissions"]) == (
        "usr_1",
        "org_1",
        "operator",
        [],
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_csv_rows_are_counted_without_the_header_with_bom_and_quoted_newlines() -> None:
    body = '\ufeffTime,Note\r\n2026-01-01,"two\r\nlines"\r\n2026-01-02,"a, b"\r\n'.encode()
    assert count_csv_rows(body) == 2
    assert count_csv_rows(b"") == 0


def test_a_malformed_parameter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--parameter", "NoEqualsSign"])
    assert exited.value.code == 2
    assert "Key=Value" in capsys.readouterr().err


def test_audit_verify_without_a_running_api_says_so_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["audit", "verify", "--org", "org_acme", "--api-url", url]) == 2
    assert "dataexport-local serve" in capsys.readouterr().err


def test_a_broken_chain_report_names_the_first_bad_event() -> None:
    report = {
        "org_id": "org_acme",
        "ok": False,
        "count": 5,
        "head_seq": 5,
        "head_hash": "ab" * 32,
        "problem": {"seq": 3, "kind": "removed", "message": "Event(s) 3 are missing."},
    }
    text = describe_chain_report(report)
    assert text.startswith("org_acme: audit chain BROKEN at seq 3 (removed)")
