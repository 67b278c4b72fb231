"""The deploy gate refuses a state machine definition Step Functions or CloudFormation would
refuse, and says which file and which rule: a repeated state name, a YAML alias, a placeholder
no substitution fills, a Task calling a Lambda that is not a function of the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dataexport_local.definition_checks import Finding, check_definition

STACK: dict[str, dict[str, Any]] = {
    "QueryFunction": {"Type": "AWS::Lambda::Function"},
    "ExportsTable": {"Type": "AWS::DynamoDB::Table"},
}
SUBSTITUTIONS: dict[str, Any] = {
    "QueryFunctionArn": {"Fn::GetAtt": ["QueryFunction", "Arn"]},
    "ExportsTableArn": {"Fn::GetAtt": ["ExportsTable", "Arn"]},
}

VALID = """\
Comment: one Task, one Map whose body has names of its own
StartAt: Query
States:
  Query:
    Type: Task
    Resource: ${QueryFunctionArn}
    Retry:
      - ErrorEquals: [SourceUnavailable]
        BackoffRate: 2
    Next: Parts
  Parts:
    Type: Map
    Label: QueryParts
    ItemsPath: $.parts
    ItemProcessor:
      ProcessorConfig:
        Mode: DISTRIBUTED
        ExecutionType: STANDARD
      StartAt: Part
      States:
        Part:
          Type: Task
          Resource: arn:aws:states:::lambda:invoke
          Parameters:
            FunctionName: ${QueryFunctionArn}
            Payload.$: $
          End: true
    End: true
"""


def findings_for(
    tmp_path: Path, text: str, substitutions: dict[str, Any] | None = None
) -> list[Finding]:
    path = tmp_path / "machine.asl.yaml"
    path.write_text(text, encoding="utf-8")
    return check_definition(path, SUBSTITUTIONS if substitutions is None else substitutions, STACK)


def rules(findings: list[Finding]) -> set[str]:
    return {finding.rule for finding in findings}


def test_a_definition_step_functions_accepts_passes(tmp_path: Path) -> None:
    assert findings_for(tmp_path, VALID) == []


def test_a_state_name_used_in_the_machine_and_in_a_map_body_fails(tmp_path: Path) -> None:
    # Given the Map body reuses the top-level name Query
    text = VALID.replace("StartAt: Part", "StartAt: Query").replace(
        "        Part:", "        Query:"
    )
    # When the gate checks it
    findings = findings_for(tmp_path, text)
    # Then it names the file, the rule and the name
    (unique,) = [finding for finding in findings if finding.rule == "unique-state-names"]
    assert unique.file == str(tmp_path / "machine.asl.yaml")
    assert "Query" in unique.message
    assert str(unique).startswith(f"{tmp_path / 'machine.asl.yaml'}: [unique-state-names]")


def test_a_yaml_alias_fails_with_its_line(tmp_path: Path) -> None:
    text = VALID.replace(
        "    Retry:\n      - ErrorEquals", "    Retry: &retry\n      - ErrorEquals"
    ).replace("          End: true\n", "          Retry: *retry\n          End: true\n", 1)
    (finding,) = findings_for(tmp_path, text)
    assert finding.rule == "no-yaml-aliases"
    assert "line 7" in finding.message and "anchor 'retry'" in finding.message


def test_two_states_of_one_name_side_by_side_fail_though_yaml_would_keep_one(
    tmp_path: Path,
) -> None:
    # Given a second top-level state Query written after the first (a YAML reader keeps the last)
    text = VALID.replace("  Parts:\n", "  Query:\n    Type: Pass\n    Next: Parts\n  Parts:\n", 1)
    (finding,) = findings_for(tmp_path, text)
    assert finding.rule == "no-duplicate-keys"
    assert "line 11" in finding.message and "'Query'" in finding.message


def test_a_placeholder_without_a_substitution_fails_naming_it(tmp_path: Path) -> None:
    text = VALID.replace("ItemsPath: $.parts", "ItemsPath: $.parts\n    Comment: ${Unfilled}")
    findings = findings_for(tmp_path, text)
    assert rules(findings) == {"placeholders-substituted"}
    assert "${Unfilled}" in findings[0].message


@pytest.mark.parametrize(
    "resource",
    [
        # a function of another stack, named by its ARN
        "arn:aws:lambda:us-east-1:123456789012:function:someone-else",
        # a substitution that names a table, not a function
        "${ExportsTableArn}",
    ],
)
def test_a_task_calling_a_lambda_that_is_not_of_the_stack_fails(
    tmp_path: Path, resource: str
) -> None:
    text = VALID.replace("    Resource: ${QueryFunctionArn}", f"    Resource: {resource}")
    findings = findings_for(tmp_path, text)
    assert "lambda-of-the-stack" in rules(findings)
    (stack_rule,) = [finding for finding in findings if finding.rule == "lambda-of-the-stack"]
    assert "state Query" in stack_rule.message and resource in stack_rule.message


def test_a_lambda_invoke_integration_is_checked_by_its_function_name(tmp_path: Path) -> None:
    text = VALID.replace("FunctionName: ${QueryFunctionArn}", "FunctionName: other-function")
    (finding,) = findings_for(tmp_path, text)
    assert finding.rule == "lambda-of-the-stack"
    assert "state Part" in finding.message


def test_a_next_that_names_no_state_fails_by_statelint(tmp_path: Path) -> None:
    text = VALID.replace("    Next: Parts", "    Next: Nowhere")
    findings = findings_for(tmp_path, text)
    assert "statelint" in rules(findings)
    assert any("Nowhere" in finding.message for finding in findings)


def test_a_map_label_step_functions_would_refuse_fails(tmp_path: Path) -> None:
    text = VALID.replace("Label: QueryParts", "Label: Query/Parts")
    (finding,) = findings_for(tmp_path, text)
    assert finding.rule == "map-label"
