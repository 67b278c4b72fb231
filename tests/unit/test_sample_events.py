"""The sample events in events/ are valid inputs of the steps they are named after."""

import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel

from dataexport.export_schedule import RunScheduleEvent
from dataexport.identity import Caller
from dataexport.step_events import (
    BackupStepInput,
    DeliverStepInput,
    ExpireStepInput,
    FailStepInput,
    FormatStepInput,
    QueryStepInput,
    UploadStepInput,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize(
    ("file_name", "model"),
    [
        ("export_query.json", QueryStepInput),
        ("export_format.json", FormatStepInput),
        ("export_upload.json", UploadStepInput),
        ("export_expire.json", ExpireStepInput),
        ("export_fail.json", FailStepInput),
        ("run_schedule.json", RunScheduleEvent),
        ("export_deliver.json", DeliverStepInput),
        ("backup_begin.json", BackupStepInput),
        ("backup_record.json", BackupStepInput),
        ("backup_fail.json", BackupStepInput),
    ],
)
def test_step_events_match_their_step_inputs(file_name: str, model: type[BaseModel]) -> None:
    model.model_validate(json.loads((EVENTS / file_name).read_text()))


@pytest.mark.parametrize("file_name", ["api_create_export.json", "api_get_export.json"])
def test_api_events_carry_an_authorizer_identity(file_name: str) -> None:
    event = json.loads((EVENTS / file_name).read_text())
    caller = Caller.from_authorizer_context(event["requestContext"]["authorizer"])
    assert caller.org_id and caller.user_id


def test_the_retention_sample_is_the_scheduled_event_its_rule_sends() -> None:
    event = EventBridgeModel.model_validate(
        json.loads((EVENTS / "retention_schedule.json").read_text())
    )
    assert (event.source, event.detail_type) == ("aws.events", "Scheduled Event")
