"""A variable missing from one function's template entry fails that function's path locally, as
it would in AWS: the function no longer finds it in another function's environment."""

from __future__ import annotations

import shutil
from pathlib import Path

from dataexport_local.postgres import EmbeddedPostgres
from dataexport_local.runtime import LocalRuntime
from tests.local.conftest import STUB_TEMPLATE
from tests.local.test_api_gateway import call

REMOVED_LINE = "          TOKEN_SECRET_ARN: !Ref TokenSigningSecret\n"
API_VARIABLES = "        Variables:\n          GREETING:"


def test_a_variable_removed_from_the_authorizer_s_entry_fails_its_path(tmp_path: Path) -> None:
    # Given the stub application with TOKEN_SECRET_ARN moved from the authorizer's entry to the
    # API function's (one process holding every function's environment would not notice)
    app = shutil.copytree(STUB_TEMPLATE.parent, tmp_path / "app")
    template = app / STUB_TEMPLATE.name
    text = template.read_text()
    assert text.count(REMOVED_LINE) == text.count(API_VARIABLES) == 1, (
        f"{STUB_TEMPLATE}: the lines this mutation changes have moved"
    )
    text = text.replace(REMOVED_LINE, "").replace(
        API_VARIABLES,
        API_VARIABLES.replace("GREETING:", REMOVED_LINE.lstrip() + "          GREETING:"),
    )
    template.write_text(text)
    database = EmbeddedPostgres(tmp_path / "pg")

    with LocalRuntime(template_path=template, database=database) as runtime:
        # When a caller presents a token the authorizer must verify with the signing secret
        answer = call("GET", f"{runtime.api_url}/v1/things", runtime.token("usr_1", "org_1"))

        # Then the authorizer fails (it reads TOKEN_SECRET_ARN), and API Gateway answers 500
        assert "TOKEN_SECRET_ARN" not in runtime.function_environment("AuthorizerFunction")
        assert "TOKEN_SECRET_ARN" in runtime.function_environment("ApiFunction")
        assert answer.status == 500, answer.body
    database.stop()
