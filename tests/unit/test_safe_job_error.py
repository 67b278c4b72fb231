"""Failure reasons shown to users never carry driver messages, SQL or stack traces."""

import json

from dataexport.services.export_steps import GENERIC_FAILURE, safe_job_error


def cause(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


def test_our_own_errors_keep_their_code_and_message() -> None:
    error = safe_job_error(
        "SourceUnavailable", cause("SourceUnavailable", "The database could not be reached.")
    )
    assert error.code == "SOURCE_UNAVAILABLE"
    assert error.message == "The database could not be reached."


def test_foreign_errors_become_a_generic_reason() -> None:
    leaked = 'relation "secret_table" does not exist: SELECT * FROM secret_table'
    error = safe_job_error("ProgrammingError", cause("ProgrammingError", leaked))
    assert error == GENERIC_FAILURE
    assert "secret_table" not in error.message


def test_timeouts_are_named() -> None:
    assert safe_job_error("States.Timeout", None).code == "TIMEOUT"


def test_a_garbled_cause_still_gives_a_reason() -> None:
    assert safe_job_error("QueryFailed", "not json").code == "QUERY_FAILED"
