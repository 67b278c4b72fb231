"""State machine definitions are read as Step Functions receives them from `sam package`: the
file as written, so YAML anchors and aliases are refused, and every state name is unique across
the whole machine, Map bodies included."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataexport_local.cfn_yaml import TemplateError, read_uploaded_document
from dataexport_local.state_machine_definition import duplicate_state_names
from dataexport_local.template import (
    DEFAULT_TEMPLATE_PATH,
    StateMachineSpec,
    resolve_template,
)
from tests.local.conftest import BACKUP_PARAMETERS


def project_state_machines() -> list[StateMachineSpec]:
    template = resolve_template(
        DEFAULT_TEMPLATE_PATH,
        BACKUP_PARAMETERS,
    )
    return list(template.state_machines)


def test_every_definition_of_the_template_is_one_step_functions_accepts() -> None:
    machines = project_state_machines()
    assert {machine.logical_id for machine in machines} >= {
        "ExportStateMachine",
        "BackupStateMachine",
    }
    for machine in machines:
        # When each is read as the runtime reads it (anchors refused, names checked)
        definition = machine.definition()
        # Then no state name repeats anywhere in it
        assert duplicate_state_names(definition) == [], machine.logical_id


def test_both_format_maps_have_bodies_of_their_own_names() -> None:
    (export,) = [m for m in project_state_machines() if m.logical_id == "ExportStateMachine"]
    states = export.definition()["States"]
    inline = states["FormatInline"]["ItemProcessor"]["States"]
    distributed = states["FormatDistributed"]["ItemProcessor"]["States"]
    assert set(inline).isdisjoint(distributed)
    # The two bodies do the same work: identical once the names are set aside.
    assert [state["Type"] for state in inline.values()] == [
        state["Type"] for state in distributed.values()
    ]
    assert inline["FormatPartition"]["Retry"] == distributed["FormatDistributedPartition"]["Retry"]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (
            "StartAt: A\nStates:\n  A: &shared\n    Type: Pass\n    End: true\n",
            "line 3: YAML anchor 'shared'",
        ),
        (
            "x: &r [1]\nStartAt: A\nStates:\n  A:\n    Type: Pass\n    Result: *r\n    End: true\n",
            "YAML anchor 'r'",
        ),
    ],
)
def test_a_definition_with_yaml_anchors_or_aliases_is_refused_naming_the_line(
    tmp_path: Path, text: str, rule: str
) -> None:
    path = tmp_path / "machine.asl.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=rule):
        read_uploaded_document(path)


def test_a_state_name_repeated_inside_a_map_body_is_refused_naming_it() -> None:
    body = {"StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": True}}}
    definition = {
        "StartAt": "One",
        "States": {
            "One": {"Type": "Map", "ItemProcessor": body, "Next": "Two"},
            "Two": {"Type": "Parallel", "Branches": [body], "Next": "Work"},
            "Work": {"Type": "Pass", "End": True},
        },
    }
    spec = StateMachineSpec(
        logical_id="Machine",
        name="machine",
        arn="arn:aws:states:us-east-1:123456789012:stateMachine:machine",
        type="STANDARD",
        role_arn="arn:aws:iam::123456789012:role/machine",
        definition_path=None,
        inline_definition=definition,
        substitutions={},
    )
    assert duplicate_state_names(definition) == ["Work"]
    with pytest.raises(TemplateError, match="used more than once: Work"):
        spec.definition()
